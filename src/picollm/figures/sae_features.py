"""A sparse autoencoder's features: how often they fire, how training went, what fires them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from picollm.figures.series import Series
from picollm.figures.style import plt, save

SHOWN_IN_FIGURE = 8  # features whose top context is written out in the third panel
MSE = "reconstruction MSE (scaled activations)"
L0 = "L0 (active features per token)"


def draw(summary: Mapping[str, Any], target: Path | str, dpi: int = 120) -> list[Series]:
    """``summary`` is the interpret stage's features JSON. Returns the training curves drawn,
    ``sae_mse`` and ``sae_l0`` (the histogram and texts come straight from the JSON)."""
    fig, (density_ax, curve_ax, text_ax) = plt.subplots(
        1, 3, figsize=(16, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.5]}
    )
    _density(density_ax, np.asarray(summary["feature_density"], dtype=float))
    _training(curve_ax, summary["history"])
    _contexts(text_ax, summary["features"][:SHOWN_IN_FIGURE])
    m = summary["metrics"]
    fig.suptitle(
        f"SAE on {summary['model']}, block {summary['layer']}: {summary['n_features']} features, "
        f"explained variance {m['explained_variance']:.3f}, L0 {m['l0']:.1f}, "
        f"{m['dead_fraction']:.1%} dead",
        fontsize=11,
    )
    fig.tight_layout()
    save(fig, target, dpi)
    steps = [row["step"] for row in summary["history"]]
    return [
        Series.of(
            f"sae_{name}", name, "SAE step", label, steps, [row[name] for row in summary["history"]]
        )
        for name, label in (("mse", MSE), ("l0", L0))
    ]


def _density(ax: Any, density: np.ndarray) -> None:
    """Histogram of log10 feature density (the fraction of tokens a feature fires on)."""
    alive = density[density > 0]
    if len(alive):
        ax.hist(np.log10(alive), bins=40, color="tab:blue")
    ax.set_xlabel("log10 feature density")
    ax.set_ylabel("live features")
    ax.set_title(f"{len(density) - len(alive)} dead of {len(density)}", fontsize=9)
    ax.grid(alpha=0.3)


def _training(ax: Any, history: list[Mapping[str, float]]) -> None:
    steps = [row["step"] for row in history]
    ax.plot(steps, [row["mse"] for row in history], color="tab:orange", label="MSE")
    ax.set_xlabel("SAE step")
    ax.set_ylabel(MSE)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    l0_ax = ax.twinx()
    l0_ax.plot(steps, [row["l0"] for row in history], color="tab:green", label="L0")
    l0_ax.set_ylabel(L0)
    lines = ax.get_lines() + l0_ax.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8)


def _contexts(ax: Any, features: list[Mapping[str, Any]]) -> None:
    """Each shown feature's most activating token, in its context."""
    ax.axis("off")
    ax.set_title("most activating context per feature (token in [brackets])", fontsize=9)
    lines = []
    for feature in features:
        if not feature["top"]:
            continue
        top = feature["top"][0]
        text = f"{top['before'][-60:]}[{top['token']}]".replace("\n", "⏎")
        lines.append(
            textwrap.shorten(
                f"#{feature['feature']} (density {feature['density']:.3f}): {text}", 95
            )
        )
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace")
