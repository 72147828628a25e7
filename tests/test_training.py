"""The training loop end to end on tiny models: it learns, it is deterministic, it resumes
bit-identically (after an exception and after a real SIGKILL), it refuses foreign or broken
checkpoints, and it stops on a non-finite loss keeping the last good checkpoint.

This file is also the child program of the SIGKILL test (``python test_training.py --child``).
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from picollm.data.loader import Batch, BatchStream, TokenStore, eval_batches, matched_eval_sets
from picollm.models.base import LanguageModel
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.training import (
    CheckpointError,
    TrainConfig,
    TrainingDivergedError,
    load_model_weights,
    read_checkpoint,
    train,
)
from picollm.training.checkpoint import CHECKPOINT_FILE
from picollm.training.loss import estimate_loss

VOCAB = 12
BLOCK, BATCH = 8, 4
# Documents of a repeating sequence 0 1 2 ... 9 0 1 ...: the next token is certain. (No
# end-of-text token: the tiny vocabulary has none, and packed windows do not need one.)
TRAIN_STORE = TokenStore.from_documents([list(range(10)) * 60])
TEST_STORE = TokenStore.from_documents([list(range(3, 10)) + list(range(10)) * 20])


def make_stream(seed: int = 0) -> BatchStream:
    return BatchStream(TRAIN_STORE, block_size=BLOCK, batch_size=BATCH, seed=seed)


class SlowStream(BatchStream):
    """The real stream, 50 ms per batch: a run slow enough to be killed in the middle."""

    def __next__(self) -> Batch:
        time.sleep(0.05)
        return super().__next__()


class SimulatedCrash(Exception):
    pass


class CrashAfter(BatchStream):
    """The real stream in a program that dies when asked for batch number ``crash_at`` + 1."""

    def __init__(self, crash_at: int):
        super().__init__(TRAIN_STORE, block_size=BLOCK, batch_size=BATCH, seed=0)
        self.crash_at = crash_at

    def __next__(self) -> Batch:
        if self.batches_drawn == self.crash_at:
            raise SimulatedCrash
        return super().__next__()


class NaNAt(LanguageModel):
    """Wraps a model and returns NaN logits on its ``bad_call``-th training forward pass."""

    def __init__(self, inner: LanguageModel, bad_call: int):
        super().__init__()
        self.inner, self.bad_call, self.calls = inner, bad_call, 0
        self.vocab_size, self.max_context = inner.vocab_size, inner.max_context

    def forward(self, tokens):
        logits = self.inner(tokens)
        if self.training:
            self.calls += 1
            if self.calls == self.bad_call:
                return logits * float("nan")
        return logits


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and steadily when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed: int = 0, embed_size: int = 16) -> LSTMLanguageModel:
    """Dropout on, so the torch RNG state matters for exact resumption."""
    torch.manual_seed(seed)
    return LSTMLanguageModel(LSTMConfig(vocab_size=VOCAB, embed_size=embed_size, dropout=0.1))


def make_config(**overrides) -> TrainConfig:
    values = dict(
        batch_size=BATCH,
        learning_rate=1e-2,
        max_steps_per_epoch=12,
        warmup_steps=3,
        eval_interval=4,
        eval_batches=2,
        checkpoint_interval=4,
        log_interval=1,
        seed=7,
        device="cpu",
        dtype="float32",
    )
    return TrainConfig(**{**values, **overrides})


def eval_sets() -> dict[str, list[Batch]]:
    return {
        "train": eval_batches(TRAIN_STORE, block_size=BLOCK, batch_size=BATCH, n_batches=2, seed=1),
        "test": eval_batches(TEST_STORE, block_size=BLOCK, batch_size=BATCH, n_batches=2, seed=2),
    }


def run(directory: Path, model=None, stream=None, **overrides):
    return train(
        model if model is not None else make_model(),
        stream if stream is not None else make_stream(),
        eval_sets(),
        make_config(**overrides),
        directory,
        progress=False,
    )


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), f"{name} differs"


# -- learning and bookkeeping ---------------------------------------------------------------


def test_lstm_learns_a_repeating_sequence(tmp_path):
    result = run(tmp_path, max_steps_per_epoch=30, learning_rate=0.05, checkpoint_interval=0)
    first, last = result.history.evals[0].losses, result.history.evals[-1].losses
    assert first["train"] == pytest.approx(math.log(VOCAB), rel=0.15)  # an untrained guess
    assert last["train"] < 0.1 * first["train"] and last["test"] < 0.1 * first["test"]
    assert result.history.steps[-1].train_loss < 0.1 * result.history.steps[0].train_loss


def test_history_schedule_and_metrics(tmp_path):
    model = make_model()
    result = run(tmp_path, model=model, log_interval=5, warmup_steps=4)
    steps, evals = result.history.steps, result.history.evals
    assert [r.step for r in steps] == [5, 10, 12]  # every log_interval, and the last step
    assert [r.tokens_seen for r in steps] == [n * BATCH * BLOCK for n in (5, 10, 12)]
    assert steps[0].lr == 1e-2  # update 5 is the first after 4 warm-up updates: the peak
    cosine = 0.5 * (1 + math.cos(math.pi * 5 / 8))  # update 10: 5 of the 8 decay steps done
    assert steps[1].lr == pytest.approx(1e-2 * (0.1 + 0.9 * cosine))
    assert steps[2].lr == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 8))))
    assert all(r.grad_norm > 0 and r.tokens_per_s > 0 for r in steps)
    assert [r.step for r in evals] == [0, 4, 8, 12]
    metrics = result.metrics
    assert metrics["final_train_loss"] == evals[-1].losses["train"]
    assert metrics["best_test_loss"] == min(r.losses["test"] for r in evals)
    assert metrics["generalization_gap"] == pytest.approx(
        evals[-1].losses["test"] - evals[-1].losses["train"]
    )
    assert metrics["tokens_seen"] == 12 * BATCH * BLOCK and metrics["steps"] == 12
    assert metrics["num_parameters"] == model.num_parameters()
    assert result.resumed_from_step is None


def final_sets() -> dict[str, list[Batch]]:
    """The whole test split and as many train windows: the precise final evaluation."""
    stores = {"train": TRAIN_STORE, "test": TEST_STORE}
    return matched_eval_sets(stores, block_size=BLOCK, batch_size=BATCH, seed=3)


def test_final_evaluation_records_losses_with_standard_errors(tmp_path):
    model = make_model()
    result = train(
        model, make_stream(), eval_sets(), make_config(), tmp_path, progress=False,
        final_eval_sets=final_sets(),
    )  # fmt: skip
    final = result.history.final
    windows = (TEST_STORE.n_tokens - 1) // BLOCK
    assert final["test"]["windows"] == final["train"]["windows"] == windows
    assert final["test"]["tokens"] == windows * BLOCK
    expected = estimate_loss(model, final_sets()["test"], torch.device("cpu"))
    assert final["test"] == expected.to_dict()
    assert 0 < final["test"]["stderr"] < final["test"]["loss"]
    metrics = result.metrics
    assert metrics["final_test_loss"] == final["test"]["loss"]
    assert metrics["final_test_loss_stderr"] == final["test"]["stderr"]
    assert metrics["generalization_gap"] == final["test"]["loss"] - final["train"]["loss"]
    assert metrics["generalization_gap_stderr"] == pytest.approx(
        math.hypot(final["test"]["stderr"], final["train"]["stderr"])
    )
    assert result.history.evals[-1].step == 12  # the curve keeps its fixed small batches


def test_resume_with_a_final_evaluation_is_bit_identical(tmp_path):
    def run_with_final(directory, stream):
        return train(
            make_model(), stream, eval_sets(), make_config(), directory, progress=False,
            final_eval_sets=final_sets(),
        )  # fmt: skip

    reference = run_with_final(tmp_path / "whole", make_stream())
    with pytest.raises(SimulatedCrash):
        run_with_final(tmp_path / "split", CrashAfter(crash_at=7))
    resumed = run_with_final(tmp_path / "split", make_stream())
    assert resumed.resumed_from_step == 4
    assert resumed.history.without_clock() == reference.history.without_clock()
    assert resumed.history.final  # and it is in the checkpoint of the finished run:
    finished = run_with_final(tmp_path / "split", make_stream())
    assert finished.history.final == reference.history.final


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]


def test_progress_lines_name_step_loss_lr_speed_and_time_left(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("picollm.training.trainer.PROGRESS_INTERVAL_S", 0.0)
    caplog.set_level("INFO", logger="picollm.training.trainer")
    result = run(tmp_path, log_interval=5, warmup_steps=4)
    lines = progress_lines(caplog)
    assert [line.split()[1] for line in lines] == ["5/12", "10/12", "12/12"]
    for line, record in zip(lines, result.history.steps, strict=True):
        assert f"loss {record.train_loss:.4f}" in line and f"lr {record.lr:.3g}" in line
        assert "tokens/s" in line and "elapsed 0:00:" in line
    assert lines[-1].endswith("time left 0:00:00")


def test_progress_lines_are_spaced_in_time_the_first_and_last_always_shown(
    tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr("picollm.training.trainer.PROGRESS_INTERVAL_S", 3600.0)
    caplog.set_level("INFO", logger="picollm.training.trainer")
    run(tmp_path, log_interval=1, warmup_steps=4)
    assert [line.split()[1] for line in progress_lines(caplog)] == ["1/12", "12/12"]


def test_same_seed_same_run_and_eval_callback_does_not_disturb_it(tmp_path):
    seen = []

    def greedy_sampler_stand_in(step, losses):
        seen.append((step, sorted(losses)))
        torch.rand(1000)  # a callback drawing random numbers, e.g. sampling text

    first = run(tmp_path / "a", model=make_model())
    second = train(
        make_model(),
        make_stream(),
        eval_sets(),
        make_config(),
        tmp_path / "b",
        on_eval=greedy_sampler_stand_in,
        progress=False,
    )
    assert first.history.without_clock() == second.history.without_clock()
    assert seen == [(s, ["test", "train"]) for s in (0, 4, 8, 12)]
    other_seed = run(tmp_path / "c", model=make_model(), seed=8)
    # dropout masks differ
    assert other_seed.history.without_clock() != first.history.without_clock()


def test_bfloat16_autocast_on_cpu_trains(tmp_path):
    result = run(
        tmp_path,
        dtype="bfloat16",
        max_steps_per_epoch=30,
        learning_rate=0.05,
        checkpoint_interval=0,
    )
    evals = result.history.evals
    assert all(math.isfinite(r.train_loss) for r in result.history.steps)
    assert evals[-1].losses["train"] < 0.1 * evals[0].losses["train"]


# -- exact resumption -----------------------------------------------------------------------


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    reference_model = make_model()
    reference = run(tmp_path / "whole", model=reference_model)

    with pytest.raises(SimulatedCrash):  # dies asking for batch 8: checkpoint at 4, 5-7 lost
        run(tmp_path / "split", model=make_model(), stream=CrashAfter(crash_at=7))
    assert read_checkpoint(tmp_path / "split" / CHECKPOINT_FILE)["step"] == 4

    resumed_model = make_model(seed=123)  # other initial weights: all must come from the file
    resumed = run(tmp_path / "split", model=resumed_model, stream=make_stream())
    assert resumed.resumed_from_step == 4
    assert resumed.history.without_clock() == reference.history.without_clock()
    assert_same_weights(resumed_model, reference_model)
    whole = read_checkpoint(tmp_path / "whole" / CHECKPOINT_FILE)
    split = read_checkpoint(tmp_path / "split" / CHECKPOINT_FILE)
    moments = zip(
        whole["optimizer"]["state"].values(), split["optimizer"]["state"].values(), strict=True
    )
    for a, b in moments:
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))

    again = run(tmp_path / "split", model=make_model(seed=5))  # a finished run stays finished
    assert again.resumed_from_step == 12
    assert again.history.without_clock() == reference.history.without_clock()


def child_main(directory: str, threads: str) -> None:
    """The SIGKILL test's victim: a slow run (50 ms per batch) checkpointing every 2 steps."""
    torch.set_num_threads(int(threads))
    stream = SlowStream(TRAIN_STORE, block_size=BLOCK, batch_size=BATCH, seed=0)
    train(
        make_model(),
        stream,
        eval_sets(),
        make_config(max_steps_per_epoch=40, checkpoint_interval=2),
        Path(directory),
        progress=False,
    )


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    victim = subprocess.Popen(
        [sys.executable, __file__, "--child", str(tmp_path), str(torch.get_num_threads())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    checkpoint = tmp_path / CHECKPOINT_FILE
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    _, stderr = victim.communicate()
    assert victim.returncode == -signal.SIGKILL, stderr.decode()
    killed_at = read_checkpoint(checkpoint)["step"]
    assert 2 <= killed_at < 40

    resumed_model, reference_model = make_model(seed=9), make_model()
    resumed = run(tmp_path, model=resumed_model, max_steps_per_epoch=40, checkpoint_interval=2)
    reference = run(tmp_path / "whole", model=reference_model, max_steps_per_epoch=40)
    assert resumed.resumed_from_step == killed_at
    assert resumed.history.without_clock() == reference.history.without_clock()
    assert_same_weights(resumed_model, reference_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE, "whole"]


# -- checkpoints that must be refused -------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path) -> Path:
    run(tmp_path, max_steps_per_epoch=4)
    return tmp_path


def test_a_truncated_checkpoint_is_set_aside_and_training_starts_afresh(finished_run, caplog):
    """A torn or corrupt file used to block every rerun with a traceback."""
    path = finished_run / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{CHECKPOINT_FILE}: cannot be read.*truncated"):
        load_model_weights(path, make_model())
    model, reference_model = make_model(), make_model()  # the same initial weights
    result = run(finished_run, model=model, max_steps_per_epoch=4)
    assert result.resumed_from_step is None
    assert f"{CHECKPOINT_FILE}.unreadable-1, training starts afresh" in caplog.text
    assert (finished_run / f"{CHECKPOINT_FILE}.unreadable-1").is_file()  # kept, never read
    reference = run(finished_run / "fresh", model=reference_model, max_steps_per_epoch=4)
    assert result.history.without_clock() == reference.history.without_clock()
    assert_same_weights(model, reference_model)


def test_a_disk_full_checkpoint_write_names_the_path_and_the_space(tmp_path, monkeypatch):
    import errno

    from picollm.errors import DiskFullError
    from picollm.training import checkpoint

    def full_disk(payload, file):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    model = make_model()
    with pytest.raises(DiskFullError) as caught:
        run(tmp_path, model=model, max_steps_per_epoch=4)
    message = str(caught.value)
    assert str(tmp_path / CHECKPOINT_FILE) in message
    weights_mib = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    assert f"needs about {weights_mib * 3:.1f} MiB free" in message  # weights + 2 Adam moments
    assert not list(tmp_path.glob(".*tmp*")), "the partial file is removed"


def test_checkpoint_of_another_model_is_refused(finished_run):
    with pytest.raises(
        CheckpointError,
        match=r"different run.*'embedding\.weight' is \[12, 16\] there but \[12, 8\] here",
    ):
        run(finished_run, model=make_model(embed_size=8), max_steps_per_epoch=4)


def test_checkpoint_of_another_config_or_identity_is_refused(finished_run):
    with pytest.raises(CheckpointError, match=r"'learning_rate' is 0\.01 there but 0\.02 here"):
        run(finished_run, max_steps_per_epoch=4, learning_rate=0.02)
    with pytest.raises(CheckpointError, match=r"'total_steps' is 4 there but 5 here"):
        run(finished_run, max_steps_per_epoch=5)
    with pytest.raises(
        CheckpointError, match=r"identity key 'data_sha256' missing from the checkpoint"
    ):
        train(
            make_model(),
            make_stream(),
            eval_sets(),
            make_config(max_steps_per_epoch=4),
            finished_run,
            identity={"data_sha256": "abc"},
            progress=False,
        )
    # another evaluation grid would mix two grids in one loss curve
    with pytest.raises(CheckpointError, match=r"'eval_interval' is 4 there but 2 here"):
        run(finished_run, max_steps_per_epoch=4, eval_interval=2)
    # where and how often may change between a run and its resumption
    assert run(finished_run, max_steps_per_epoch=4, log_interval=2).resumed_from_step == 4


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a picollm training checkpoint"):
        run(tmp_path)
    torch.save(Batch(torch.zeros(1), torch.zeros(1)), path)  # needs unpickling code
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        read_checkpoint(path)
    assert run(tmp_path).resumed_from_step is None  # set aside, never unpickled
    assert (tmp_path / f"{CHECKPOINT_FILE}.unreadable-1").is_file()


# -- the NaN guard --------------------------------------------------------------------------


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    model = NaNAt(make_model(), bad_call=6)
    with pytest.raises(
        TrainingDivergedError, match=r"(?s)step 6: loss nan.*step 4\).*learning_rate"
    ):
        run(tmp_path, model=model)
    checkpoint = read_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert checkpoint["step"] == 4
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    load_model_weights(tmp_path / CHECKPOINT_FILE, NaNAt(make_model(seed=1), bad_call=0))


# -- bad arguments --------------------------------------------------------------------------


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="warmup_steps"):
        run(tmp_path, warmup_steps=12)
    with pytest.raises(ValueError, match="batch_size is 8"):
        run(tmp_path, batch_size=8)
    with pytest.raises(ValueError, match="eval_sets"):
        train(
            make_model(),
            make_stream(),
            {"test": []},
            make_config(),
            tmp_path,
            progress=False,
        )
    with pytest.raises(TypeError, match="TrainConfig"):
        train(make_model(), make_stream(), eval_sets(), {"batch_size": 4}, tmp_path)


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child_main(*sys.argv[2:])
