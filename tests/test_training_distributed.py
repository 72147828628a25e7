"""Data-parallel training: two CPU processes with gloo compute the single-process run.

The two processes get torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) and
meet through a file in the test's directory, and gloo talks over the loopback interface only:
nothing listens on a network address. Everything has a timeout, so a broken collective fails
the test instead of hanging it.

This file is also the child program of those processes (``python test_training_distributed.py
--child DIR``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from picollm.data.loader import IGNORE_INDEX, Batch, BatchStream, TokenStore, eval_batches
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.models.transformer import TransformerConfig, TransformerLanguageModel
from picollm.training import CheckpointError, TrainConfig, read_checkpoint, train
from picollm.training import trainer as trainer_module
from picollm.training.checkpoint import CHECKPOINT_FILE
from picollm.training.distributed import (
    Ranks,
    process_device,
    process_group,
    rows_of_rank,
    torchrun_ranks,
)
from picollm.training.loss import next_token_loss
from picollm.training.rng import rank_seed

VOCAB = 11
BLOCK, BATCH, WORLD = 8, 4, 2
STORE = TokenStore.from_documents(
    [[(7 * d + 3 * i) % VOCAB for i in range(30 + d)] for d in range(12)]
)
LOOPBACK = "lo" if sys.platform.startswith("linux") else "lo0"
LAUNCH_TIMEOUT_S = 180
COLLECTIVE_TIMEOUT_S = 60


class RaggedStream(BatchStream):
    """Packed windows whose rows count 1 .. BLOCK targets, like padded documents: the two
    processes' halves of a batch count different numbers of targets."""

    def __init__(self, batch_size: int = BATCH, crash_at: int | None = None):
        super().__init__(STORE, block_size=BLOCK, batch_size=batch_size, seed=5)
        self.crash_at = crash_at

    def __next__(self) -> Batch:
        if self.batches_drawn == self.crash_at:
            raise SimulatedCrash
        batch = super().__next__()
        counted = 1 + batch.inputs[:, :1] % BLOCK  # (B, 1) targets counted per row
        past_end = torch.arange(BLOCK) >= counted  # (B, T)
        return Batch(batch.inputs, batch.targets.masked_fill(past_end, IGNORE_INDEX))


class SimulatedCrash(Exception):
    pass


def make_model(seed: int = 0, dropout: float = 0.0) -> LSTMLanguageModel:
    torch.manual_seed(seed)
    return LSTMLanguageModel(LSTMConfig(vocab_size=VOCAB, embed_size=16, dropout=dropout))


def make_transformer() -> TransformerLanguageModel:
    """Tied embeddings and RoPE tables, buffers that grow on first use."""
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=VOCAB, block_size=BLOCK, d_model=16, n_heads=2, n_blocks=1, position="rope"
    )
    return TransformerLanguageModel(config)


def make_config(**overrides) -> TrainConfig:
    values = dict(
        batch_size=BATCH,
        learning_rate=3e-2,
        max_steps_per_epoch=12,
        warmup_steps=3,
        eval_interval=4,
        eval_batches=3,  # an odd number: the processes evaluate 2 and 1 batches
        checkpoint_interval=4,
        log_interval=1,
        seed=7,
        device="cpu",
        dtype="float32",
    )
    return TrainConfig(**{**values, **overrides})


def eval_sets() -> dict[str, list[Batch]]:
    return {"train": eval_batches(STORE, block_size=BLOCK, batch_size=BATCH, n_batches=3, seed=1)}


def run(directory: Path, model=None, stream=None, **overrides):
    return train(
        model if model is not None else make_model(),
        stream if stream is not None else RaggedStream(),
        eval_sets(),
        make_config(**overrides),
        directory,
        progress=False,
        final_eval_sets=eval_sets(),  # 3 batches: rank 0 holds 2 of them, rank 1 one
    )


def outcome(result, model) -> dict:
    return {"history": result.history.without_clock(), "weights": model.state_dict()}


# -- the child program: one of the two processes --------------------------------------------


def child_main(directory: str) -> None:
    """Train the runs the tests compare, as torchrun's process RANK; save what came out."""
    torch.set_num_threads(1)
    directory = Path(directory)
    ranks = torchrun_ranks()
    writes = []
    write_checkpoint = trainer_module.write_checkpoint

    def counting_write(path, payload):
        writes.append(payload["step"])
        write_checkpoint(path, payload)

    trainer_module.write_checkpoint = counting_write
    report = {}
    rendezvous = f"file://{directory / 'rendezvous'}"
    with process_group(ranks, "cpu", init_method=rendezvous, timeout_s=COLLECTIVE_TIMEOUT_S):
        try:
            run(directory / "odd", stream=RaggedStream(batch_size=3), batch_size=3)
        except ValueError as err:
            report["odd_batch_error"] = str(err)

        model = make_model()
        report["plain"] = outcome(run(directory / "plain", model=model), model)
        model = make_transformer()
        report["transformer"] = outcome(run(directory / "transformer", model=model), model)

        # with dropout: each process's random numbers matter, and must survive a resumption
        model = make_model(dropout=0.1)
        report["whole"] = outcome(run(directory / "whole", model=model), model)
        crashing = RaggedStream(crash_at=7)  # at batch 8: checkpoint at step 4, steps 5-7 lost
        with contextlib.suppress(SimulatedCrash):
            run(directory / "resumed", model=make_model(dropout=0.1), stream=crashing)
        model = make_model(seed=123, dropout=0.1)  # other weights: all must come from the file
        resumed = run(directory / "resumed", model=model)
        report["resumed"] = outcome(resumed, model)
        report["resumed_from_step"] = resumed.resumed_from_step
    report["checkpoint_writes"] = writes
    torch.save(report, directory / f"rank{ranks.rank}.pt")


# -- the parent side ------------------------------------------------------------------------


def launch_two_processes(directory: Path) -> list[dict]:
    """Run ``child_main`` as ranks 0 and 1 of a 2-process group; their reports, by rank."""
    environment = {
        **os.environ,
        "WORLD_SIZE": str(WORLD),
        "GLOO_SOCKET_IFNAME": LOOPBACK,  # gloo's sockets on the loopback interface only
        "OMP_NUM_THREADS": "1",
    }
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(directory)],
            env={**environment, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(WORLD)
    ]
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    outputs = []
    try:
        for child in children:
            output, _ = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append(output.decode(errors="replace"))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for rank, (child, output) in enumerate(zip(children, outputs, strict=True)):
        assert child.returncode == 0, f"rank {rank} failed:\n{output}"
    return [torch.load(directory / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> tuple[Path, list[dict]]:
    directory = tmp_path_factory.mktemp("ddp")
    return directory, launch_two_processes(directory)


def assert_close_runs(distributed: dict, single: dict) -> None:
    """Same history and weights up to float summation order."""
    steps_d, evals_d = distributed["history"]["steps"], distributed["history"]["evals"]
    steps_s, evals_s = single["history"]["steps"], single["history"]["evals"]
    assert [r["step"] for r in steps_d] == [r["step"] for r in steps_s] == list(range(1, 13))
    for d, s in zip(steps_d, steps_s, strict=True):
        assert d["tokens_seen"] == s["tokens_seen"] and d["lr"] == s["lr"]
        assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
        assert d["grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-5)
    assert [r["step"] for r in evals_d] == [r["step"] for r in evals_s] == [0, 4, 8, 12]
    for d, s in zip(evals_d, evals_s, strict=True):
        assert d["losses"]["train"] == pytest.approx(s["losses"]["train"], rel=1e-5)
    final_d, final_s = distributed["history"]["final"]["train"], single["history"]["final"]["train"]
    assert (final_d["windows"], final_d["tokens"]) == (final_s["windows"], final_s["tokens"])
    for key in ("loss", "stderr"):
        assert final_d[key] == pytest.approx(final_s[key], rel=1e-5)
    for name, weight in single["weights"].items():
        torch.testing.assert_close(distributed["weights"][name], weight, rtol=1e-5, atol=1e-6)


@pytest.mark.xdist_group("two_processes")
def test_two_processes_compute_the_single_process_run(two_process_runs, tmp_path):
    _, reports = two_process_runs
    for key, make in (("plain", make_model), ("transformer", make_transformer)):
        model = make()
        single = outcome(run(tmp_path / key, model=model), model)
        assert_close_runs(reports[0][key], single)
        # the run learns something, so agreeing on it is not agreeing on nothing
        evals = single["history"]["evals"]
        assert evals[-1]["losses"]["train"] < 0.8 * evals[0]["losses"]["train"], key
    # both processes hold the same replica and the same record of the run
    for key in ("plain", "transformer", "whole", "resumed"):
        assert reports[0][key]["history"] == reports[1][key]["history"]
        for name, weight in reports[0][key]["weights"].items():
            assert torch.equal(reports[1][key]["weights"][name], weight), f"{key}: {name}"


@pytest.mark.xdist_group("two_processes")
def test_two_process_resumption_is_bit_identical_and_only_rank_0_writes(two_process_runs):
    directory, reports = two_process_runs
    rank0, rank1 = reports
    assert rank0["resumed_from_step"] == rank1["resumed_from_step"] == 4
    assert rank0["resumed"]["history"] == rank0["whole"]["history"]
    for name, weight in rank0["whole"]["weights"].items():
        assert torch.equal(rank0["resumed"]["weights"][name], weight), name
    # plain, transformer, whole: 4, 8, 12; resumed: 4 before the crash, 8, 12 after
    assert rank0["checkpoint_writes"] == [4, 8, 12] * 4 and rank1["checkpoint_writes"] == []
    checkpoint = read_checkpoint(directory / "whole" / CHECKPOINT_FILE)
    torch_states = [state["torch"] for state in checkpoint["rng"]]
    assert len(torch_states) == WORLD and not torch.equal(*torch_states)  # own dropout masks


@pytest.mark.xdist_group("two_processes")
def test_two_process_errors(two_process_runs):
    directory, reports = two_process_runs
    for report in reports:
        assert report["odd_batch_error"].startswith(
            "batch_size (3) must be divisible by the number of processes (2)"
        )
    with pytest.raises(CheckpointError, match=r"written by 2 training process.*this run has 1"):
        run(directory / "whole", model=make_model(dropout=0.1))


# -- the parts, without processes -----------------------------------------------------------


def test_torchrun_ranks_read_the_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_ranks() == Ranks(rank=0, world_size=1, local_rank=0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert torchrun_ranks() == Ranks(rank=3, world_size=4, local_rank=3)
    monkeypatch.setenv("LOCAL_RANK", "1")
    ranks = torchrun_ranks()
    assert ranks == Ranks(rank=3, world_size=4, local_rank=1) and not ranks.is_main
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4, WORLD_SIZE=4"):
        torchrun_ranks()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ValueError, match="RANK='two'"):
        torchrun_ranks()


def test_each_rank_takes_its_contiguous_chunk_of_rows():
    batch = torch.arange(12).reshape(6, 2)  # (B, T)
    chunks = [rows_of_rank(batch, Ranks(rank=r, world_size=3)).tolist() for r in range(3)]
    assert chunks == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert torch.equal(rows_of_rank(batch, Ranks()), batch)
    with pytest.raises(ValueError, match=r"batch_size \(6\) must be divisible.*\(4\)"):
        rows_of_rank(batch, Ranks(rank=0, world_size=4))


def test_process_device():
    two = Ranks(rank=1, world_size=2, local_rank=1)
    cpu = torch.device("cpu")
    assert process_device(cpu, two) == cpu
    assert process_device(torch.device("cuda", 3), Ranks()) == torch.device("cuda", 3)
    with pytest.raises(ValueError, match="'cuda:0' would put all 2 processes on one GPU"):
        process_device(torch.device("cuda", 0), two)
    with pytest.raises(ValueError, match="'cpu' \\(gloo\\) or 'cuda' \\(NCCL\\), not on mps"):
        process_device(torch.device("mps"), two)
    if torch.cuda.device_count() > 1:
        assert process_device(torch.device("cuda"), two) == torch.device("cuda", 1)
    else:
        with pytest.raises(ValueError, match="LOCAL_RANK 1 has no GPU"):
            process_device(torch.device("cuda"), two)


def test_shares_of_the_loss_add_up_to_the_batch_mean():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, VOCAB)  # (B, T, V)
    targets = torch.randint(0, VOCAB, (4, 5))  # (B, T)
    targets[0, 1:] = targets[3, 4:] = IGNORE_INDEX  # the halves count 1 + 5 and 5 + 4
    counted = (targets != IGNORE_INDEX).sum()
    shares, half_means = [], []
    for rank in range(2):
        ranks = Ranks(rank=rank, world_size=2)
        mine = rows_of_rank(logits, ranks), rows_of_rank(targets, ranks)
        shares.append(next_token_loss(*mine, counted))
        half_means.append(next_token_loss(*mine))
    whole = next_token_loss(logits, targets).item()
    assert sum(shares).item() == pytest.approx(whole, rel=1e-6)
    assert sum(half_means).item() / 2 != pytest.approx(whole, rel=1e-3)  # why not plain means


def test_rank_seeds():
    assert rank_seed(7, 0) == 7  # a single process keeps its seed
    seeds = [rank_seed(7, rank) for rank in range(1, 5)]
    assert seeds == [rank_seed(7, rank) for rank in range(1, 5)]
    assert len(set(seeds) | {7, rank_seed(8, 1)}) == 6 and all(0 <= s < 2**32 for s in seeds)


def test_one_process_needs_no_process_group():
    with process_group(Ranks(), "cpu"):
        assert not dist.is_initialized()


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child_main(*sys.argv[2:])
