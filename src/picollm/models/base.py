"""The interface every picollm language model implements.

A model maps token ids ``(batch, time)`` to next-token logits ``(batch, time, vocab)``.
For generation it also decodes incrementally: ``new_state`` makes an empty decoding state
(a KV cache, a recurrent state, a token window) and ``forward_step`` consumes new tokens,
returning their logits and the advanced state. Feeding a sequence in pieces through
``forward_step`` gives the same logits as one ``forward`` over the whole sequence.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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
        self, tokens: torch.Tensor, state: DecodingState
    ) -> tuple[torch.Tensor, DecodingState]:
        """Consume ``tokens`` (B, T_new) after the context held in ``state``.

        Returns logits (B, T_new, V) and the advanced state. The caller must not feed more
        than ``max_context`` tokens in total into one state.
        """
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Number of distinct trainable parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
