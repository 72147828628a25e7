"""Diversity and repetition of generated text, on token ids (pure functions of lists of lists).

A *set of samples* is a list of token-id lists, one per generated continuation. n-grams are
contiguous runs of n tokens inside one sample; they never span two samples. A metric with
nothing to count (e.g. every sample shorter than n) is ``math.nan``, not a misleading 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

Samples = Sequence[Sequence[int]]


def ngrams(sample: Sequence[int], n: int) -> Iterator[tuple[int, ...]]:
    """The n-grams of one sample, in order: ``len(sample) - n + 1`` of them (none if shorter)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return (tuple(sample[i : i + n]) for i in range(len(sample) - n + 1))


def distinct_n(samples: Samples, n: int) -> float:
    """Distinct-n (Li et al. 2016, arXiv 1510.03055): unique n-grams / all n-grams.

    Both counts are over the whole set of samples, so an n-gram that recurs in two samples is
    one unique n-gram and two n-grams.
    """
    unique: set[tuple[int, ...]] = set()
    total = 0
    for sample in samples:
        for gram in ngrams(sample, n):
            unique.add(gram)
            total += 1
    return len(unique) / total if total else math.nan


def repetition_rate(samples: Samples, n: int = 4) -> float:
    """The share of n-grams that repeat an n-gram seen earlier in the same sample.

    Equivalently: the fraction of tokens (from each sample's n-th token on) that complete an
    n-gram the sample already contains. Pooled over the set: repeats / all n-grams. A sample
    stuck in a loop of period <= ``len - n`` scores close to 1; text without repeated phrases 0.
    """
    repeats = 0
    total = 0
    for sample in samples:
        seen: set[tuple[int, ...]] = set()
        for gram in ngrams(sample, n):
            repeats += gram in seen
            seen.add(gram)
            total += 1
    return repeats / total if total else math.nan


def mean_token_logprob(logprobs: Sequence[Sequence[float]]) -> float:
    """The mean per-token log-probability over all tokens of all samples (token-weighted)."""
    total = sum(sum(sample) for sample in logprobs)
    count = sum(len(sample) for sample in logprobs)
    return total / count if count else math.nan


def diversity_summary(
    samples: Samples, logprobs: Sequence[Sequence[float]] | None = None
) -> dict[str, float]:
    """The metrics of one set of samples, as a flat row for a results table.

    Keys: ``distinct_1``, ``distinct_2``, ``distinct_3``, ``repetition_4``, ``mean_length``
    (tokens per sample), and with ``logprobs`` (one per token, e.g. `Generation.logprobs`)
    ``mean_logprob``, the mean per-token log-probability of the samples under the model.
    """
    row = {f"distinct_{n}": distinct_n(samples, n) for n in (1, 2, 3)}
    row["repetition_4"] = repetition_rate(samples, 4)
    row["mean_length"] = sum(map(len, samples)) / len(samples) if samples else math.nan
    if logprobs is not None:
        if [len(s) for s in logprobs] != [len(s) for s in samples]:
            raise ValueError("logprobs must hold one value per token of samples")
        row["mean_logprob"] = mean_token_logprob(logprobs)
    return row
