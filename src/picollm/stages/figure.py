"""``picollm figure``: draw one figure from result files, with a JSON lineage sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.stages import Stage

FIGURES = ("overfit_gap", "diversity_vs_p")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FIGURES, help="which figure to draw")
    parser.add_argument(
        "--inputs", nargs="+", type=Path, required=True,
        help="result files, one per model: curve.tsv (overfit_gap) or the p sweep's summary "
        "JSON (diversity_vs_p)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--lineage", type=Path, required=True, help="the JSON sidecar to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from picollm import lineage
    from picollm.files import write_json

    draw = {"overfit_gap": _overfit_gap, "diversity_vs_p": _diversity_vs_p}[args.kind]
    draw(args.inputs, args.out, params["figures"]["dpi"])
    write_json(
        args.lineage,
        lineage.record("figure", args.inputs, params, figure=args.kind, output=str(args.out)),
    )


def _overfit_gap(inputs: list[Path], out: Path, dpi: int) -> None:
    import pandas as pd

    from picollm.figures import overfit_gap

    curves = {path.parent.name: pd.read_csv(path, sep="\t") for path in inputs}
    overfit_gap.draw(curves, out, dpi=dpi)


def _diversity_vs_p(inputs: list[Path], out: Path, dpi: int) -> None:
    from picollm.figures import diversity_vs_p
    from picollm.files import read_json

    sweeps = {summary["model"]: summary["by_p"] for summary in map(read_json, inputs)}
    diversity_vs_p.draw(sweeps, out, dpi=dpi)


STAGE = Stage(
    name="figure",
    help="draw a figure from result files (with a JSON lineage sidecar)",
    param_keys=("figures",),
    configure=configure,
    run=run,
)
