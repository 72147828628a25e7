"""The trainer's parts, each against an oracle: config checks, schedule, parameter groups,
clipping, the masked loss, devices, huge pages, weight files."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from picollm.models.base import LanguageModel
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.training import CheckpointError, TrainConfig, batches_per_epoch
from picollm.training.device import resolve_autocast_dtype, resolve_device
from picollm.training.loss import IGNORE_INDEX, evaluate_loss, next_token_loss
from picollm.training.optim import (
    build_optimizer,
    clip_gradients,
    learning_rate_at,
    parameter_groups,
)
from picollm.training.weights import load_model_weights, save_model_weights


def tiny_lstm(seed: int = 0, embed_size: int = 8) -> LSTMLanguageModel:
    torch.manual_seed(seed)
    return LSTMLanguageModel(LSTMConfig(vocab_size=13, embed_size=embed_size))


class TiedBigram(LanguageModel):
    """Embedding and unembedding share one matrix; a gate vector opts out of weight decay."""

    def __init__(self, vocab_size: int = 11, width: int = 6):
        super().__init__()
        self.vocab_size, self.max_context = vocab_size, None
        self.embedding = nn.Embedding(vocab_size, width)
        self.unembedding = nn.Linear(width, vocab_size, bias=False)
        self.unembedding.weight = self.embedding.weight
        self.gate = nn.Parameter(torch.randn(width, width))
        self.gate._no_weight_decay = True
        self.norm_gain = nn.Parameter(torch.ones(width))

    def forward(self, tokens):
        x = self.embedding(tokens) @ self.gate * self.norm_gain  # (B, T, W)
        return self.unembedding(x)  # (B, T, V)


# -- TrainConfig ----------------------------------------------------------------------------


def test_config_from_dict_fills_defaults_and_normalises_types():
    config = TrainConfig.from_dict({"learning_rate": 1, "betas": [0.8, 0.9]})
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.betas == (0.8, 0.9)
    assert config.batch_size == TrainConfig().batch_size
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("values", "error", "named"),
    [
        ({"learning_rat": 0.1}, ValueError, "learning_rat"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"betas": [0.9, 1.0]}, ValueError, "beta2"),
        ({"betas": [0.9]}, ValueError, "betas"),
        ({"min_lr_ratio": 1.5}, ValueError, "min_lr_ratio"),
        ({"grad_clip": -1}, ValueError, "grad_clip"),
        ({"checkpoint_interval": -1}, ValueError, "checkpoint_interval"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"device": "cpu:1"}, ValueError, "device"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"compile": "yes"}, TypeError, "compile"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(values, error, named):
    with pytest.raises(error, match=named):
        TrainConfig.from_dict(values)


def test_total_steps_combines_the_starter_epoch_knobs():
    assert TrainConfig(epochs=3, max_steps_per_epoch=200).total_steps(50) == 150
    assert TrainConfig(epochs=3, max_steps_per_epoch=20).total_steps(50) == 60
    assert TrainConfig(epochs=2, max_steps_per_epoch=None).total_steps(50) == 100
    assert TrainConfig(epochs=2, max_steps_per_epoch=7, warmup_steps=2).total_steps(None) == 14
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TrainConfig(max_steps_per_epoch=None).total_steps(None)
    assert batches_per_epoch(train_tokens=1000, batch_size=4, block_size=32) == 8  # ceil(7.8)


# -- learning-rate schedule -----------------------------------------------------------------


def test_warmup_then_cosine_at_known_steps():
    def lr(step):
        return learning_rate_at(step, peak=1.0, warmup_steps=4, total_steps=14, min_ratio=0.1)

    assert [lr(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up
    assert lr(4) == 1.0  # cosine starts at the peak
    assert lr(9) == pytest.approx(0.55)  # half way: (peak + floor) / 2
    assert lr(14) == pytest.approx(0.1) and lr(100) == pytest.approx(0.1)  # floor
    assert all(lr(s) > lr(s + 1) for s in range(4, 14))  # strictly decaying
    assert learning_rate_at(0, peak=2.0, warmup_steps=0, total_steps=10, min_ratio=0.0) == 2.0


# -- AdamW parameter groups -----------------------------------------------------------------


def test_weight_decay_on_matrices_only():
    groups = {g["name"]: g for g in parameter_groups(tiny_lstm(), weight_decay=0.1)}
    assert set(groups["decay"]["param_names"]) == {
        "embedding.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "unembedding.weight",
    }
    assert set(groups["no_decay"]["param_names"]) == {
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "unembedding.bias",
    }
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0


def test_tied_and_flagged_parameters():
    model = TiedBigram()
    groups = {g["name"]: g["param_names"] for g in parameter_groups(model, 0.1)}
    assert groups == {"decay": ["embedding.weight"], "no_decay": ["gate", "norm_gain"]}


def test_adamw_decays_exactly_the_decay_group():
    model = TiedBigram()
    optimizer = build_optimizer(model, learning_rate=0.5, weight_decay=0.1, betas=(0.9, 0.95))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only decay moves a weight
    optimizer.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["embedding.weight"], before["embedding.weight"] * 0.95)
    assert torch.equal(after["gate"], before["gate"])
    assert torch.equal(after["norm_gain"], before["norm_gain"])


# -- gradient clipping ----------------------------------------------------------------------


def test_clipping_bounds_the_global_norm_and_returns_the_norm_before():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])  # norm 13
    norm = clip_gradients([a, b], max_norm=1.0)
    assert norm.item() == pytest.approx(13.0)
    assert torch.cat([a.grad, b.grad]).norm().item() == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(a.grad, torch.tensor([3.0, 4.0]) / 13, rtol=1e-5, atol=0)


def test_clipping_off_leaves_gradients_and_small_norms_alone():
    a = nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, 4.0])
    assert clip_gradients([a], max_norm=0.0).item() == pytest.approx(5.0)
    assert torch.equal(a.grad, torch.tensor([3.0, 4.0]))
    assert clip_gradients([a], max_norm=10.0).item() == pytest.approx(5.0)
    assert torch.equal(a.grad, torch.tensor([3.0, 4.0]))


# -- the loss -------------------------------------------------------------------------------


def naive_mean_loss(logits, targets):
    """Oracle: average of -log softmax(logits)[target] over counted positions, one by one."""
    total, counted = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            if targets[b, t] != IGNORE_INDEX:
                total -= torch.log_softmax(logits[b, t].double(), dim=-1)[targets[b, t]].item()
                counted += 1
    return total / counted


def test_loss_is_the_mean_over_counted_targets_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    targets = torch.randint(0, 7, (2, 5))
    targets[0, :2] = IGNORE_INDEX
    targets[1, 4] = IGNORE_INDEX
    loss = next_token_loss(logits, targets)
    assert loss.item() == pytest.approx(naive_mean_loss(logits.detach(), targets), rel=1e-6)
    loss.backward()
    ignored = targets == IGNORE_INDEX
    assert torch.all(logits.grad[ignored] == 0) and torch.all(
        logits.grad[~ignored].abs().sum(-1) > 0
    )
    changed = logits.detach().clone()
    changed[ignored] = 1e4  # whatever the model says where nothing counts
    assert next_token_loss(changed, targets).item() == pytest.approx(loss.item(), rel=1e-6)


def test_loss_is_float32_under_bfloat16_and_zero_when_nothing_counts():
    logits = torch.randn(1, 3, 5).bfloat16()
    assert next_token_loss(logits, torch.tensor([[1, 2, 3]])).dtype == torch.float32
    empty = next_token_loss(logits.float(), torch.full((1, 3), IGNORE_INDEX))
    assert empty.item() == 0.0


@dataclass
class Pair:
    inputs: torch.Tensor
    targets: torch.Tensor


def test_evaluate_weights_every_counted_token_equally():
    model = tiny_lstm()
    batches = [
        Pair(torch.randint(0, 13, (2, 6)), torch.randint(0, 13, (2, 6))),
        Pair(torch.randint(0, 13, (3, 4)), torch.full((3, 4), IGNORE_INDEX)),
    ]
    batches[1].targets[0, 0] = 5  # the second batch counts a single token
    expected_total, expected_count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            n = int((batch.targets != IGNORE_INDEX).sum())
            expected_total += naive_mean_loss(model(batch.inputs), batch.targets) * n
            expected_count += n
    model.train()
    got = evaluate_loss(model, batches, torch.device("cpu"))
    assert got == pytest.approx(expected_total / expected_count, rel=1e-6)
    assert model.training  # mode restored


# -- device and precision -------------------------------------------------------------------


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="banana"):
        resolve_device("banana")
    cpu = torch.device("cpu")
    assert resolve_autocast_dtype("auto", cpu) is None
    assert resolve_autocast_dtype("float32", cpu) is None
    assert resolve_autocast_dtype("bfloat16", cpu) is torch.bfloat16


# -- transparent huge pages -----------------------------------------------------------------


def test_the_console_command_switches_on_huge_pages_before_anything_imports_torch():
    """``picollm`` (picollm.entry:main, also ``python -m picollm``) sets the variable torch
    reads on its first CPU allocation, unless the user set it."""
    import tomllib

    from picollm.entry import HUGE_PAGES_VARIABLE

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["picollm"] == "picollm.entry:main"
    code = (
        "import os, sys\n"
        "sys.argv = ['picollm', '--version']\n"
        "from picollm.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ['THP_MEM_ALLOC_ENABLE'], 'torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_VARIABLE}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["1", "False"]
    env[HUGE_PAGES_VARIABLE] = "0"  # the user's explicit choice wins
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split()[-2:] == ["0", "False"]


# -- weight files ---------------------------------------------------------------------------


def test_safetensors_round_trip_keeps_weights_and_ties(tmp_path):
    source = TiedBigram()
    save_model_weights(source, tmp_path / "w.safetensors")
    target = TiedBigram()
    load_model_weights(tmp_path / "w.safetensors", target)
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert target.unembedding.weight is target.embedding.weight
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left


def test_weights_of_another_shape_or_a_broken_file_are_refused(tmp_path):
    save_model_weights(tiny_lstm(embed_size=8), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=r"(?s)w\.safetensors.*embedding\.weight"):
        load_model_weights(tmp_path / "w.safetensors", tiny_lstm(embed_size=16))
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        load_model_weights(tmp_path / "junk.safetensors", tiny_lstm())
    with pytest.raises(CheckpointError, match="no such"):
        load_model_weights(tmp_path / "absent.safetensors", tiny_lstm())


def test_loss_oracle_sanity():
    """The oracle itself: uniform logits give log(V) per token."""
    logits = torch.zeros(1, 4, 9)
    assert naive_mean_loss(logits, torch.tensor([[0, 1, 2, 3]])) == pytest.approx(math.log(9))


def test_history_without_clock_drops_only_the_clock_fields():
    from picollm.training.history import EvalRecord, StepRecord, TrainingHistory

    def history(loss: float, tokens_per_s: float) -> TrainingHistory:
        step = StepRecord(1, 32, 0.1, loss, 2.0, tokens_per_s=tokens_per_s, elapsed_s=tokens_per_s)
        return TrainingHistory([step], [EvalRecord(1, 32, {"test": loss})])

    assert history(3.0, 100.0).without_clock() == history(3.0, 999.0).without_clock()
    assert history(3.0, 100.0).without_clock() != history(3.5, 100.0).without_clock()
    assert set(history(3.0, 1.0).without_clock()["steps"][0]) == {
        "step",
        "tokens_seen",
        "lr",
        "train_loss",
        "grad_norm",
    }
    assert history(3.0, 1.0).to_dict()["steps"][0]["elapsed_s"] == 1.0  # to_dict keeps them
