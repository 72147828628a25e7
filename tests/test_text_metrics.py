"""Text metrics against values counted by hand."""

import math

import pytest

from picollm.text_metrics import (
    distinct_n,
    diversity_summary,
    mean_token_logprob,
    ngrams,
    repetition_rate,
)

# Two samples. Unigrams: 1 2 3 1 2 | 4 1 2 -> 8 in all, unique {1, 2, 3, 4} = 4.
# Bigrams: (1,2) (2,3) (3,1) (1,2) | (4,1) (1,2) -> 6, unique {(1,2), (2,3), (3,1), (4,1)} = 4.
# Trigrams: (1,2,3) (2,3,1) (3,1,2) | (4,1,2) -> 4, all unique.
SAMPLES = [[1, 2, 3, 1, 2], [4, 1, 2]]


def test_ngrams_in_order_and_none_for_short_samples():
    assert list(ngrams([5, 6, 7], 2)) == [(5, 6), (6, 7)]
    assert list(ngrams([5, 6, 7], 3)) == [(5, 6, 7)]
    assert list(ngrams([5, 6], 3)) == []


@pytest.mark.parametrize(("n", "expected"), [(1, 4 / 8), (2, 4 / 6), (3, 4 / 4)])
def test_distinct_n_by_hand(n, expected):
    assert distinct_n(SAMPLES, n) == pytest.approx(expected)


def test_distinct_n_counts_across_samples_not_across_their_boundary():
    # (2, 9) would only exist if the samples were joined.
    assert distinct_n([[1, 2], [9, 1]], 2) == 1.0
    assert distinct_n([[1, 2], [1, 2]], 2) == 0.5


def test_repetition_rate_by_hand():
    # 4-grams of 7 7 7 7 7 7: three, all "7 7 7 7"; the 2nd and 3rd repeat the 1st.
    assert repetition_rate([[7] * 6]) == pytest.approx(2 / 3)
    # A period-3 loop, a b c a b c a: 4-grams abca bcab cabc abca -> the 4th repeats the 1st.
    assert repetition_rate([[1, 2, 3, 1, 2, 3, 1]]) == pytest.approx(1 / 4)
    # Repeats are only looked for inside a sample; pooled: 1 repeat in 4 + 1 four-grams.
    assert repetition_rate([[1, 2, 3, 1, 2, 3, 1], [1, 2, 3, 1]]) == pytest.approx(1 / 5)
    assert repetition_rate([[1, 2, 3, 4, 5]]) == 0.0
    assert repetition_rate([[1, 1, 1]], n=2) == pytest.approx(1 / 2)


def test_nothing_to_count_is_nan():
    assert math.isnan(distinct_n([[1, 2]], 3))
    assert math.isnan(repetition_rate([[1, 2, 3]]))
    assert math.isnan(mean_token_logprob([[], []]))


def test_mean_token_logprob_weights_tokens_not_samples():
    assert mean_token_logprob([[-1.0, -2.0, -3.0], [-6.0]]) == pytest.approx(-3.0)


def test_diversity_summary_row():
    row = diversity_summary(SAMPLES, [[-1.0] * 5, [-4.0] * 3])
    assert row == pytest.approx(
        {
            "distinct_1": 0.5,
            "distinct_2": 4 / 6,
            "distinct_3": 1.0,
            "repetition_4": 0.0,  # 4-grams (1,2,3,1) (2,3,1,2): no repeat; none in sample 2
            "mean_length": 4.0,
            "mean_logprob": -17 / 8,
        }
    )
    assert "mean_logprob" not in diversity_summary(SAMPLES)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must"):
        distinct_n(SAMPLES, 0)
    with pytest.raises(ValueError, match="logprobs"):
        diversity_summary(SAMPLES, [[-1.0]])
