"""The next-token loss and its evaluation on fixed batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
