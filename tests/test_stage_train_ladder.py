"""A data ladder's runs train for the same number of optimiser steps: the smaller set repeats."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from picollm.files import sha256_file
from picollm.stages import train as train_stage
from picollm.training import TrainConfig
from picollm.training.config import run_length
from picollm.vocab import VOCAB_FILE, Vocabulary


def write_split(directory):
    """A split directory as the split stage writes it, with 40 train and 4 test documents."""
    rng = np.random.default_rng(0)
    for split, n_docs in (("train", 40), ("test", 4)):
        lengths = rng.integers(20, 40, size=n_docs)
        starts = np.cumsum(lengths) - lengths
        tokens = rng.integers(0, 200, size=int(lengths.sum())).astype(np.uint16)
        np.save(directory / f"{split}.tokens.npy", tokens)
        np.save(directory / f"{split}.docs.npy", np.stack([starts, lengths, 0 * lengths], axis=1))
    Vocabulary.gpt2().save(directory / VOCAB_FILE)
    summary = {
        "sources": ["corpus"],
        "splits": {
            s: {"sha256": _hashes(directory, s), "unknown_token_share": 0.0}
            for s in ("train", "test")
        },
        "vocab": {"name": "gpt2-50257", "sha256": sha256_file(directory / VOCAB_FILE)},
    }
    (directory / "split.json").write_text(json.dumps(summary))
    return directory / "split.json"


def _hashes(directory, split):
    return {
        f"{split}.{kind}.npy": sha256_file(directory / f"{split}.{kind}.npy")
        for kind in ("tokens", "docs")
    }


def test_run_length_counts_epochs_on_the_whole_split():
    config = TrainConfig(batch_size=4, epochs=2, max_steps_per_epoch=None)
    assert run_length(config, split_tokens=1000, block_size=8) == (32, 64)  # ceil(1000 / 32)


@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_a_smaller_data_fraction_trains_for_the_same_steps(tmp_path, monkeypatch, fraction):
    monkeypatch.chdir(tmp_path)  # checkpoints go under the working directory
    split = write_split(tmp_path)
    args = argparse.Namespace(
        split=split, weights=tmp_path / "w.safetensors", metrics=tmp_path / "m.json",
        run=tmp_path / "run.json", curve=tmp_path / "curve.tsv", steps=tmp_path / "steps.tsv",
        no_progress=True,
    )  # fmt: skip
    params = {"data": {"loader": "packed", "tinystories_weight": 0.5}}
    model = {"type": "lstm", "block_size": 8, "embed_size": 4}
    training = {"batch_size": 4, "max_steps_per_epoch": None, "warmup_steps": 1,
                "eval_interval": 50, "eval_batches": 1, "device": "cpu", "dtype": "float32",
                "data_fraction": fraction}  # fmt: skip
    train_stage.train_model(args, params, "lstm", model, training)
    record = json.loads(args.run.read_text())
    split_tokens = int(np.load(tmp_path / "train.docs.npy")[:, 1].sum())
    assert record["metrics"]["steps"] == -(-split_tokens // 32)  # one pass over the whole split
    assert (record["train_tokens"] < 0.3 * split_tokens) == (fraction < 1)  # the ladder's point
    assert record["data_fraction"] == fraction
    final = record["final"]
    assert final["gap"] == pytest.approx(final["test_loss"] - final["train_loss"])
    assert final["gap_stderr"] > 0 and final["test_loss_stderr"] > 0
