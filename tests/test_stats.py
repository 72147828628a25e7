"""Student-t quantiles against printed tables; bands over seeds; band separation."""

import math

import numpy as np
import pytest

from picollm.stats import Band, band, separated_points, t_quantile, t_two_sided_probability

# t(0.975, df), from the standard two-sided 95 % table (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 30: 2.042,
         100: 1.984}  # fmt: skip
T_995 = {1: 63.657, 2: 9.925, 5: 4.032, 20: 2.845}


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_quantile_matches_the_975_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=6e-4)


@pytest.mark.parametrize(("df", "expected"), sorted(T_995.items()))
def test_t_quantile_matches_the_995_table(df, expected):
    assert t_quantile(0.995, df) == pytest.approx(expected, abs=6e-4)


def test_t_quantile_tends_to_the_normal_quantile():
    assert t_quantile(0.975, 5000) == pytest.approx(1.95996, abs=1e-3)


def test_t_probability_agrees_with_a_numerical_integral_of_the_density():
    for df in (1, 2, 3, 6, 7):
        t = 1.7
        grid = np.linspace(-t, t, 200_001)
        density = (
            math.gamma((df + 1) / 2)
            / (math.sqrt(df * math.pi) * math.gamma(df / 2))
            * (1 + grid**2 / df) ** (-(df + 1) / 2)
        )
        assert t_two_sided_probability(t, df) == pytest.approx(
            np.trapezoid(density, grid), abs=1e-8
        )


def test_t_quantile_rejects_bad_input():
    with pytest.raises(ValueError, match="probability"):
        t_quantile(0.4, 3)
    with pytest.raises(ValueError, match="df"):
        t_quantile(0.975, 0)


def test_band_of_three_seeds_is_mean_plus_minus_t_times_standard_error():
    result = band([1.0, 2.0, 4.0])
    half = 4.3027 * np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3)
    assert result.mean == pytest.approx(7 / 3)
    assert result.low == pytest.approx(7 / 3 - half, abs=1e-3)
    assert result.high == pytest.approx(7 / 3 + half, abs=1e-3)
    assert result.n == 3


def test_one_seed_has_no_band():
    assert band([0.5]) == Band(0.5, None, None, 1)


def test_band_refuses_no_values_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        band([])
    with pytest.raises(ValueError, match="finite"):
        band([1.0, float("nan")])


def test_separation_needs_disjoint_bands():
    low = Band(1.0, 0.9, 1.1, 3)
    high = Band(2.0, 1.8, 2.2, 3)
    touching = Band(1.2, 1.05, 1.3, 3)
    single = Band(5.0, None, None, 1)
    assert separated_points([low, low, low], [high, touching, single]) == [True, False, False]
    assert high.separates_from(low)
    with pytest.raises(ValueError, match="point by point"):
        separated_points([low], [])
