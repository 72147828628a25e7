"""The hyperparameter study: final test loss and training speed against each swept value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from picollm.figures import series as drawn
from picollm.figures.series import Series
from picollm.figures.style import plt, save
from picollm.figures.sweeps import series

LOSS = "final loss (nats/token)"
SPEED = "training tokens/s"


def draw(runs: Sequence[Mapping[str, Any]], target: Path | str, dpi: int = 120) -> list[Series]:
    """One column per study: final train/test loss at each of its points (``runs``: the
    run.json records of the study) and, in a second row, training tokens/s.

    Runs of the same point are seeds: points are their mean with a 95 % band. Numeric keys are
    joined lines; categorical keys (position, attention, ...) unjoined points with error bars.
    Tokens/s is drawn only where some two points' bands separate (speed is noisy; with one seed
    its noise is unknown), and its row only when some study has such points. Returns the series
    drawn: ``<key>_test_loss``, ``<key>_train_loss`` and, where drawn, ``<key>_tokens_per_s``.
    """
    by_key = series(runs)
    if not by_key:
        raise ValueError("hyperparams needs at least one sweep run (sweep.values in params.yaml)")
    columns = [_study(key, points) for key, points in by_key.items()]
    with_speed = any(_speed_separates(speed) for _, _, _, speed in columns)
    rows = 2 if with_speed else 1
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(4.0 * len(columns), 3.6 * rows + 0.6), squeeze=False
    )
    drawn_series: list[Series] = []
    for column, (key, test, train, speed) in enumerate(columns):
        numeric = _numeric(test.x)
        loss_ax = axes[0, column]
        drawn.plot(loss_ax, test, joined=numeric, marker="o")
        drawn.plot(loss_ax, train, joined=numeric, marker="x", linestyle=":")
        drawn_series += [test, train]
        panels = [loss_ax]
        if with_speed and _speed_separates(speed):
            speed_ax = axes[1, column]
            panels.append(speed_ax)
            speed_ax.set_ylabel(SPEED)
            drawn.plot(speed_ax, speed, joined=numeric, marker="s", color="tab:green")
            drawn_series.append(speed)
        elif with_speed:
            why = "one seed: speed noise unknown" if not speed.has_band else "within the bands"
            axes[1, column].set_axis_off()
            axes[1, column].text(
                0.5, 0.5, f"{key}: tokens/s not drawn\n({why})", ha="center", va="center",
                transform=axes[1, column].transAxes, fontsize=8,
            )  # fmt: skip
        for ax in panels:
            _value_axis(ax, test.x, numeric)
            ax.grid(alpha=0.3)
        panels[-1].set_xlabel(key)
        loss_ax.set_title(key)
        loss_ax.set_ylabel(LOSS)
        loss_ax.legend(fontsize=8)
    fig.suptitle(
        f"Studies of {runs[0]['sweep']['model']!r}: final losses (mean over seeds, 95 % band)",
        fontsize=11,
    )
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


def _study(key: str, points: Sequence[tuple[Any, Mapping[str, Any]]]) -> tuple[str, ...]:
    """``(key, test, train, speed)``: the study's series at its points (numbers sorted)."""
    values = list(dict.fromkeys(value for value, _ in points))  # in order, seeds merged
    if _numeric(values):
        values.sort()
    test, train, speed = (
        _over_seeds(key, points, values, metric, y_label)
        for metric, y_label in (("test_loss", LOSS), ("train_loss", LOSS), ("tokens_per_s", SPEED))
    )
    return key, test, train, speed


def _value_axis(ax: plt.Axes, values: Sequence[Any], numeric: bool) -> None:
    """A log axis for numbers spanning 8x or more; categories at 0, 1, ... with their names
    (slanted when long)."""
    if numeric:
        if min(values) > 0 and max(values) / min(values) >= 8:
            ax.set_xscale("log")
        return
    names = [str(v) for v in values]
    slanted = max(len(n) for n in names) > 10
    ax.set_xticks(range(len(names)), names, rotation=25 if slanted else 0,
                  ha="right" if slanted else "center", fontsize=8)  # fmt: skip
    ax.set_xlim(-0.5, len(names) - 0.5)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _speed_separates(speed: Series) -> bool:
    """Whether any two values' tokens/s bands separate."""
    bands = speed.bands()
    return any(a.separates_from(b) for i, a in enumerate(bands) for b in bands[i + 1 :])


def _over_seeds(
    key: str,
    points: Sequence[tuple[Any, Mapping[str, Any]]],
    values: list,
    metric: str,
    y_label: str,
) -> Series:
    """Series ``<key>_<metric>``: at each value, the final ``metric`` of its runs (seeds)."""
    samples = [[m["final"][metric] for v, m in points if v == value] for value in values]
    label = {"test_loss": "test", "train_loss": "train"}.get(metric, "tokens/s")
    return Series.over_seeds(f"{key}_{metric}", label, key, y_label, values, samples)
