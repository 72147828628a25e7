"""How generated text changes with the nucleus mass p: diversity and log-probability per model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from picollm.figures.style import plt, save

GREEDY_X = 0.0  # greedy decoding is the limit p -> 0 of nucleus sampling
PANELS = (
    ("distinct_2", "distinct-2 (unique bigrams / bigrams)"),
    ("repetition_4", "repetition (repeated 4-grams / 4-grams)"),
    ("mean_logprob", "mean log-probability (nats/token)"),
)


def draw(
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]], target: Path | str, dpi: int = 120
) -> None:
    """``sweeps[model]`` is the ``by_p`` table of the sample stage: one row per p (or
    ``"greedy"``) with the diversity metrics of that p's samples."""
    if not sweeps:
        raise ValueError("diversity_vs_p needs the p sweep of at least one model")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for ax, (metric, label) in zip(axes, PANELS, strict=True):
        for name, rows in sweeps.items():
            xs = [GREEDY_X if row["p"] == "greedy" else row["p"] for row in rows]
            ys = [row[metric] for row in rows]
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xlabel("nucleus mass p (0 = greedy)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Generated text against the nucleus mass p", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)
