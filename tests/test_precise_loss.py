"""Precise losses: per-window sums, the mean and standard error with windows as the unit,
and evaluation sets covering a whole split (and an equal-sized sample of another)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from picollm.data.loader import (
    IGNORE_INDEX,
    Batch,
    TokenStore,
    eval_batches,
    eval_items,
    matched_eval_sets,
)
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.training.loss import LossEstimate, estimate_loss, evaluate_loss, window_sums

CPU = torch.device("cpu")


def naive_estimate(losses_per_window: list[list[float]]) -> tuple[float, float]:
    """The loss per token and the ratio estimator's standard error, by explicit loops."""
    sums = [sum(w) for w in losses_per_window]
    counts = [len(w) for w in losses_per_window]
    mean = sum(sums) / sum(counts)
    n = len(sums)
    squares = sum((s - mean * c) ** 2 for s, c in zip(sums, counts, strict=True))
    return mean, math.sqrt(n / (n - 1) * squares) / sum(counts)


def test_equal_windows_give_the_standard_error_of_window_means():
    rng = np.random.default_rng(0)
    per_window = rng.gamma(2.0, 1.0, size=(40, 16))  # (W, T)
    estimate = LossEstimate.from_window_sums(
        torch.tensor(per_window.sum(axis=1)), torch.full((40,), 16)
    )
    means = per_window.mean(axis=1)
    assert estimate.loss == pytest.approx(per_window.mean())
    assert estimate.stderr == pytest.approx(means.std(ddof=1) / math.sqrt(40))
    assert (estimate.windows, estimate.tokens) == (40, 640)


def test_unequal_windows_match_the_naive_ratio_estimator_and_skip_empty_ones():
    rng = np.random.default_rng(1)
    windows = [list(rng.gamma(2.0, 1.0, size=int(k))) for k in rng.integers(1, 20, size=25)]
    sums = torch.tensor([sum(w) for w in windows] + [0.0])
    counts = torch.tensor([len(w) for w in windows] + [0])  # a window counting nothing
    estimate = LossEstimate.from_window_sums(sums, counts)
    mean, stderr = naive_estimate(windows)
    assert estimate.loss == pytest.approx(mean)
    assert estimate.stderr == pytest.approx(stderr)
    assert estimate.windows == 25


def test_one_window_has_no_standard_error_and_none_is_refused():
    assert math.isnan(LossEstimate.from_window_sums(torch.tensor([3.0]), torch.tensor([2])).stderr)
    with pytest.raises(ValueError, match="no window"):
        LossEstimate.from_window_sums(torch.tensor([0.0]), torch.tensor([0]))


def tiny_model() -> LSTMLanguageModel:
    torch.manual_seed(0)
    return LSTMLanguageModel(LSTMConfig(vocab_size=11, embed_size=8))


def test_window_sums_are_per_row_losses_of_every_batch():
    model = tiny_model()
    batches = [
        Batch(torch.randint(0, 11, (3, 5)), torch.randint(0, 11, (3, 5))),
        Batch(torch.randint(0, 11, (2, 5)), torch.randint(0, 11, (2, 5))),
    ]
    batches[1].targets[0, :3] = IGNORE_INDEX
    sums, counts = window_sums(model, batches, CPU)
    assert counts.tolist() == [5, 5, 5, 2, 5]
    with torch.no_grad():
        for row, (b, r) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]):
            logits = model(batches[b].inputs[r : r + 1])[0]  # (T, V)
            expected = sum(
                -torch.log_softmax(logits[t].double(), -1)[target].item()
                for t, target in enumerate(batches[b].targets[r].tolist())
                if target != IGNORE_INDEX
            )
            assert sums[row].item() == pytest.approx(expected, rel=1e-5)
    estimate = estimate_loss(model, batches, CPU)
    assert estimate.loss == pytest.approx(evaluate_loss(model, batches, CPU), rel=1e-6)


def test_matched_eval_sets_cover_the_test_split_and_as_many_train_windows():
    train = TokenStore.from_documents([list(range(10)) * 50])  # 500 tokens
    test = TokenStore.from_documents([list(range(10)) * 9 + [1]])  # 91 tokens: 11 windows of 8
    sets = matched_eval_sets({"train": train, "test": test}, block_size=8, batch_size=4, seed=3)
    rows = {split: sum(len(b.inputs) for b in batches) for split, batches in sets.items()}
    assert eval_items(test, 8) == 11
    assert rows == {"train": 11, "test": 11}
    starts = sorted(int(b.inputs[i, 0]) for b in sets["test"] for i in range(len(b.inputs)))
    assert starts == sorted(int(test.tokens[8 * j]) for j in range(11))  # the whole split
    again = matched_eval_sets({"train": train, "test": test}, block_size=8, batch_size=4, seed=3)
    for a, b in zip(sets["train"], again["train"], strict=True):
        assert torch.equal(a.inputs, b.inputs)
    capped = matched_eval_sets(
        {"train": train, "test": test}, block_size=8, batch_size=4, seed=3, max_rows=5
    )
    assert {split: sum(len(b.inputs) for b in sets) for split, sets in capped.items()} == {
        "train": 5, "test": 5
    }  # fmt: skip
    with pytest.raises(ValueError, match="reference split"):
        matched_eval_sets({"train": train}, block_size=8, batch_size=4, seed=3)


def test_eval_batches_max_rows_cuts_the_last_batch():
    store = TokenStore.from_documents([list(range(10)) * 50])
    batches = eval_batches(store, 8, batch_size=4, n_batches=3, seed=0, max_rows=10)
    assert [len(b.inputs) for b in batches] == [4, 4, 2]
    with pytest.raises(ValueError, match="max_rows"):
        eval_batches(store, 8, batch_size=4, n_batches=3, seed=0, max_rows=0)
