"""Statistics of repeated runs: Student-t confidence bands over seeds, and whether two bands part.

A study trains each configuration with a few seeds; the figures draw the mean over seeds and a
95 % confidence band for it, ``mean +- t(0.975, n - 1) * sd / sqrt(n)``. With 3 seeds the t
quantile is 4.30, not 1.96: few seeds make wide bands, which is the honest answer.

The t quantile is computed here (the project has no SciPy): the two-sided probability
``A(t | nu) = P(|T| < t)`` has a closed form for integer degrees of freedom (Abramowitz and
Stegun 1964, 26.7.3 and 26.7.4), a finite sum of powers of ``cos(theta)`` with
``theta = arctan(t / sqrt(nu))``; it increases with t, so bisection inverts it to float precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL = 0.95  # the confidence level of every band the figures draw


def t_two_sided_probability(t: float, df: int) -> float:
    """``P(|T| < t)`` for Student's t with ``df`` degrees of freedom (t >= 0, df >= 1 an int).

    A&S 26.7.3 (odd df): ``2/pi * (theta + sin(theta) * (c + 2/3 c^3 + 2*4/(3*5) c^5 + ...))``
    up to the ``c^(df-2)`` term, with ``c = cos(theta)``; for df = 1 only ``2 theta / pi``.
    A&S 26.7.4 (even df): ``sin(theta) * (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ...)`` up to ``c^(df-2)``.
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    if not t >= 0:
        raise ValueError(f"t must be >= 0, got {t!r}")
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2:
        term, total = c, 0.0 if df == 1 else c  # first term of the sum: c
        for k in range(3, df - 1, 2):  # the c^k terms, k odd, up to df - 2
            term *= c * c * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # the c^k terms, k even, up to df - 2
        term *= c * c * (k - 1) / k
        total += term
    return s * total


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (0.5 < p < 1).

    E.g. ``t_quantile(0.975, 2) = 4.3027``: the half-width factor of a two-sided 95 % interval.
    Bisection on ``t_two_sided_probability`` (2p - 1 is the two-sided mass below the quantile).
    """
    if not 0.5 < probability < 1:
        raise ValueError(f"probability must be in (0.5, 1), got {probability!r}")
    target = 2 * probability - 1
    low, high = 0.0, 1.0
    while t_two_sided_probability(high, df) < target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if t_two_sided_probability(middle, df) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class Band:
    """Mean over seeds and its confidence band; ``low``/``high`` are None with a single seed."""

    mean: float
    low: float | None
    high: float | None
    n: int  # seeds

    def separates_from(self, other: Band) -> bool:
        """Whether the two bands do not overlap (False when either has no band).

        Disjoint 95 % intervals imply a significant difference at a level stricter than 5 %:
        a conservative reading, so "larger than their bands" never overstates a difference.
        """
        if None in (self.low, self.high, other.low, other.high):
            return False
        return self.high < other.low or other.high < self.low


def band(values: Sequence[float], level: float = LEVEL) -> Band:
    """Mean of ``values`` (one per seed) and its Student-t confidence band at ``level``.

    Half-width ``t((1 + level) / 2, n - 1) * s / sqrt(n)``, s the sample standard deviation
    (n - 1 in its denominator). Seeds are independent runs, so the mean's error is s / sqrt(n).
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("band needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"band needs finite values, got {values}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Band(mean, None, None, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return Band(mean, mean - half, mean + half, n)


def separated_points(a: Sequence[Band], b: Sequence[Band]) -> list[bool]:
    """Point by point, whether two series' bands separate (the series must be aligned)."""
    if len(a) != len(b):
        raise ValueError(
            f"series of {len(a)} and {len(b)} points cannot be compared point by point"
        )
    return [x.separates_from(y) for x, y in zip(a, b, strict=True)]
