"""``picollm metrics-table``: the headline numbers of every model in one TSV (for the report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.stages import Stage

COLUMNS = ("train_loss", "test_loss", "gap", "tokens_per_s", "parameters")
"""The keys of a model's metrics.json shown, in this order, after the model's name."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inputs",
        nargs="+",
        type=Path,
        required=True,
        help="the models' metrics.json files (results/models/<model>/metrics.json)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the TSV to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from picollm.files import read_json, write_text

    lines = ["\t".join(("model", *COLUMNS))]
    for path in args.inputs:
        metrics = read_json(path)
        lines.append("\t".join((path.parent.name, *(_cell(metrics[key]) for key in COLUMNS))))
    write_text(args.out, "\n".join(lines) + "\n")


def _cell(value: float | int) -> str:
    """Losses to 4 decimals, counts and speeds as integers."""
    return (
        str(value) if isinstance(value, int) else f"{value:.4f}" if value < 100 else f"{value:.0f}"
    )


STAGE = Stage(
    name="metrics-table",
    help="one TSV of every model's final train/test loss, gap, tokens/s and parameters",
    param_keys=(),
    configure=configure,
    run=run,
)
