"""Train vs test loss for every model, with the generalisation gap shaded and labelled; and,
when the hyperparameter study varies them, the final gap against model size and data size."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import EngFormatter, LogLocator

from picollm.figures import series as drawn
from picollm.figures.series import Series, as_runs, curve_over_seeds
from picollm.figures.style import plt, save
from picollm.figures.sweeps import DATA_FRACTION, is_training_key, series

LOSS = "cross-entropy (nats/token)"
GAP = "final gap: test - train (nats/token)"
PARAMETERS = "parameters (embeddings included)"
TOKENS = "training tokens available"


def draw(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    target: Path | str,
    dpi: int = 120,
    runs: Sequence[Mapping[str, Any]] = (),
    copy_rates: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]] | None = None,
    data: str = "",
) -> list[Series]:
    """One panel per model: eval train and test loss against step, the gap between them shaded,
    the early-stopping point (the step of lowest test loss) marked.

    ``curves[name]`` is a table with columns ``step``, ``train_loss`` and ``test_loss`` (nats per
    token), or a list of them, one per seed (drawn as mean and 95 % band). With sweep ``runs``
    (run.json records of the study; several runs of one point are seeds), a last row
    plots the final gap against parameters (series ``gap_vs_parameters``) and training tokens
    (``gap_vs_tokens``), each titled with whether the gap moves as overfitting predicts.
    ``copy_rates[model]`` holds per seed the rows ``{"p", "train", "test"}`` of
    ``memorisation.copy_rates`` for each nucleus mass p (``"greedy"`` drawn at 0; a rate of None,
    samples too short to hold one n-gram, is left out): a last panel
    plots them, series ``<model>_copy_train`` and ``<model>_copy_test`` (the control).
    ``data`` names what the models read (corpus and vocabulary), for the title.
    Returns the series drawn: ``<model>_train``, ``<model>_test``, the ladders, the copy rates.
    """
    if not curves:
        raise ValueError("overfit_gap needs the curve of at least one model")
    ladders = _ladders(runs)
    bottom = len(ladders) + (1 if copy_rates else 0)
    cols = max(min(len(curves), 3), bottom)
    rows = math.ceil(len(curves) / cols) + (1 if bottom else 0)
    fig = plt.figure(figsize=(max(4.6 * cols, 6.4), 3.8 * rows))
    grid = fig.add_gridspec(rows, cols)
    drawn_series: list[Series] = []
    for index, (name, tables) in enumerate(curves.items()):
        ax = fig.add_subplot(grid[index // cols, index % cols])
        drawn_series += _curve_panel(ax, name, as_runs(tables))
    if bottom:
        spans = _spans(bottom, cols)
        for (ladder, texts), (start, stop) in zip(ladders, spans[: len(ladders)], strict=True):
            _ladder_panel(fig.add_subplot(grid[rows - 1, start:stop]), ladder, texts)
            drawn_series.append(ladder)
        if copy_rates:
            start, stop = spans[-1]
            drawn_series += _copy_panel(fig.add_subplot(grid[rows - 1, start:stop]), copy_rates)
    fig.suptitle(
        "Train vs test loss on fixed evaluation batches; shaded: the gap"
        + (f"\n{data}" if data else ""),
        fontsize=11,
    )
    fig.tight_layout()
    save(fig, target, dpi)
    return drawn_series


def early_stopping_step(test: Series) -> Any:
    """The step of lowest (mean) test loss: where early stopping would keep the model."""
    return test.x[min(range(len(test.y)), key=lambda i: test.y[i])]


def _curve_panel(ax: plt.Axes, name: str, tables: list[pd.DataFrame]) -> list[Series]:
    train, test = (
        curve_over_seeds(
            f"{name}_{split}", f"{split}", "optimizer step", LOSS, tables, "step", f"{split}_loss"
        )
        for split in ("train", "test")
    )
    drawn.plot(ax, train, color="tab:blue")
    drawn.plot(ax, test, color="tab:orange")
    step = pd.Series(train.x, dtype=float)
    train_y, test_y = pd.Series(train.y), pd.Series(test.y)
    for above, colour, text in (
        (True, "tab:red", "test > train"),
        (False, "tab:green", "test < train"),
    ):
        ax.fill_between(
            step,
            train_y,
            test_y,
            where=(test_y >= train_y) if above else (test_y < train_y),
            color=colour,
            alpha=0.15,
            label=f"gap ({text})",
            interpolate=True,
        )
    best = early_stopping_step(test)
    ax.axvline(
        best, color="grey", linestyle="--", linewidth=0.8, label=f"lowest test (step {best})"
    )
    gap = test.y[-1] - train.y[-1]
    seeds = f" ({len(tables)} seeds, 95 % band)" if len(tables) > 1 else ""
    ax.set_title(f"{name}{seeds}: final gap {gap:+.2f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(LOSS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [train, test]


def _ladders(runs: Sequence[Mapping[str, Any]]) -> list[tuple[Series, list[str]]]:
    """The size ladders and their point labels: final gap against parameters for studies of a
    numeric architecture key (model size), against training tokens for the ``data_fraction``
    study. Runs with the same x are seeds. Other training keys and categorical keys (position,
    attention, norm, ...) are not size ladders and are left to other figures."""
    gaps: dict[str, dict[Any, list[float]]] = {}
    texts: dict[str, dict[Any, str]] = {}
    for key, points in series(runs).items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v, _ in points)
        if not numeric or (key != DATA_FRACTION and is_training_key(points[0][1], key)):
            continue
        if key == DATA_FRACTION:
            ladder, x_of = "gap_vs_tokens", lambda m: m["train_tokens"]
        else:
            ladder, x_of = "gap_vs_parameters", lambda m: m["final"]["parameters"]
        for value, metrics in points:
            x = x_of(metrics)
            gaps.setdefault(ladder, {}).setdefault(x, []).append(metrics["final"]["gap"])
            texts.setdefault(ladder, {})[x] = f"{key}={value}"
    ladders = []
    for ladder in ("gap_vs_parameters", "gap_vs_tokens"):
        if ladder not in gaps:
            continue
        xs = sorted(gaps[ladder])
        x_label = PARAMETERS if ladder == "gap_vs_parameters" else TOKENS
        built = Series.over_seeds(
            ladder, "final gap", x_label, GAP, xs, [gaps[ladder][x] for x in xs]
        )
        ladders.append((built, [texts[ladder][x] for x in xs]))
    return ladders


def ladder_verdict(ladder: Series) -> str:
    """Whether the final gap moves as overfitting predicts along the ladder: up with
    parameters, down with training tokens (compared end to end, bands taken into account)."""
    if len(ladder.x) < 2:
        return "a single point: no trend"
    first, last = ladder.bands()[0], ladder.bands()[-1]
    rises = last.mean > first.mean
    expected_rise = ladder.id == "gap_vs_parameters"
    direction = "grows" if rises else "shrinks"
    along = "parameters" if expected_rise else "training tokens"
    verdict = "as expected" if rises == expected_rise else "NOT as overfitting predicts"
    beyond = " (beyond the bands)" if first.separates_from(last) else ""
    return f"gap {direction} with {along}{beyond}: {verdict}"


def _ladder_panel(ax: plt.Axes, ladder: Series, texts: list[str]) -> None:
    drawn.plot(ax, ladder, marker="o", color="tab:red")
    for x, gap, text in zip(ladder.x, ladder.y, texts, strict=True):
        ax.annotate(text, (x, gap), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.margins(x=0.15)  # room for the point labels
    ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))  # 1, 2, 5 per decade: labels never collide
    for formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        formatter(EngFormatter(places=0))  # 200k, 5M
    ax.set_xlabel(f"{ladder.x_label} (log scale)")
    ax.set_ylabel(GAP)
    ax.set_title(f"Overfitting against {ladder.x_label}\n{ladder_verdict(ladder)}", fontsize=9)
    ax.grid(alpha=0.3, which="both")


def _copy_panel(
    ax: plt.Axes, copy_rates: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]]
) -> list[Series]:
    drawn_series = []
    for index, (model, seeds) in enumerate(copy_rates.items()):
        for reference, linestyle in (("train", "-"), ("test", ":")):
            values: dict[float, list[float]] = {}
            for rows in seeds:
                for row in rows:
                    p = 0.0 if row["p"] == "greedy" else float(row["p"])
                    if row[reference] is not None:  # None: samples too short for one n-gram
                        values.setdefault(p, []).append(row[reference])
            xs = sorted(values)
            if not xs:
                continue
            label = f"{model} ({'train' if reference == 'train' else 'test: control'})"
            rate = Series.over_seeds(
                f"{model}_copy_{reference}", label, "nucleus mass p (0 = greedy)",
                "share of sampled n-grams found verbatim", xs, [values[x] for x in xs],
            )  # fmt: skip
            drawn.plot(ax, rate, marker="o", color=f"C{index}", linestyle=linestyle)
            drawn_series.append(rate)
    ax.set_xlabel("nucleus mass p (0 = greedy)")
    ax.set_ylabel("copy rate (n-grams found verbatim)")
    ax.set_title(
        "Copying: samples' n-grams found in the training text (solid)\nand in the test split (dotted, the control)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return drawn_series


def _spans(n: int, cols: int) -> list[tuple[int, int]]:
    """Split ``cols`` grid columns into ``n`` contiguous spans (n <= cols; else one each)."""
    if n > cols:
        raise ValueError(f"{n} ladder panels do not fit in {cols} columns")
    edges = [round(i * cols / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))
