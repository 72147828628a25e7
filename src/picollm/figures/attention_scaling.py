"""Cost of each attention op against sequence length: softmax grows quadratically, the
chunked linear family linearly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from picollm.figures.series import Series
from picollm.figures.style import plt, save

PANELS = (("fwd_bwd_seconds", "forward + backward time (s)"), ("peak_mem_mb", "peak memory (MiB)"))


def draw(points: pd.DataFrame, target: Path | str, dpi: int = 120) -> list[Series]:
    """``points`` has columns method, seq_len, fwd_bwd_seconds, peak_mem_mb (one row per
    measurement). Log-log axes, so a slope of 1 is linear growth and 2 quadratic; dotted guides
    show both slopes from each method's shortest length. Returns the series
    ``<method>_<column>`` (the guides are not data)."""
    if points.empty:
        raise ValueError("attention_scaling needs at least one measurement")
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    drawn_series = []
    for ax, (column, label) in zip(axes, PANELS, strict=True):
        for index, (method, rows) in enumerate(points.groupby("method", sort=False)):
            rows = rows.sort_values("seq_len")
            ax.plot(rows["seq_len"], rows[column], marker="o", color=f"C{index}", label=method)
            drawn_series.append(
                Series.of(
                    f"{method}_{column}",
                    method,
                    "sequence length (tokens, batch 1)",
                    label,
                    rows["seq_len"].tolist(),
                    rows[column].tolist(),
                )
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens, batch 1)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    _slope_guides(axes[0], points)
    axes[0].legend(fontsize=8)
    threads = sorted({int(t) for t in points.get("torch_threads", [])})
    fig.suptitle(f"Token mixing cost against length (CPU, torch threads {threads})", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


def _slope_guides(ax: plt.Axes, points: pd.DataFrame) -> None:
    """Dotted slope-1 and dashed slope-2 lines through the slowest method's shortest point."""
    shortest = points[points["seq_len"] == points["seq_len"].min()]
    anchor = shortest.loc[shortest["fwd_bwd_seconds"].idxmax()]
    lengths = sorted(points["seq_len"].unique())
    for slope, style in ((1, ":"), (2, "--")):
        times = [anchor["fwd_bwd_seconds"] * (n / anchor["seq_len"]) ** slope for n in lengths]
        ax.plot(
            lengths,
            times,
            color="grey",
            linestyle=style,
            linewidth=0.8,
            label=f"slope {slope} (linear)" if slope == 1 else f"slope {slope} (quadratic)",
        )
