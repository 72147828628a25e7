"""AdamW with weight decay on matrices only, the warm-up + cosine schedule, gradient clipping.

Which parameters decay: every trainable tensor with two or more dimensions (linear and
recurrent weight matrices, embeddings) unless it carries ``_no_weight_decay = True`` (e.g. the
gates of linear attention); never biases, norm gains or other vectors. Embeddings decay as in
GPT-2/nanoGPT: with tied weights the embedding *is* the output projection, so one rule must
cover both uses of the same tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups, ``decay`` and ``no_decay``, each with ``param_names`` for inspection.

    Tied parameters appear once (``named_parameters`` removes duplicates); frozen ones not at all.
    """
    groups = {
        "decay": {"params": [], "param_names": [], "weight_decay": weight_decay},
        "no_decay": {"params": [], "param_names": [], "weight_decay": 0.0},
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decays = param.dim() >= 2 and not getattr(param, "_no_weight_decay", False)
        group = groups["decay" if decays else "no_decay"]
        group["params"].append(param)
        group["param_names"].append(name)
    return [{"name": key, **group} for key, group in groups.items() if group["params"]]


def build_optimizer(
    model: nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float],
    fused: bool = False,
) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, arXiv 1711.05101) over ``parameter_groups(model)``.

    ``fused`` selects PyTorch's single-kernel implementation (worth it on CUDA).
    """
    groups = parameter_groups(model, weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused or None)


def learning_rate_at(
    step: int, *, peak: float, warmup_steps: int, total_steps: int, min_ratio: float
) -> float:
    """Learning rate of the update with 0-based index ``step``.

    Linear warm-up: ``peak * (step + 1) / warmup_steps`` for the first ``warmup_steps``
    updates, then cosine decay (SGDR, arXiv 1608.03983, eq. 5, one cycle) from ``peak`` at
    ``step = warmup_steps`` towards ``peak * min_ratio`` at ``step = total_steps``:
    ``min + (peak - min) * (1 + cos(pi * progress)) / 2``, written as
    ``peak - (peak - min) * (1 - cos(pi * progress)) / 2`` so the peak is exact.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    floor = peak * min_ratio
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return peak - (peak - floor) * 0.5 * (1.0 - math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm`` (0: leave them).

    Returns the norm before clipping, a 0-dim tensor (inf or nan if a gradient is).
    """
    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return norm
