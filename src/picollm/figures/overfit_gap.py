"""Train vs test loss for every model, with the generalisation gap shaded and labelled."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from picollm.figures.style import plt, save


def draw(curves: Mapping[str, pd.DataFrame], target: Path | str, dpi: int = 120) -> None:
    """One panel per model: eval train and test loss against step, the gap between them shaded.

    ``curves[name]`` has columns ``step``, ``train_loss`` and ``test_loss`` (nats per token, on
    fixed evaluation batches).
    """
    if not curves:
        raise ValueError("overfit_gap needs the curve of at least one model")
    n = len(curves)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 6.4), 3.8 * rows), squeeze=False)
    for ax, (name, curve) in zip(axes.flat, curves.items(), strict=False):
        _panel(ax, name, curve)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Train vs test loss on fixed evaluation batches; shaded: the gap", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)


def _panel(ax: plt.Axes, name: str, curve: pd.DataFrame) -> None:
    step, train, test = curve["step"], curve["train_loss"], curve["test_loss"]
    ax.plot(step, train, label="train", color="tab:blue")
    ax.plot(step, test, label="test", color="tab:orange")
    ax.fill_between(step, train, test, where=test >= train, color="tab:red", alpha=0.15,
                    label="gap (test > train)", interpolate=True)
    ax.fill_between(step, train, test, where=test < train, color="tab:green", alpha=0.15,
                    label="gap (test < train)", interpolate=True)
    gap = float(test.iloc[-1] - train.iloc[-1])
    ax.annotate(
        f"final gap {gap:+.3f}",
        xy=(step.iloc[-1], test.iloc[-1]),
        xytext=(-8, 12),
        textcoords="offset points",
        ha="right",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8},
    )
    ax.set_title(name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
