"""``picollm figure``: draw one figure from result files, with a JSON lineage sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.stages import Stage

FIGURES = (
    "overfit_gap",
    "loss_curves",
    "diversity_vs_p",
    "hyperparams",
    "attention_scaling",
    "attention_quality",
    "attention_maps",
    "sae_features",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FIGURES, help="which figure to draw")
    parser.add_argument(
        "--inputs",
        nargs="*",
        type=Path,
        default=[],
        help="result files, one per model: curve.tsv (overfit_gap, loss_curves, hyperparams) "
        "or the p sweep's summary JSON (diversity_vs_p); the interpret stage's attention JSON "
        "(attention_maps) or features JSON (sae_features)",
    )
    parser.add_argument(
        "--split", type=Path, help="split.json, for the entropy floor (loss_curves)"
    )
    parser.add_argument(
        "--sweep",
        type=Path,
        nargs="*",
        default=[],
        help="run.json records of the hyperparameter study: its base model's and each run's "
        "(hyperparams, overfit_gap)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--lineage", type=Path, required=True, help="the JSON sidecar to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from picollm.pipeline import lineage
    from picollm.files import write_json

    draw = {
        "overfit_gap": _overfit_gap,
        "loss_curves": _loss_curves,
        "diversity_vs_p": _diversity_vs_p,
        "hyperparams": _hyperparams,
        "attention_scaling": _attention_scaling,
        "attention_quality": _attention_quality,
        "attention_maps": _interpretation,
        "sae_features": _interpretation,
    }[args.kind]
    from picollm.figures.series import separations

    drawn = draw(args, params["figures"]["dpi"])
    inputs = [*args.inputs, *([args.split] if args.split else []), *args.sweep]
    write_json(
        args.lineage,
        lineage.record(
            "figure",
            inputs,
            params,
            figure=args.kind,
            output=str(args.out),
            data=[series.to_dict() for series in drawn],
            separations=separations(drawn),
        ),
    )


def _curves(inputs: list[Path]) -> dict[str, Any]:
    """``results/models/<name>/curve.tsv`` tables by model name."""
    import pandas as pd

    from picollm.errors import UserError

    if not inputs:
        raise UserError("this figure needs --inputs: the models' curve.tsv files")
    return {path.parent.name: pd.read_csv(path, sep="\t") for path in inputs}


def _sweep(args: argparse.Namespace) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The study's base metrics (the one without a ``sweep`` entry) and its runs' metrics;
    None and [] without a study."""
    from picollm.errors import UserError
    from picollm.files import read_json

    metrics = [read_json(path) for path in args.sweep]
    bases = [m for m in metrics if "sweep" not in m]
    runs = [m for m in metrics if "sweep" in m]
    if metrics and len(bases) != 1:
        raise UserError(f"--sweep needs exactly one base model's metrics, got {len(bases)}")
    return (bases[0] if bases else None), runs


def _overfit_gap(args: argparse.Namespace, dpi: int) -> list[Any]:
    from picollm.figures import overfit_gap

    base, runs = _sweep(args)
    return overfit_gap.draw(_curves(args.inputs), args.out, dpi=dpi, base=base, runs=runs)


def _hyperparams(args: argparse.Namespace, dpi: int) -> list[Any]:
    from picollm.errors import UserError
    from picollm.figures import hyperparams

    base, runs = _sweep(args)
    if base is None or not runs:
        raise UserError("hyperparams needs --sweep with the study's metrics (sweep in params.yaml)")
    return hyperparams.draw(base, runs, args.out, dpi=dpi)


def _loss_curves(args: argparse.Namespace, dpi: int) -> list[Any]:
    from picollm.errors import UserError
    from picollm.figures import loss_curves
    from picollm.files import read_json

    if args.split is None:
        raise UserError("loss_curves needs --split (split.json) for the entropy floor")
    floor = read_json(args.split)["splits"]["test"]["entropy_floor_nats_per_token"]
    return loss_curves.draw(_curves(args.inputs), floor, args.out, dpi=dpi)


def _attention_scaling(args: argparse.Namespace, dpi: int) -> list[Any]:
    import pandas as pd

    from picollm.errors import UserError
    from picollm.figures import attention_scaling

    if len(args.inputs) != 1:
        raise UserError("attention_scaling needs --inputs with the one TSV of measurements")
    return attention_scaling.draw(pd.read_csv(args.inputs[0], sep="\t"), args.out, dpi=dpi)


def _attention_quality(args: argparse.Namespace, dpi: int) -> list[Any]:
    """The base model (its own attention) and the study's runs that swap the attention."""
    import pandas as pd

    from picollm.errors import UserError
    from picollm.figures import attention_quality
    from picollm.files import read_json

    curves, parameters = {}, {}
    for path in args.sweep:
        metrics = read_json(path)
        if metrics.get("sweep", {"key": "attention"})["key"] != "attention":
            continue
        kind = metrics["architecture"].get("attention", "softmax")
        curves[kind] = pd.read_csv(path.with_name("curve.tsv"), sep="\t")
        parameters[kind] = metrics["final"]["parameters"]
    if len(curves) < 2:
        raise UserError("attention_quality needs sweep.values.attention in params.yaml")
    return attention_quality.draw(curves, parameters, args.out, dpi=dpi)


def _interpretation(args: argparse.Namespace, dpi: int) -> list[Any]:
    """attention_maps or sae_features, each from its one JSON of the interpret stage."""
    from picollm.errors import UserError
    from picollm.figures import attention_maps, sae_features
    from picollm.files import read_json

    if len(args.inputs) != 1:
        raise UserError(f"{args.kind} needs --inputs with the one JSON of the interpret stage")
    module = attention_maps if args.kind == "attention_maps" else sae_features
    return module.draw(read_json(args.inputs[0]), args.out, dpi=dpi)


def _diversity_vs_p(args: argparse.Namespace, dpi: int) -> list[Any]:
    from picollm.figures import diversity_vs_p
    from picollm.files import read_json

    sweeps = {summary["model"]: summary["by_p"] for summary in map(read_json, args.inputs)}
    return diversity_vs_p.draw(sweeps, args.out, dpi=dpi)


STAGE = Stage(
    name="figure",
    help="draw a figure from result files (with a JSON lineage sidecar)",
    param_keys=("figures",),
    configure=configure,
    run=run,
)
