"""Test loss against context length beyond the training length, one series per position kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from picollm.figures import series as drawn
from picollm.figures.series import Series
from picollm.figures.style import plt, save
from picollm.length_generalization import PositionLosses, binned

X_LABEL = "context length (tokens)"
Y_LABEL = "test loss at that position (nats/token)"


def draw(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    block_size: int,
    target: Path | str,
    dpi: int = 120,
    width: int | None = None,
) -> list[Series]:
    """``results[kind]`` holds one ``PositionLosses.to_dict()`` record per seed, all on windows
    of the same length. Each record is averaged over ranges of ``width`` positions (default
    ``block_size // 8``), then over seeds (mean and 95 % band). Series ``length_<kind>``; a
    dotted line marks the training length, a cross where a kind stops (learned positions)."""
    if not results:
        raise ValueError("length_generalization needs the results of at least one position kind")
    width = width or max(1, block_size // 8)
    fig, ax = plt.subplots(figsize=(7.6, 5.2))
    drawn_series = []
    for index, (kind, records) in enumerate(results.items()):
        if not records:
            raise ValueError(f"length_generalization: no seed of {kind!r}")
        per_seed = [binned(PositionLosses.from_dict(dict(r)), width) for r in records]
        ends = per_seed[0][0]
        if any(list(e) != list(ends) for e, _ in per_seed):
            raise ValueError(f"length_generalization: the seeds of {kind!r} differ in length")
        samples = [[float(means[i]) for _, means in per_seed] for i in range(len(ends))]
        curve = Series.over_seeds(
            f"length_{kind}", kind, X_LABEL, Y_LABEL, [int(e) for e in ends], samples
        )
        drawn.plot(ax, curve, color=f"C{index}")
        stops_at, length = records[0]["stops_at"], len(records[0]["loss"])
        if stops_at < length:
            ax.plot(curve.x[-1], curve.y[-1], marker="x", markersize=10, color=f"C{index}")
            ax.annotate(
                f"{kind}: no positions past {stops_at}",
                (curve.x[-1], curve.y[-1]),
                textcoords="offset points",
                xytext=(6, 6),
                fontsize=8,
                color=f"C{index}",
            )
        drawn_series.append(curve)
    ax.axvline(block_size, color="grey", linestyle=":", label=f"training length T = {block_size}")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(
        "Length generalisation: loss by position on windows longer than training\n"
        + "\n".join(findings(drawn_series, block_size)),
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


def findings(series: Sequence[Series], block_size: int) -> list[str]:
    """Per kind, how its loss at the longest context compares with its loss at the training
    length (the range ending at T), and whether the change is beyond the bands."""
    lines = []
    for curve in series:
        kind = curve.id.removeprefix("length_")
        if block_size not in curve.x:
            lines.append(f"{kind}: no range ends at T = {block_size}")
            continue
        at_t = curve.x.index(block_size)
        last = len(curve.x) - 1
        if last == at_t:
            lines.append(f"{kind} stops at T")
            continue
        change = curve.y[last] - curve.y[at_t]
        bands = curve.bands()
        if bands[last].low is None or bands[at_t].low is None:
            beyond = "one seed: no band"
        elif bands[last].separates_from(bands[at_t]):
            beyond = "beyond the bands"
        else:
            beyond = "within the bands"
        lines.append(f"{kind} {change:+.2f} nats at {curve.x[last]} vs T ({beyond})")
    return lines
