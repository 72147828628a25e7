"""The vectorised memorisation rate against a loop over n-gram tuples."""

import numpy as np
import pytest

from picollm.memorisation import NgramIndex, copy_rate, copy_rates, ngram_hashes


def naive_rate(samples, reference, n):
    known = {tuple(reference[i : i + n]) for i in range(len(reference) - n + 1)}
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return sum(g in known for g in grams) / len(grams)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_copy_rate_matches_the_naive_loop(n):
    rng = np.random.default_rng(n)
    reference = rng.integers(0, 6, size=3000)  # small vocabulary: many partial matches
    samples = [rng.integers(0, 8, size=int(rng.integers(n, 60))) for _ in range(30)]  # 6, 7: unseen
    samples += [reference[100:160].copy(), reference[2000:2020].copy()]  # copied spans
    expected = naive_rate(samples, reference, n)
    assert 0 < expected < 1
    assert copy_rate(samples, NgramIndex(reference, n)) == pytest.approx(expected, abs=1e-12)


def test_copied_text_scores_one_and_fresh_text_zero():
    reference = np.arange(100)
    index = NgramIndex(reference, 4)
    assert copy_rate([reference[10:30]], index) == 1.0
    assert copy_rate([reference[10:30][::-1]], index) == 0.0


def test_ngrams_do_not_span_samples():
    index = NgramIndex(np.array([1, 2, 3, 4]), 4)
    assert copy_rate([np.array([1, 2]), np.array([3, 4])], index) != copy_rate(
        [np.array([1, 2, 3, 4])], index
    )
    assert np.isnan(copy_rate([np.array([1, 2])], index))


def test_hashes_tell_leading_zeros_and_order_apart():
    hashes = [ngram_hashes(np.array(t), 3)[0] for t in ([0, 1, 2], [1, 2, 0], [1, 0, 2], [2, 1, 0])]
    assert len(set(hashes)) == 4
    assert ngram_hashes(np.array([0, 5]), 2)[0] != ngram_hashes(np.array([5]), 1)[0]


def test_copy_rates_compare_train_with_the_test_control():
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 50, 2000), rng.integers(0, 50, 2000)
    rates = copy_rates([train[:200], train[500:700]], train, test, n=5)
    assert rates == {
        "train": 1.0,
        "test": pytest.approx(naive_rate([train[:200], train[500:700]], test, 5)),
    }


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="n must be"):
        ngram_hashes(np.arange(5), 0)
    with pytest.raises(ValueError, match="1-D integer"):
        ngram_hashes(np.zeros((2, 2), dtype=int), 2)
    with pytest.raises(ValueError, match="fewer than 8"):
        NgramIndex(np.arange(5), 8)
