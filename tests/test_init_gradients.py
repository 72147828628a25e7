"""Per-layer gradient norms at initialisation against per-parameter autograd, one at a time;
and warm-up on/off is a training parameter."""

from __future__ import annotations

import math

import pytest
import torch

from picollm.init_gradients import gradient_norms_at_init
from picollm.models import build
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.training import TrainConfig
from picollm.training.loss import next_token_loss
from picollm.training.optim import learning_rate_at

VOCAB, BLOCK = 17, 8


def transformer(norm: str, n_blocks: int = 3):
    torch.manual_seed(0)
    return build(
        {"type": "transformer", "vocab_size": VOCAB, "block_size": BLOCK, "d_model": 16,
         "n_heads": 2, "n_blocks": n_blocks, "norm": norm, "dropout": 0.1}
    )  # fmt: skip


def naive_norm(model, inputs, targets, prefix: str) -> float:
    """The gradient norm of the parameters whose names start with ``prefix``, by autograd on
    each parameter alone (a fresh forward pass each time)."""
    model.eval()
    total = 0.0
    for name, parameter in model.named_parameters():
        if name.startswith(prefix):
            loss = next_token_loss(model(inputs), targets)
            (grad,) = torch.autograd.grad(loss, [parameter])
            total += grad.double().pow(2).sum().item()
    return math.sqrt(total)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_gradient_norms_match_per_parameter_autograd(norm):
    model = transformer(norm)
    data = torch.randint(0, VOCAB, (4, BLOCK + 1), generator=torch.Generator().manual_seed(1))
    inputs, targets = data[:, :-1], data[:, 1:]
    model.train()
    norms = gradient_norms_at_init(model, inputs, targets)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert {part: len(values) for part, values in norms.items()} == {
        "mlp_out": 3, "attention": 3, "block": 3,
    }  # fmt: skip
    for i in range(3):
        expected = {
            "mlp_out": naive_norm(model, inputs, targets, f"blocks.{i}.mlp.down_proj."),
            "attention": naive_norm(model, inputs, targets, f"blocks.{i}.attention."),
            "block": naive_norm(model, inputs, targets, f"blocks.{i}."),
        }
        for part, value in expected.items():
            assert norms[part][i] == pytest.approx(value, rel=1e-5), (part, i)
            assert value > 0


def test_only_transformers_are_measured():
    with pytest.raises(TypeError, match="TransformerLanguageModel"):
        lstm = LSTMLanguageModel(LSTMConfig(vocab_size=VOCAB, embed_size=4))
        gradient_norms_at_init(lstm, torch.zeros(1, 2).long(), torch.zeros(1, 2).long())


def test_warmup_off_is_warmup_steps_zero():
    assert TrainConfig(warmup_steps=0).warmup_steps == 0
    rates = [
        learning_rate_at(step, peak=1e-2, warmup_steps=0, total_steps=10, min_ratio=0.1)
        for step in range(3)
    ]
    assert rates[0] == 1e-2 and rates[1] < 1e-2  # the peak at once, then the cosine
    assert learning_rate_at(0, peak=1e-2, warmup_steps=5, total_steps=10, min_ratio=0.1) == 2e-3
