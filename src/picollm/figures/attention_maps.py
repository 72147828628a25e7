"""Attention maps of a Transformer on one prompt: a grid of blocks (rows) by heads (columns)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from picollm.figures.series import Series
from picollm.figures.style import plt, save

MAX_LABELS = 40  # beyond this many tokens, tick labels would overlap


def draw(record: Mapping[str, Any], target: Path | str, dpi: int = 120) -> list[Series]:
    """``record`` is the interpret stage's attention JSON: ``tokens`` (T,) and ``maps``
    (blocks, heads, T, T), row = query, column = key. Returns no series: the maps are images,
    and the interpret stage's JSON already holds their numbers."""
    maps = np.asarray(record["maps"], dtype=float)  # (L, H, T, T)
    if maps.ndim != 4 or maps.shape[2] != maps.shape[3] or maps.shape[2] != len(record["tokens"]):
        raise ValueError(f"attention maps must be (blocks, heads, T, T) for T tokens: {maps.shape}")
    n_blocks, n_heads, length, _ = maps.shape
    size = min(3.2, max(1.8, 0.11 * length))
    fig, axes = plt.subplots(
        n_blocks, n_heads, figsize=(size * n_heads + 1.2, size * n_blocks + 0.8), squeeze=False
    )
    labels = [token.replace("\n", "⏎") for token in record["tokens"]]
    for block in range(n_blocks):
        for head in range(n_heads):
            ax = axes[block][head]
            image = ax.imshow(maps[block, head], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"block {block}, head {head}", fontsize=8)
            _label_axes(ax, labels, show_y=head == 0, show_x=block == n_blocks - 1)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(f"Attention of {record['model']} (rows: queries, columns: keys)", fontsize=11)
    save(fig, target, dpi)
    return []


def _label_axes(ax: Any, labels: list[str], show_y: bool, show_x: bool) -> None:
    ticks = range(len(labels)) if len(labels) <= MAX_LABELS else []
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    ax.set_xticklabels([labels[i] for i in ticks] if show_x else [], rotation=90, fontsize=5)
    ax.set_yticklabels([labels[i] for i in ticks] if show_y else [], fontsize=5)
