"""Loss against token position on windows longer than a model was trained on.

A Transformer trained on windows of T tokens has only seen positions 0 .. T - 1; evaluating on
windows of up to 4T shows how each position signal copes beyond them. Learned positions have
no vector past T - 1: the model cannot run there, and the result says where it stops (its
``stops_at``) instead of extrapolating silently. Sinusoidal, rotary and no positions (NoPE) are
defined at every position, so they run on the whole window.

Windows are the non-overlapping tiling of the token stream (window j covers tokens
``j * length .. (j + 1) * length``), as the packed loader cuts training windows, so a window
may hold the end of one story and the start of the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # the figure reads PositionLosses records without the models
    from picollm.models.base import LanguageModel


@dataclass(frozen=True)
class PositionLosses:
    """Mean loss at each position 0 .. length - 1 over the windows, and its standard error.

    ``loss[p]`` is the loss of predicting token p + 1 of a window from tokens 0 .. p; positions
    from ``stops_at`` on are NaN: the model cannot condition on that many tokens.
    """

    loss: np.ndarray  # (length,) nats
    stderr: np.ndarray  # (length,) over windows (sd / sqrt(windows)); NaN with one window
    windows: int
    stops_at: int  # the first position the model could not evaluate (length if none)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PositionLosses:
        """The inverse of ``to_dict``."""
        loss = np.array([np.nan if v is None else v for v in record["loss"]], dtype=float)
        stderr = np.array([np.nan if v is None else v for v in record["stderr"]], dtype=float)
        return cls(loss, stderr, int(record["windows"]), int(record["stops_at"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with null where the model stops."""
        return {
            "loss": [None if np.isnan(v) else float(v) for v in self.loss],
            "stderr": [None if np.isnan(v) else float(v) for v in self.stderr],
            "windows": self.windows,
            "stops_at": self.stops_at,
        }


@torch.no_grad()
def loss_by_position(
    model: LanguageModel,
    tokens: np.ndarray,
    length: int,
    *,
    max_windows: int | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> PositionLosses:
    """Per-position loss of ``model`` on windows of ``length`` positions cut from ``tokens``.

    ``tokens`` is a 1-D array of model token ids (e.g. the test split); it is tiled into
    ``(len(tokens) - 1) // length`` windows of ``length + 1`` tokens, of which the first
    ``max_windows`` are used (all if None). A model with ``max_context`` below ``length``
    (learned positions) is evaluated on the first ``max_context`` positions only.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer array, got {tokens.dtype} {tokens.shape}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an int >= 1, got {length!r}")
    n_windows = (len(tokens) - 1) // length
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(
            f"{len(tokens)} tokens hold no window of {length + 1}: use a shorter length "
            "or more text"
        )
    stops_at = length if model.max_context is None else min(length, model.max_context)
    index = np.arange(n_windows)[:, None] * length + np.arange(stops_at + 1)  # (W, S+1)
    windows = torch.from_numpy(tokens[index].astype(np.int64))  # (W, S+1)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for first in range(0, n_windows, batch_size):
            batch = windows[first : first + batch_size].to(device)  # (b, S+1)
            logits = model(batch[:, :-1])  # (b, S, V)
            losses = F.cross_entropy(logits.float().transpose(1, 2), batch[:, 1:], reduction="none")
            rows.append(losses.double().cpu())  # (b, S)
    finally:
        model.train(was_training)
    per_window = torch.cat(rows).numpy()  # (W, S)
    loss = np.full(length, np.nan)
    stderr = np.full(length, np.nan)
    loss[:stops_at] = per_window.mean(axis=0)
    if n_windows > 1:
        stderr[:stops_at] = per_window.std(axis=0, ddof=1) / np.sqrt(n_windows)
    return PositionLosses(loss, stderr, n_windows, stops_at)


def binned(losses: PositionLosses, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss over consecutive ranges of ``width`` positions (the last may be shorter): a
    readable curve from a noisy one. Returns (the context length at each range's end, i.e. its
    last position + 1 (R,), mean loss per range (R,)); ranges past ``stops_at`` are left out,
    so pick a ``width`` dividing the training length to keep every range a model ran on."""
    length = len(losses.loss)
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= length:
        raise ValueError(f"width must be an int in [1, {length}], got {width!r}")
    ranges = [(start, min(start + width, length)) for start in range(0, length, width)]
    kept = [(a, b) for a, b in ranges if b <= losses.stops_at]
    means = np.array([losses.loss[a:b].mean() for a, b in kept])
    return np.array([b for _, b in kept]), means
