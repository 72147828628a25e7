"""``picollm figure``: draw one figure from result files, with a JSON lineage sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.stages import Stage

FIGURES = ("overfit_gap",)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FIGURES, help="which figure to draw")
    parser.add_argument(
        "--curves", nargs="+", type=Path, required=True,
        help="curve.tsv files of trained models (results/models/<name>/curve.tsv)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    import pandas as pd

    from picollm import lineage
    from picollm.figures import overfit_gap
    from picollm.files import write_json

    curves = {path.parent.name: pd.read_csv(path, sep="\t") for path in args.curves}
    overfit_gap.draw(curves, args.out, dpi=params["figures"]["dpi"])
    write_json(
        args.out.with_suffix(".json"),
        lineage.record("figure", args.curves, params, figure=args.kind, output=str(args.out)),
    )


STAGE = Stage(
    name="figure",
    help="draw a figure from result files (with a JSON lineage sidecar)",
    param_keys=("figures",),
    configure=configure,
    run=run,
)
