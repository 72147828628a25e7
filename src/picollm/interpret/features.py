"""Which SAE features to show, and the contexts that activate them most."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from picollm.interpret.activations import Activations, context
from picollm.interpret.sae import SparseAutoencoder, top_activations


def spread_by_density(density: torch.Tensor, count: int, min_density: float = 0.0) -> list[int]:
    """``count`` features denser than ``min_density`` (and live) at evenly spaced ranks from the
    densest to the rarest, so that common and rare features are both shown; fewer if fewer
    qualify."""
    alive = torch.nonzero(density > max(min_density, 0.0)).flatten()  # (A,)
    if len(alive) == 0:
        return []
    ranked = alive[torch.argsort(density[alive], descending=True, stable=True)]  # (A,)
    picks = np.unique(np.linspace(0, len(ranked) - 1, min(count, len(ranked))).round())
    return [int(ranked[int(i)]) for i in picks]


def feature_examples(
    sae: SparseAutoencoder,
    activations: Activations,
    scaled: torch.Tensor,
    features: list[int],
    density: torch.Tensor,
    k: int,
    decode: Callable[[list[int]], str],
) -> list[dict[str, Any]]:
    """For each feature: its density, and its ``k`` most activating tokens with the text the
    model saw before each. ``scaled`` (N, D) are the activations the SAE was trained on."""
    shown = []
    for feature in features:
        values, rows = top_activations(sae, scaled, feature, k)
        examples = []
        for value, row in zip(values.tolist(), rows.tolist(), strict=True):
            if value <= 0:
                break
            before, token = context(activations, row, decode)
            examples.append({"activation": float(f"{value:.4g}"), "before": before, "token": token})
        shown.append({"feature": feature, "density": float(density[feature]), "top": examples})
    return shown
