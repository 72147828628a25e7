"""The hyperparameter study: final test loss and training speed against each swept value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from picollm.figures.style import plt, save
from picollm.figures.sweeps import series


def draw(
    base: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], target: Path | str, dpi: int = 120
) -> None:
    """One column per swept key: final train/test loss (top) and tokens/s (bottom) against the
    key's values; the base run (``base``, the sweep model's own training) is one of the points."""
    by_key = series(base, runs)
    if not by_key:
        raise ValueError("hyperparams needs at least one sweep run (sweep.values in params.yaml)")
    fig, axes = plt.subplots(2, len(by_key), figsize=(4.0 * len(by_key), 6.2), squeeze=False)
    for column, (key, points) in enumerate(by_key.items()):
        values = [value for value, _ in points]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        xs = values if numeric else list(range(len(values)))
        loss_ax, speed_ax = axes[0, column], axes[1, column]
        loss_ax.plot(xs, [m["final"]["test_loss"] for _, m in points], marker="o", label="test")
        loss_ax.plot(
            xs,
            [m["final"]["train_loss"] for _, m in points],
            marker="o",
            linestyle=":",
            label="train",
        )
        speed_ax.plot(
            xs, [m["final"]["tokens_per_s"] for _, m in points], marker="s", color="tab:green"
        )
        if numeric and min(values) > 0 and max(values) / min(values) >= 8:
            for ax in (loss_ax, speed_ax):
                ax.set_xscale("log")
        if not numeric:
            for ax in (loss_ax, speed_ax):
                ax.set_xticks(xs, [str(v) for v in values])
        loss_ax.set_title(key)
        loss_ax.set_ylabel("final loss (nats/token)")
        speed_ax.set_ylabel("training tokens/s")
        speed_ax.set_xlabel(key)
        for ax in (loss_ax, speed_ax):
            ax.grid(alpha=0.3)
        loss_ax.legend(fontsize=8)
    fig.suptitle(
        f"Hyperparameter study around {base['model']!r} (one key changed at a time)", fontsize=11
    )
    fig.tight_layout()
    save(fig, target, dpi)
