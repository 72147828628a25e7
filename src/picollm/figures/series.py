"""The numbers a figure draws, as records its JSON sidecar carries under ``data``.

Every figure module's ``draw`` returns the ``Series`` it drew, exactly as drawn, so a figure can be
replotted, compared or checked without rerunning anything. A series' ``y`` is the mean over
seeds; ``low``/``high`` bound its 95 % confidence band (``picollm.stats.band``) and are None at
points with a single seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from picollm.stats import Band, band

FEW_POINTS = 12  # a joined series this short also gets error bars on its banded points


@dataclass(frozen=True)
class Series:
    """One drawn line or set of points: ``{"id", "label", "x_label", "y_label", "x", "y",
    "low", "high"}`` in the sidecar (``low``/``high`` entries null where a point has one seed)."""

    id: str
    label: str
    x_label: str
    y_label: str
    x: tuple[Any, ...]  # numbers, or category names
    y: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]

    def __post_init__(self) -> None:
        lengths = {len(self.x), len(self.y), len(self.low), len(self.high)}
        if len(lengths) != 1:
            raise ValueError(f"series {self.id!r}: x, y, low and high differ in length")

    @classmethod
    def of(
        cls, id: str, label: str, x_label: str, y_label: str, x: Sequence[Any], y: Sequence[float]
    ) -> Series:
        """A series of single values (one seed per point: no band)."""
        empty = (None,) * len(y)
        return cls(id, label, x_label, y_label, tuple(x), tuple(map(float, y)), empty, empty)

    @classmethod
    def over_seeds(
        cls,
        id: str,
        label: str,
        x_label: str,
        y_label: str,
        x: Sequence[Any],
        samples: Sequence[Sequence[float]],
    ) -> Series:
        """Mean and band at each x of its values over seeds (``samples[i]``: point i's values)."""
        if len(x) != len(samples):
            raise ValueError(f"series {id!r}: {len(x)} x values but {len(samples)} sample lists")
        bands = [band(values) for values in samples]
        return cls(
            id,
            label,
            x_label,
            y_label,
            tuple(x),
            tuple(b.mean for b in bands),
            tuple(b.low for b in bands),
            tuple(b.high for b in bands),
        )

    @property
    def has_band(self) -> bool:
        return any(value is not None for value in self.low)

    def bands(self) -> list[Band]:
        """Each point's band (n is 2 where a band exists, else 1: only separation reads it)."""
        return [
            Band(y, low, high, 1 if low is None else 2)
            for y, low, high in zip(self.y, self.low, self.high, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; NaN or infinite numbers become null (JSON has no NaN)."""
        return {
            "id": self.id,
            "label": self.label,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "x": [_json_value(v) for v in self.x],
            "y": [_json_value(v) for v in self.y],
            "low": [_json_value(v) for v in self.low],
            "high": [_json_value(v) for v in self.high],
        }


def separations(series: Sequence[Series]) -> list[dict[str, Any]]:
    """For each pair of series with banded points at common x, the x where their bands part.

    Returns ``[{"ids": [a, b], "separated_at": [x, ...], "compared_at": [x, ...]}]``: the
    differences "larger than their bands", for captions and sidecars.
    """
    found = []
    for i, first in enumerate(series):
        for second in series[i + 1 :]:
            bands_a = dict(zip(first.x, first.bands(), strict=True))
            bands_b = dict(zip(second.x, second.bands(), strict=True))
            common = [x for x in first.x if x in bands_b]
            compared = [x for x in common if bands_a[x].n > 1 and bands_b[x].n > 1]
            if not compared:
                continue
            parted = [x for x in compared if bands_a[x].separates_from(bands_b[x])]
            found.append(
                {
                    "ids": [first.id, second.id],
                    "separated_at": [_json_value(x) for x in parted],
                    "compared_at": [_json_value(x) for x in compared],
                }
            )
    return found


def plot(ax: Any, series: Series, *, joined: bool = True, **style: Any) -> None:
    """Draw ``series`` on ``ax``: a line (``joined``) or unjoined points, with its band.

    The band is shaded along a line and drawn as error bars on unjoined points. Category x
    values are placed at 0, 1, 2, ... in the given order.
    """
    xs = list(series.x) if _numeric(series.x) else list(range(len(series.x)))
    if joined:
        (line,) = ax.plot(xs, series.y, label=series.label, **style)
        if series.has_band:
            low = [math.nan if v is None else v for v in series.low]
            high = [math.nan if v is None else v for v in series.high]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            if len(xs) <= FEW_POINTS:  # a lone banded point has no area to shade
                _error_bars(ax, xs, series, color=line.get_color(), fmt="none")
        return
    style.pop("linestyle", None)  # unjoined: no line between the points
    _error_bars(ax, xs, series, fmt=style.pop("marker", "o"), label=series.label, **style)


def _error_bars(ax: Any, xs: list[Any], series: Series, **style: Any) -> None:
    errors = [
        [0.0 if lo is None else y - lo for y, lo in zip(series.y, series.low, strict=True)],
        [0.0 if hi is None else hi - y for y, hi in zip(series.y, series.high, strict=True)],
    ]
    ax.errorbar(
        xs, series.y, yerr=errors if series.has_band else None, linestyle="none", capsize=3, **style
    )


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # a NumPy scalar
        return _json_value(value.item())
    return value


def curve_over_seeds(
    id: str,
    label: str,
    x_label: str,
    y_label: str,
    runs: Sequence[Any],
    x_column: str,
    y_column: str,
) -> Series:
    """A curve from one table per seed (``runs``: DataFrames with ``x_column`` and ``y_column``),
    at the x values every seed has: mean over seeds, with a band where there are two or more."""
    if not len(runs):
        raise ValueError(f"series {id!r} needs at least one run")
    columns = [dict(zip(run[x_column], run[y_column], strict=True)) for run in runs]
    shared = sorted(set(columns[0]).intersection(*columns[1:]))
    return Series.over_seeds(
        id, label, x_label, y_label, shared, [[c[x] for c in columns] for x in shared]
    )


def as_runs(value: Any) -> list[Any]:
    """One table, or a list of tables (one per seed), as a list of tables."""
    return list(value) if isinstance(value, list | tuple) else [value]
