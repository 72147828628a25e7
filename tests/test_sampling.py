"""Samplers against hand-made kept sets, a naive nucleus oracle and chi-square goodness of fit."""

import math

import pytest
import torch

from picollm.sampling import (
    MASS_TOLERANCE,
    SamplingConfig,
    nucleus_mask,
    nucleus_sampling,
    sample_next,
)

# Upper 0.1% points of the chi-square distribution, by degrees of freedom: NIST/SEMATECH
# e-Handbook of Statistical Methods, section 1.3.6.7.4, "Critical Values of the Chi-Square
# Distribution" (column 0.999). A correct sampler exceeds them with probability 0.001.
CHI2_CRITICAL_0_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322}


def logits_of(probs: list[float]) -> torch.Tensor:
    """float32 logits whose softmax is ``probs`` up to float32 rounding."""
    return torch.tensor(probs, dtype=torch.float64).log().float()


def kept(mask: torch.Tensor) -> set[int]:
    return set(mask.nonzero().flatten().tolist())


# ---------------------------------------------------------------- the naive oracle


def oracle_nucleus(probs: list[float], p: float) -> set[int]:
    """The course's nucleus, by a plain loop: rank by (-prob, id), add tokens until mass >= p."""
    if p == 1:
        return {i for i, q in enumerate(probs) if q > 0}
    chosen, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: (-probs[i], i)):
        chosen.add(i)
        mass += probs[i]
        if mass >= p - MASS_TOLERANCE:
            break
    return chosen


def oracle_distribution(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> list[float]:
    """Temperature, then the top_k most likely (ties: lower id), then the nucleus; renormalised."""
    probs = torch.softmax(logits.double() / temperature, dim=-1).tolist()
    ids = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    if top_k is not None:
        survivors = set(ids[:top_k])
        probs = [q if i in survivors else 0.0 for i, q in enumerate(probs)]
    probs = [q / sum(probs) for q in probs]
    if top_p is not None:
        survivors = oracle_nucleus(probs, top_p)
        probs = [q if i in survivors else 0.0 for i, q in enumerate(probs)]
    return [q / sum(probs) for q in probs]


def chi_square(counts: torch.Tensor, expected_probs: list[float]) -> tuple[float, int]:
    """Pearson's statistic over the tokens of nonzero expected probability, and its dof."""
    total = int(counts.sum())
    support = [i for i, q in enumerate(expected_probs) if q > 0]
    statistic = sum(
        (int(counts[i]) - total * expected_probs[i]) ** 2 / (total * expected_probs[i])
        for i in support
    )
    return statistic, len(support) - 1


# ---------------------------------------------------------------- exact kept sets


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (1e-9, {0}),
        (0.3, {0}),
        (0.5, {0}),  # p equals p(1): k = 1
        (0.6, {0, 1}),
        (0.75, {0, 1}),  # p equals p(1) + p(2): exactly 2 tokens
        (0.8, {0, 1, 2}),
        (0.875, {0, 1, 2}),
        (0.9, {0, 1, 2, 3}),
        (1.0, {0, 1, 2, 3}),
    ],
)
def test_nucleus_kept_sets_on_a_dyadic_distribution(p, expected):
    assert kept(nucleus_mask(logits_of([0.5, 0.25, 0.125, 0.125]), p)) == expected


def test_nucleus_follows_probability_not_token_order():
    logits = logits_of([0.125, 0.5, 0.125, 0.25])
    assert kept(nucleus_mask(logits, 0.75)) == {1, 3}
    assert kept(nucleus_mask(logits, 0.8)) == {0, 1, 3}  # ties: the lower id first


def test_p_equal_to_an_inexact_cumulative_sum_counts_as_reaching_it():
    # 0.4 + 0.3 is not exactly 0.7 in binary, and the float32 logits round further.
    logits = logits_of([0.1, 0.4, 0.2, 0.3])
    assert kept(nucleus_mask(logits, 0.7)) == {1, 3}
    assert kept(nucleus_mask(logits, 0.4)) == {1}
    assert kept(nucleus_mask(logits, 0.9)) == {1, 2, 3}


@pytest.mark.parametrize(
    ("probs", "p", "expected"),
    [
        ([0.25, 0.25, 0.25, 0.25], 0.5, {0, 1}),
        ([0.25, 0.25, 0.25, 0.25], 0.51, {0, 1, 2}),
        ([0.2, 0.3, 0.2, 0.3], 0.5, {1, 3}),
        ([0.2, 0.3, 0.2, 0.3], 0.7, {0, 1, 3}),
        ([0.2, 0.3, 0.2, 0.3], 0.2, {1}),
    ],
)
def test_ties_keep_the_lower_token_id_first(probs, p, expected):
    assert kept(nucleus_mask(logits_of(probs), p)) == expected


def test_tiny_p_keeps_only_the_argmax():
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    mask = nucleus_mask(logits, 1e-12)
    assert torch.equal(mask, torch.nn.functional.one_hot(logits.argmax(-1), 40).bool())


def test_p_one_keeps_every_token_of_nonzero_probability():
    logits = torch.tensor([0.0, -60.0, -math.inf, 3.0, -math.inf])
    assert kept(nucleus_mask(logits, 1.0)) == {0, 1, 3}


@pytest.mark.parametrize(
    ("vocab", "scale"),
    [(300, 3.0), (300, 0.0), (6000, 1.5), (6000, 0.05)],  # nuclei from 1 to >4096 tokens
)
def test_nucleus_mask_matches_the_naive_oracle(vocab, scale):
    """Random logits, rounded so that many probabilities tie; every ranked-head size is used."""
    logits = (torch.randn(4, vocab, generator=torch.Generator().manual_seed(vocab)) * scale).round(
        decimals=1
    )
    for p in (0.05, 0.3, 0.9, 0.97, 1.0):
        mask = nucleus_mask(logits, p)
        for row in range(4):
            probs = torch.softmax(logits[row].double(), dim=-1).tolist()
            assert kept(mask[row]) == oracle_nucleus(probs, p), (row, p)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, 3, None), (0.5, 5, 0.8), (2.0, 4, 0.6), (1.0, 9, 1.0), (0.7, 100, 0.5)],
)
def test_composed_distribution_matches_the_oracle(temperature, top_k, top_p):
    logits = torch.randn(3, 9, generator=torch.Generator().manual_seed(2)).round(decimals=0)
    config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    got = config.distribution(logits)
    for row in range(3):
        want = oracle_distribution(logits[row], temperature, top_k, top_p)
        assert got[row].tolist() == pytest.approx(want, abs=1e-12)


def test_batched_shapes():
    logits = torch.randn(2, 3, 50, generator=torch.Generator().manual_seed(3))
    mask = nucleus_mask(logits, 0.7)
    assert mask.shape == (2, 3, 50)
    assert torch.equal(mask[1, 2], nucleus_mask(logits[1, 2], 0.7))
    tokens = sample_next(logits, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 3) and tokens.dtype == torch.long
    assert nucleus_sampling(logits[0, 0], 0.5).shape == ()


# ---------------------------------------------------------------- greedy and validation


def test_greedy_and_temperature_zero_are_the_argmax_with_lowest_id_on_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 0.0, 5.0, 5.0]])
    for config in (SamplingConfig(greedy=True), SamplingConfig(temperature=0.0, top_p=0.1)):
        assert config.sample(logits).tolist() == [1, 0]
        assert config.distribution(logits).argmax(-1).tolist() == [1, 0]
    assert sample_next(logits, top_k=1).tolist() == [1, 0]


@pytest.mark.parametrize("p", [0, -0.1, 1.5, math.nan, "0.5", True, None])
def test_invalid_p_is_rejected_by_name(p):
    logits = torch.zeros(4)
    with pytest.raises(ValueError, match=r"^p must"):
        nucleus_sampling(logits, p)
    with pytest.raises(ValueError, match=r"^p must"):
        nucleus_mask(logits, p)
    if p is not None:
        with pytest.raises(ValueError, match="top_p"):
            sample_next(logits, top_p=p)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True, "3"])
def test_invalid_top_k_is_rejected_by_name(top_k):
    with pytest.raises(ValueError, match="top_k"):
        sample_next(torch.zeros(4), top_k=top_k)


@pytest.mark.parametrize("temperature", [-1.0, math.nan, math.inf, None, "1"])
def test_invalid_temperature_is_rejected_by_name(temperature):
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=temperature)


def test_invalid_logits_are_rejected():
    with pytest.raises(TypeError, match="logits"):
        sample_next(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="logits"):
        sample_next(torch.zeros(3, 0))
    with pytest.raises(ValueError, match="NaN"):
        sample_next(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="-inf"):
        sample_next(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]), top_p=0.5)


# ---------------------------------------------------------------- drawing


def test_same_generator_seed_same_tokens():
    logits = torch.randn(200, 30, generator=torch.Generator().manual_seed(4))

    def draw(seed):
        return sample_next(logits, top_p=0.9, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, 0.8), (1.0, None, 1.0), (1.7, None, None), (0.6, 5, None), (1.3, 6, 0.7)],
)
def test_draws_fit_the_truncated_distribution(temperature, top_k, top_p):
    """Pearson chi-square at a fixed seed; no token outside the kept set ever comes out."""
    logits = torch.tensor([2.0, 1.5, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0])
    draws = 40_000
    tokens = sample_next(
        logits.expand(draws, -1),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=torch.Generator().manual_seed(5),
    )
    counts = torch.bincount(tokens, minlength=8)
    expected = oracle_distribution(logits, temperature, top_k, top_p)
    assert all(counts[i] == 0 for i, q in enumerate(expected) if q == 0)
    statistic, dof = chi_square(counts, expected)
    assert statistic < CHI2_CRITICAL_0_999[dof]
    # The test has power: a 15% different temperature is rejected at the same sample size.
    wrong = oracle_distribution(logits, temperature * 1.15, top_k, top_p)
    assert chi_square(counts, wrong)[0] > CHI2_CRITICAL_0_999[dof]
