"""Test loss of the same Transformer with softmax, linear, GLA and Gated DeltaNet attention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from picollm.figures import series as drawn
from picollm.figures.series import Series, as_runs, curve_over_seeds
from picollm.figures.style import plt, save


def draw(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    parameters: Mapping[str, int],
    target: Path | str,
    dpi: int = 120,
) -> list[Series]:
    """``curves[kind]`` is the eval curve (step, train_loss, test_loss) of the model with that
    attention, or a list of them (one per seed); ``parameters[kind]`` its parameter count
    (shown, since the kinds' projections differ slightly in size). Returns the series
    ``<kind>_test`` and ``<kind>_train``."""
    if not curves:
        raise ValueError("attention_quality needs the curve of at least one attention kind")
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    drawn_series = []
    for index, (kind, tables) in enumerate(curves.items()):
        label = f"{kind} ({parameters[kind] / 1e6:.2f}M params)"
        test, train = (
            curve_over_seeds(
                f"{kind}_{split}",
                label if split == "test" else f"{kind} (train)",
                "optimizer step",
                "cross-entropy (nats/token)",
                as_runs(tables),
                "step",
                f"{split}_loss",
            )
            for split in ("test", "train")
        )
        drawn.plot(ax, test, color=f"C{index}")
        drawn.plot(ax, train, color=f"C{index}", linestyle=":", alpha=0.6)
        drawn_series += [test, train]
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(
        "Attention kinds in the same Transformer (solid: test, dotted: train)", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series
