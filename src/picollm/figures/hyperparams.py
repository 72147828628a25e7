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
    """One column per study: final train/test loss (top) and tokens/s (bottom) at each of its
    points (``runs``: the run.json records of the study).

    Runs of the same value are seeds: points are their mean with a 95 % band. Numeric keys are
    joined lines; categorical keys (position, attention, ...) unjoined points with error bars.
    Tokens/s is drawn only where some two values' bands separate (speed is noisy; with one seed
    its noise is unknown), else the panel says why it is empty. Returns the series drawn:
    ``<key>_test_loss``, ``<key>_train_loss`` and, where drawn, ``<key>_tokens_per_s``.
    """
    by_key = series(runs)
    if not by_key:
        raise ValueError("hyperparams needs at least one sweep run (sweep.values in params.yaml)")
    fig, axes = plt.subplots(2, len(by_key), figsize=(4.0 * len(by_key), 6.2), squeeze=False)
    drawn_series: list[Series] = []
    for column, (key, points) in enumerate(by_key.items()):
        values = list(dict.fromkeys(value for value, _ in points))  # in order, seeds merged
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            values.sort()
        test, train, speed = (
            _over_seeds(key, points, values, metric, y_label)
            for metric, y_label in (
                ("test_loss", LOSS),
                ("train_loss", LOSS),
                ("tokens_per_s", SPEED),
            )
        )
        loss_ax, speed_ax = axes[0, column], axes[1, column]
        drawn.plot(loss_ax, test, joined=numeric, marker="o")
        drawn.plot(loss_ax, train, joined=numeric, marker="x", linestyle=":")
        drawn_series += [test, train]
        if _speed_separates(speed):
            drawn.plot(speed_ax, speed, joined=numeric, marker="s", color="tab:green")
            drawn_series.append(speed)
        else:
            why = "one seed: speed noise unknown" if not speed.has_band else "within the bands"
            speed_ax.text(
                0.5, 0.5, f"tokens/s not drawn:\n{why}", ha="center", va="center",
                transform=speed_ax.transAxes, fontsize=8,
            )  # fmt: skip
        if numeric and min(values) > 0 and max(values) / min(values) >= 8:
            for ax in (loss_ax, speed_ax):
                ax.set_xscale("log")
        if not numeric:
            for ax in (loss_ax, speed_ax):
                ax.set_xticks(range(len(values)), [str(v) for v in values])
                ax.set_xlim(-0.5, len(values) - 0.5)
        loss_ax.set_title(key)
        loss_ax.set_ylabel(LOSS)
        speed_ax.set_ylabel(SPEED)
        speed_ax.set_xlabel(key)
        for ax in (loss_ax, speed_ax):
            ax.grid(alpha=0.3)
        loss_ax.legend(fontsize=8)
    fig.suptitle(
        f"Hyperparameter study of {runs[0]['model']!r}: final losses on the whole test split "
        "(mean over seeds, 95 % band)",
        fontsize=11,
    )
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


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
