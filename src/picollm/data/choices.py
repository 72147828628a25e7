"""Random choices that keep count of their own probability.

A generating process draws a document by calling ``chooser.choice(options, weights)`` a number of
times. :class:`Chooser` makes those draws from a seeded ``random.Random`` and adds up the natural
log-probability of every draw, so after one document ``chooser.logprob`` is
``log p(choice path)``. When different paths never yield the same text (each generator's
docstring argues it, and the tests check it by enumerating every path of a tiny configuration),
that is ``log p(document)``.

Only ``random.random()`` is used, whose sequence Python guarantees for a seed across versions.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Chooser:
    """Draws choices from ``rng`` and accumulates their log-probability in ``logprob``."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self.logprob = 0.0

    def choice(self, options: Sequence[T], weights: Sequence[float] | None = None) -> T:
        """One of ``options``: uniformly, or with probability proportional to ``weights``."""
        n = len(options)
        if weights is None:
            index = min(int(self._rng.random() * n), n - 1)
            self.logprob -= math.log(n)
        else:
            cumulative = list(itertools.accumulate(weights))
            total = cumulative[-1]
            index = min(bisect.bisect_right(cumulative, self._rng.random() * total), n - 1)
            self.logprob += math.log(weights[index] / total)
        return options[index]
