"""``picollm metrics``: every model's headline numbers in one JSON (for DVC) and one TSV (for the
Snakemake report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.files import read_json, write_json, write_text

COLUMNS = ("train_loss", "test_loss", "gap", "tokens_per_s", "parameters")
"""The keys of a model's metrics.json kept, in this order."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="the results folder: it reads models/<model>/metrics.json of every model in params",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the JSON to write: {model: {metric: value}}"
    )
    parser.add_argument("--table", type=Path, required=True, help="the TSV to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    summary = {
        model: headline(read_json(args.results / "models" / model / "metrics.json"))
        for model in sorted(params["models"])
    }
    write_json(args.out, summary)
    lines = ["\t".join(("model", *COLUMNS))]
    for model, metrics in summary.items():
        lines.append("\t".join((model, *(_cell(metrics[key]) for key in COLUMNS))))
    write_text(args.table, "\n".join(lines) + "\n")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``COLUMNS`` of one model's metrics, losses rounded to 6 significant digits."""
    return {
        key: metrics[key] if isinstance(metrics[key], int) else float(f"{metrics[key]:.6g}")
        for key in COLUMNS
    }


def _cell(value: float | int) -> str:
    """Losses to 4 decimals, counts and speeds as integers."""
    return (
        str(value) if isinstance(value, int) else f"{value:.4f}" if value < 100 else f"{value:.0f}"
    )
