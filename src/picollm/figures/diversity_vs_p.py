"""How generated text changes with the nucleus mass p: diversity and log-probability per model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from picollm.figures import series as drawn
from picollm.figures.series import Series
from picollm.figures.style import plt, save

GREEDY_X = 0.0  # greedy decoding is the limit p -> 0 of nucleus sampling
PANELS = (
    ("distinct_2", "distinct-2 (unique bigrams / bigrams)"),
    ("repetition_4", "repetition (repeated 4-grams / 4-grams)"),
    ("mean_logprob", "mean log-probability (nats/token)"),
)


def draw(
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]], target: Path | str, dpi: int = 120
) -> list[Series]:
    """``sweeps[model]`` is the ``by_p`` table of the sample stage: one row per p (or
    ``"greedy"``) with the diversity metrics of that p's samples. Returns the series
    ``<model>_<metric>`` (x: p, greedy as 0), or with a list of tables per model (one per seed)
    their means and bands."""
    if not sweeps:
        raise ValueError("diversity_vs_p needs the p sweep of at least one model")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    drawn_series = []
    for ax, (metric, label) in zip(axes, PANELS, strict=True):
        for name, rows in sweeps.items():
            curve = _over_seeds(f"{name}_{metric}", name, label, metric, rows)
            drawn.plot(ax, curve, marker="o")
            drawn_series.append(curve)
        ax.set_xlabel("nucleus mass p (0 = greedy)")
        ax.set_ylabel(label)
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Generated text against the nucleus mass p", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


def _over_seeds(id: str, name: str, y_label: str, metric: str, rows: Sequence[Any]) -> Series:
    """``rows`` is one ``by_p`` table, or a list of them (one per seed)."""
    tables = rows if rows and isinstance(rows[0], list | tuple) else [rows]
    values: dict[float, list[float]] = {}
    for table in tables:
        for row in table:
            values.setdefault(GREEDY_X if row["p"] == "greedy" else row["p"], []).append(
                row[metric]
            )
    xs = list(values)
    return Series.over_seeds(
        id, name, "nucleus mass p (0 = greedy)", y_label, xs, list(values.values())
    )
