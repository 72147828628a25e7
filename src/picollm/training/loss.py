"""The next-token loss and its evaluation on fixed batches, with a standard error per split."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from picollm.data.loader import IGNORE_INDEX
from picollm.models.base import LanguageModel
from picollm.training.device import autocast


def summed_token_loss(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of float32 cross-entropies over counted targets, and how many targets counted.

    logits (B, T, V) in any float dtype; targets (B, T), ``IGNORE_INDEX`` where not counted.
    """
    vocab = logits.shape[-1]
    total = F.cross_entropy(
        logits.reshape(-1, vocab).float(),  # (B*T, V)
        targets.reshape(-1),  # (B*T,)
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return total, (targets != IGNORE_INDEX).sum()


def next_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, counted: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy over the counted targets, in float32 (0 if none counts).

    ``counted`` (a 0-dim integer tensor) replaces the denominator: when several processes
    share a batch, each divides by the whole batch's count and their losses add up to its mean.
    """
    total, counted_here = summed_token_loss(logits, targets)
    return total / (counted_here if counted is None else counted).clamp(min=1)


def evaluate_loss(
    model: LanguageModel,
    batches: Sequence,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Mean loss per counted target over all ``batches`` (``Batch``: inputs, targets).

    Weighting by tokens rather than by batch keeps the number exact when batches count
    different numbers of targets. Runs in eval mode and restores the model's mode after.
    """
    total, counted = evaluation_sums(model, batches, device, autocast_dtype)
    return (total / counted.clamp(min=1)).item()


@torch.no_grad()
def evaluation_sums(
    model: LanguageModel,
    batches: Iterable,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss (float64) and number of counted targets (int64) over ``batches``, on
    ``device``: sums from several processes add up to those of all their batches."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    counted = torch.zeros((), dtype=torch.int64, device=device)
    try:
        for batch in batches:
            with autocast(device, autocast_dtype):
                logits = model(batch.inputs.to(device))  # (B, T, V)
            batch_total, batch_counted = summed_token_loss(logits, batch.targets.to(device))
            total += batch_total
            counted += batch_counted
    finally:
        model.train(was_training)
    return total, counted


@dataclass(frozen=True)
class LossEstimate:
    """A split's mean loss per counted token and its standard error, windows as the unit.

    Tokens inside one window share their context, so their losses correlate and a per-token
    error (sd / sqrt(tokens)) would be too small; non-overlapping windows are close to
    independent (two windows of one document still share its topic: a mild underestimate).
    The loss is a ratio of sums, ``L = sum(s_i) / sum(c_i)`` over windows i with summed loss
    s_i and c_i counted targets; its linearised (delta-method) standard error is
    ``sqrt(W / (W - 1) * sum((s_i - L c_i)^2)) / sum(c_i)``, which for equal-length windows is
    the familiar ``sd(window means) / sqrt(W)``. It estimates how the loss would vary over
    another sample of W windows from the same text, even when the W windows are the whole
    split (no finite-population correction: the split itself is a sample). NaN for one window.
    """

    loss: float
    stderr: float
    windows: int
    tokens: int

    @classmethod
    def from_window_sums(cls, sums: torch.Tensor, counts: torch.Tensor) -> LossEstimate:
        """From per-window summed losses (W,) and counted targets (W,); windows counting no
        target are dropped."""
        kept = counts > 0
        sums, counts = sums[kept].double(), counts[kept].double()
        windows, tokens = int(kept.sum()), int(counts.sum())
        if windows == 0:
            raise ValueError("no window counts a target: nothing to estimate the loss from")
        loss = sums.sum() / counts.sum()
        if windows == 1:
            return cls(loss.item(), math.nan, 1, tokens)
        residual_sq = ((sums - loss * counts) ** 2).sum()
        stderr = (windows / (windows - 1) * residual_sq).sqrt() / counts.sum()
        return cls(loss.item(), stderr.item(), windows, tokens)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.no_grad()
def window_sums(
    model: LanguageModel,
    batches: Iterable,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row (window) of every batch, in order: summed float32 loss (float64 (W,)) and
    counted targets (int64 (W,)), on the CPU. Eval mode, restored after."""
    was_training = model.training
    model.eval()
    sums, counts = [], []
    try:
        for batch in batches:
            targets = batch.targets.to(device)  # (B, T)
            with autocast(device, autocast_dtype):
                logits = model(batch.inputs.to(device))  # (B, T, V)
            losses = F.cross_entropy(
                logits.float().transpose(1, 2),  # (B, V, T)
                targets,
                ignore_index=IGNORE_INDEX,
                reduction="none",
            )  # (B, T), 0 where ignored
            sums.append(losses.double().sum(dim=1).cpu())
            counts.append((targets != IGNORE_INDEX).sum(dim=1).cpu())
    finally:
        model.train(was_training)
    if not sums:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(sums), torch.cat(counts)


def estimate_loss(
    model: LanguageModel,
    batches: Sequence,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> LossEstimate:
    """Mean loss and its standard error over the windows (rows) of ``batches``."""
    return LossEstimate.from_window_sums(*window_sums(model, batches, device, autocast_dtype))
