"""Choosing the next token from logits: greedy, temperature, top-k and nucleus (top-p) sampling.

Every sampler builds an explicit *truncated distribution* over the vocabulary and draws one
token from it, so what can be sampled is exactly the support of that distribution
(`SamplingConfig.distribution`, `nucleus_mask`). The settings compose in the usual order:
temperature scales the logits, top-k keeps the k most likely tokens, top-p keeps the nucleus of
what remains (renormalised), and the draw is from the renormalised survivors. Temperature 0 (or
``greedy=True``) is the argmax, not a division by zero.

Conventions, chosen so that hand-made cases are exact and runs are reproducible:

- Probabilities are a float64 softmax of the (upcast) logits; cumulative masses are float64.
- Ranking is by probability; equal probabilities rank the lower token id first. This decides
  which of several tied tokens a top-k or nucleus boundary keeps, and matches ``argmax``
  (which returns the first maximal index).
- Nucleus, as the course defines it: with ranked probabilities p(1) >= p(2) >= ..., keep the
  k most likely tokens where k is the smallest integer with
  p(1) + ... + p(k-1) < p <= p(1) + ... + p(k), i.e. the first rank whose cumulative mass
  reaches p. A mass within ``MASS_TOLERANCE`` below p counts as reaching it, so that p equal to
  a cumulative sum of the intended probabilities (probs [0.5, 0.25, 0.125, 0.125], p = 0.75)
  keeps exactly that many tokens even though logits carry float32 rounding. p = 1 truncates
  nothing: every token of nonzero probability stays.
- The draw is by inverse CDF: one float64 uniform per row from ``generator``, returning the
  first token whose cumulative probability exceeds it; zero-probability tokens are never drawn.

Speed: with a 50k vocabulary a full sort costs milliseconds, more than a small model's decoding
step. The nucleus only needs the ranked *values* of its head (which tied token is kept is decided
afterwards by id), so they come from ``topk`` on a head of 256 values, then of 4096, and from a
full sort only when the nucleus is larger (a head that falls short also bounds how many more
tokens are needed, which skips a head too small to help). p = 1 sorts nothing; after top-k only
the k survivors are ranked.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MASS_TOLERANCE = 1e-6
"""A cumulative mass this close below p counts as reaching p (float32 logits are ~1e-7 exact)."""

_HEAD_SIZES = (256, 4096)
"""Ranked-head sizes tried, in order, before sorting a whole row when searching the nucleus."""


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor (..., V), got {got}")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have a non-empty vocabulary axis, got shape {logits.shape}")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_probability_mass(value: object, name: str) -> None:
    if not _is_real(value) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token; validated on construction.

    temperature: >= 0; 0 means greedy. top_k: None or an integer >= 1 (at least the vocabulary
    size: no truncation). top_p: None or a mass in (0, 1] (1: no truncation). greedy: argmax,
    ignoring the other settings.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        if not _is_real(self.temperature) or not (
            math.isfinite(self.temperature) and self.temperature >= 0
        ):
            raise ValueError(
                f"temperature must be a finite number >= 0 (0 means greedy), got {self.temperature!r}"
            )
        if self.top_k is not None and (
            not isinstance(self.top_k, numbers.Integral)
            or isinstance(self.top_k, bool)
            or self.top_k < 1
        ):
            raise ValueError(f"top_k must be None or an integer >= 1, got {self.top_k!r}")
        if self.top_p is not None:
            _check_probability_mass(self.top_p, "top_p")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy must be True or False, got {self.greedy!r}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def distribution(self, logits: torch.Tensor) -> torch.Tensor:
        """The truncated, renormalised distribution that `sample` draws from: float64 (..., V)."""
        _check_logits(logits)
        vocab = logits.shape[-1]
        flat = logits.reshape(-1, vocab).double()  # (N, V)
        if self.is_greedy:
            return F.one_hot(flat.argmax(dim=-1), vocab).double().view(logits.shape)
        probs = torch.softmax(flat / self.temperature, dim=-1)  # (N, V)
        survivors = vocab
        if self.top_k is not None and self.top_k < vocab:
            survivors = int(self.top_k)
            probs = _keep_top_k(probs, survivors)
        if self.top_p is not None and self.top_p < 1:
            probs = _keep_nucleus(probs, self.top_p, survivors)
        return probs.view(logits.shape)

    def sample(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Token ids (...) drawn from logits (..., V)."""
        _check_logits(logits)
        if self.is_greedy:
            return logits.argmax(dim=-1)
        probs = self.distribution(logits)
        return _draw(probs.reshape(-1, logits.shape[-1]), generator).view(logits.shape[:-1])


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token ids (...) drawn from logits (..., V): temperature, then top-k, then top-p."""
    config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    return config.sample(logits, generator)


def nucleus_sampling(
    logits: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Token ids (...) drawn from the nucleus of mass p of softmax(logits (..., V))."""
    _check_probability_mass(p, "p")
    return SamplingConfig(top_p=p).sample(logits, generator)


def nucleus_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Boolean (..., V): the tokens nucleus sampling with mass p can return."""
    _check_probability_mass(p, "p")
    return SamplingConfig(top_p=p).distribution(logits) > 0


def _keep_top_k(probs: torch.Tensor, k: int) -> torch.Tensor:
    """probs (N, V) restricted to each row's k most likely tokens, renormalised."""
    kth_largest = probs.topk(k, dim=-1).values[:, -1]  # (N,)
    keep = _highest_ranked(probs, torch.full_like(kth_largest, k, dtype=torch.long), kth_largest)
    return _renormalised(probs, keep)


def _keep_nucleus(probs: torch.Tensor, p: float, survivors: int) -> torch.Tensor:
    """probs (N, V), at most `survivors` of them nonzero, restricted to the nucleus of mass p."""
    size, kth_largest = _nucleus_size(probs, p, survivors)
    return _renormalised(probs, _highest_ranked(probs, size, kth_largest))


def _nucleus_size(
    probs: torch.Tensor, p: float, survivors: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row (N,): the nucleus size k and the probability of the k-th ranked token.

    The cumulative sums of a ranked head equal the start of those of a full sort, so a head is
    enough once every row's mass reaches p inside it. When it does not, every token left out
    has at most the head's last probability, which bounds how many more are needed: the next
    head is the first size in ``_HEAD_SIZES`` that can be enough (else all survivors).
    """
    target = p - MASS_TOLERANCE
    size = min(_HEAD_SIZES[0], survivors)
    while True:
        head = _ranked_head(probs, size)  # (N, size), descending
        mass = head.cumsum(dim=-1)  # (N, size)
        if size == survivors or (mass[:, -1] >= target).all():
            break
        needed = size + float(((target - mass[:, -1]) / head[:, -1]).max())  # inf if last is 0
        size = next((s for s in _HEAD_SIZES if needed <= s < survivors), survivors)
    k = ((mass < target).sum(dim=-1) + 1).clamp(max=size)  # (N,) the first rank reaching p
    return k, head.gather(-1, (k - 1).unsqueeze(-1)).squeeze(-1)


def _ranked_head(probs: torch.Tensor, size: int) -> torch.Tensor:
    """The `size` largest values of each row of probs (N, V), in descending order."""
    if size >= probs.shape[-1]:
        return probs.sort(dim=-1, descending=True).values
    return probs.topk(size, dim=-1).values


def _highest_ranked(
    probs: torch.Tensor, count: torch.Tensor, kth_largest: torch.Tensor
) -> torch.Tensor:
    """Boolean (N, V): each row's `count` highest-ranked tokens, given the count-th value.

    Everything above that value is kept, then tokens equal to it in increasing id order until
    `count` are kept (ties rank the lower id first).
    """
    threshold = kth_largest.unsqueeze(-1)  # (N, 1)
    above = probs > threshold  # (N, V)
    tied = probs == threshold  # (N, V)
    room = count.unsqueeze(-1) - above.sum(dim=-1, keepdim=True)  # (N, 1) tied tokens that fit
    return above | (tied & (tied.cumsum(dim=-1) <= room))


def _renormalised(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = probs.where(keep, 0.0)  # (N, V)
    return kept / kept.sum(dim=-1, keepdim=True)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of probs (N, V) by inverse CDF; zero-probability tokens never come out.

    A zero-probability token has the same cumulative mass as its predecessor, so it is never the
    first whose cumulative mass exceeds u.
    """
    cdf = probs.cumsum(dim=-1)  # (N, V)
    total = cdf[:, -1:]  # (N, 1)
    if not torch.isfinite(total).all():
        raise ValueError("logits must not hold NaN, nor be -inf for every token of a row")
    u = torch.rand(total.shape, dtype=cdf.dtype, device=cdf.device, generator=generator) * total
    u = torch.minimum(u, total.nextafter(torch.zeros_like(total)))  # rounding must keep u < total
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)  # (N,)
