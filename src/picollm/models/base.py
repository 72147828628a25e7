"""The interface every picollm language model implements, and checks shared by model configs.

A model maps token ids ``(batch, time)`` to next-token logits ``(batch, time, vocab)``.
For generation it also decodes incrementally: ``new_state`` makes an empty decoding state
(a KV cache, a recurrent state, a token window) and ``forward_step`` consumes new tokens,
returning their logits and the advanced state. Feeding a sequence in pieces through
``forward_step`` gives the same logits as one ``forward`` over the whole sequence.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import nn

from picollm.errors import UserError


class TokenIdError(UserError, ValueError):
    """Token ids outside a model's vocabulary: data and model disagree."""


DecodingState = Any
"""Opaque per-model decoding state; only the model that made it reads it."""


class LanguageModel(nn.Module):
    """Base class: subclasses set ``vocab_size`` and ``max_context`` and implement three methods."""

    vocab_size: int
    max_context: int | None
    """Longest context the model can condition on (None: unbounded, e.g. recurrent models)."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        raise NotImplementedError

    def new_state(self, batch_size: int) -> DecodingState:
        """An empty decoding state for ``batch_size`` sequences."""
        raise NotImplementedError

    def forward_step(
        self, tokens: torch.Tensor, state: DecodingState, last_only: bool = False
    ) -> tuple[torch.Tensor, DecodingState]:
        """Consume ``tokens`` (B, T_new) after the context held in ``state``.

        Returns logits (B, T_new, V), or (B, 1, V) for the last new token only when
        ``last_only``, and the advanced state. A state may be advanced in place: use only the
        returned one afterwards. The caller must not feed more than ``max_context`` tokens in
        total into one state. Decoding is for inference (call it under ``torch.no_grad()``).
        """
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Number of distinct trainable parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def check_tokens(tokens: torch.Tensor, vocab_size: int) -> None:
    """Raise unless ``tokens`` is a (B, T) integer tensor of ids in [0, vocab_size).

    The range check reads values, so it is skipped while ``torch.compile`` traces (it would
    break the graph).
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"tokens must be an int64 or int32 tensor, got {_describe(tokens)}")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (batch, time), got {tuple(tokens.shape)}")
    if torch.compiler.is_compiling() or not tokens.numel():
        return
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise TokenIdError(
            f"token ids must be in [0, {vocab_size}) for this model, got ids from {low} to "
            f"{high}: the tokens were made for another vocabulary; rebuild the data "
            "(snakemake --forcerun tokenize) or retrain the model on it"
        )


def check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    """Raise unless ``value`` is an int (not a bool) in [low, high] (no upper bound if None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")


def check_float(
    name: str,
    value: object,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise unless ``value`` is a real number in the interval from ``low`` to ``high``.

    The ends are closed unless ``low_open`` / ``high_open``; ``high=None`` means no upper bound.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:  # value != value: NaN
        left = "(" if low_open else "["
        right = ")" if high_open or high is None else "]"
        upper = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in {left}{low:g}, {upper}{right}, got {value}")


def check_choice(name: str, value: object, choices: Collection[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def _describe(value: object) -> str:
    return f"tensor of {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
