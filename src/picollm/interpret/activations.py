"""Residual-stream activations of a Transformer over a token stream, and the text around a row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from picollm.models.transformer import TransformerLanguageModel


@dataclass(frozen=True)
class Activations:
    """Row ``i`` of ``values`` is the residual stream at token ``tokens[i]``; the model read
    the tokens in consecutive windows of ``window`` tokens (row ``i`` saw ``window_start(i)``
    to ``i``)."""

    values: torch.Tensor  # (N, D) float32
    tokens: np.ndarray  # (N,) token ids
    window: int

    def window_start(self, row: int) -> int:
        return row - row % self.window


@torch.no_grad()
def residual_stream(
    model: TransformerLanguageModel,
    tokens: np.ndarray,
    layer: int,
    window: int,
    batch_windows: int = 64,
) -> Activations:
    """The residual stream after block ``layer`` (negative: from the last) at every token of
    ``tokens`` (N,), which the model reads in consecutive windows of ``window`` tokens
    (a last partial window is dropped)."""
    n_windows = len(tokens) // window
    if n_windows == 0:
        raise ValueError(f"need at least one window of {window} tokens, got {len(tokens)} tokens")
    model.eval()
    kept = np.asarray(tokens[: n_windows * window], dtype=np.int64)
    windows = torch.from_numpy(kept).view(n_windows, window)  # (W, T)
    values = [
        model.hidden_states(windows[start : start + batch_windows])[layer].flatten(0, 1).float()
        for start in range(0, n_windows, batch_windows)
    ]  # each (batch_windows * T, D)
    return Activations(values=torch.cat(values), tokens=kept, window=window)


def context(
    activations: Activations, row: int, decode: Callable[[list[int]], str], before: int = 12
) -> tuple[str, str]:
    """The text the model saw before row ``row`` (at most ``before`` tokens, within its window)
    and the text of the row's own token."""
    start = max(activations.window_start(row), row - before)
    preceding = activations.tokens[start:row].tolist()
    return decode(preceding), decode([int(activations.tokens[row])])
