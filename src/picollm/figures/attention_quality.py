"""Test loss of the same Transformer with softmax, linear, GLA and Gated DeltaNet attention."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from picollm.figures.style import plt, save


def draw(
    curves: Mapping[str, pd.DataFrame],
    parameters: Mapping[str, int],
    target: Path | str,
    dpi: int = 120,
) -> None:
    """``curves[kind]`` is the eval curve (step, train_loss, test_loss) of the model with that
    attention; ``parameters[kind]`` its parameter count (shown, since the kinds' projections
    differ slightly in size)."""
    if not curves:
        raise ValueError("attention_quality needs the curve of at least one attention kind")
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for index, (kind, curve) in enumerate(curves.items()):
        label = f"{kind} ({parameters[kind] / 1e6:.2f}M params)"
        ax.plot(curve["step"], curve["test_loss"], color=f"C{index}", label=label)
        ax.plot(curve["step"], curve["train_loss"], color=f"C{index}", linestyle=":", alpha=0.6)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(
        "Attention kinds in the same Transformer (solid: test, dotted: train)", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, target, dpi)
