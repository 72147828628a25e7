"""Train vs test loss for every model, with the generalisation gap shaded and labelled; and,
when the hyperparameter study varies them, the final gap against model size and data size."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import EngFormatter, LogLocator

from picollm.figures.style import plt, save
from picollm.figures.sweeps import DATA_FRACTION, is_training_key, series


def draw(
    curves: Mapping[str, pd.DataFrame],
    target: Path | str,
    dpi: int = 120,
    base: Mapping[str, Any] | None = None,
    runs: Sequence[Mapping[str, Any]] = (),
) -> None:
    """One panel per model: eval train and test loss against step, the gap between them shaded.

    ``curves[name]`` has columns ``step``, ``train_loss`` and ``test_loss`` (nats per token, on
    fixed evaluation batches). With sweep ``runs`` (metrics of the study around ``base``), a last
    row plots the final gap against parameters (model-size keys) and training tokens
    (``data_fraction``), so overfitting is read quantitatively.
    """
    if not curves:
        raise ValueError("overfit_gap needs the curve of at least one model")
    ladders = _ladders(base, runs) if base is not None else {}
    cols = max(min(len(curves), 3), len(ladders))
    rows = math.ceil(len(curves) / cols) + (1 if ladders else 0)
    fig = plt.figure(figsize=(max(4.6 * cols, 6.4), 3.8 * rows))
    grid = fig.add_gridspec(rows, cols)
    for index, (name, curve) in enumerate(curves.items()):
        _curve_panel(fig.add_subplot(grid[index // cols, index % cols]), name, curve)
    if ladders:
        spans = _spans(len(ladders), cols)
        for (label, points), (start, stop) in zip(ladders.items(), spans, strict=True):
            _ladder_panel(fig.add_subplot(grid[rows - 1, start:stop]), label, points)
    fig.suptitle("Train vs test loss on fixed evaluation batches; shaded: the gap", fontsize=11)
    fig.tight_layout()
    save(fig, target, dpi)


def _curve_panel(ax: plt.Axes, name: str, curve: pd.DataFrame) -> None:
    step, train, test = curve["step"], curve["train_loss"], curve["test_loss"]
    ax.plot(step, train, label="train", color="tab:blue")
    ax.plot(step, test, label="test", color="tab:orange")
    ax.fill_between(
        step,
        train,
        test,
        where=test >= train,
        color="tab:red",
        alpha=0.15,
        label="gap (test > train)",
        interpolate=True,
    )
    ax.fill_between(
        step,
        train,
        test,
        where=test < train,
        color="tab:green",
        alpha=0.15,
        label="gap (test < train)",
        interpolate=True,
    )
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


def _ladders(base: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """(x, gap, label) points: against parameters for numeric architecture keys (model size),
    against training tokens for the data-fraction ladder. Training keys and categorical keys
    (position, attention, norm, ...) are not size ladders and are left to other figures."""
    ladders: dict[str, list] = {}
    for key, points in series(base, runs).items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v, _ in points)
        if is_training_key(base, key) or not numeric:
            continue
        if key == DATA_FRACTION:
            title, x_of = "training tokens available", lambda m: m["train_tokens"]
        else:
            title, x_of = "parameters", lambda m: m["final"]["parameters"]
        ladders.setdefault(title, []).extend(
            (x_of(m), m["final"]["gap"], f"{key}={value}") for value, m in points
        )
    return ladders


def _ladder_panel(ax: plt.Axes, label: str, points: list) -> None:
    points = sorted(set((x, gap, text) for x, gap, text in points))
    xs, gaps = [p[0] for p in points], [p[1] for p in points]
    ax.plot(xs, gaps, marker="o", color="tab:red")
    for x, gap, text in points:
        ax.annotate(text, (x, gap), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # 1, 2, 5 per decade: labels never collide
    for formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        formatter(EngFormatter(places=0))  # 200k, 5M
    ax.set_xlabel(f"{label} (log scale)")
    ax.set_ylabel("final gap: test - train (nats/token)")
    ax.set_title(f"Overfitting against {label}")
    ax.grid(alpha=0.3, which="both")


def _spans(n: int, cols: int) -> list[tuple[int, int]]:
    """Split ``cols`` grid columns into ``n`` contiguous spans (n <= cols; else one each)."""
    if n > cols:
        raise ValueError(f"{n} ladder panels do not fit in {cols} columns")
    edges = [round(i * cols / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))
