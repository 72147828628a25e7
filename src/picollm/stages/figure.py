"""``picollm figure``: draw one figure from result files, with a JSON lineage sidecar.

``FIGURES`` holds each figure's draw function and where its inputs are (from params and the
results folder), so the stage, the Snakemake figure rule and ``dvc.yaml`` agree on them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from picollm.errors import UserError
from picollm.figures import (
    attention_maps,
    attention_quality,
    attention_scaling,
    diversity_vs_p,
    hyperparams,
    loss_curves,
    overfit_gap,
    sae_features,
)
from picollm.figures.series import separations
from picollm.files import read_json, write_json
from picollm.pipeline import lineage

Files = dict[str, list[Path]]
"""A figure's input files by role: ``curves``, ``runs``, ``split``, ``records``, ..."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FIGURES, help="which figure to draw")
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="the results folder it reads"
    )
    parser.add_argument(
        "--split",
        type=Path,
        default=Path("data/processed/split/split.json"),
        help="split.json, for the entropy floor (loss_curves)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--lineage", type=Path, required=True, help="the JSON sidecar to write")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    figure = FIGURES[args.kind]
    files = {
        role: [Path(path) for path in paths]
        for role, paths in figure.inputs(params, str(args.results), str(args.split)).items()
    }
    drawn = figure.draw(files, args.out, params["figures"]["dpi"])
    write_json(
        args.lineage,
        lineage.record(
            "figure",
            [path for paths in files.values() for path in paths],
            params,
            figure=args.kind,
            output=str(args.out),
            data=[series.to_dict() for series in drawn],
            separations=separations(drawn),
        ),
    )


# -- where each figure's inputs are, from params ------------------------------------------------


def model_files(params: Mapping[str, Any], results: str, name: str) -> list[str]:
    """``<results>/models/<model>/<name>`` of every model, by model name."""
    return [f"{results}/models/{model}/{name}" for model in sorted(params["models"])]


def study_runs(params: Mapping[str, Any], results: str, keys: Sequence[str] = ()) -> list[str]:
    """run.json of the hyperparameter study: its base model's, then each run of ``keys`` (every
    key of ``sweep.values`` when empty); nothing without a study."""
    sweep = params["sweep"]
    chosen = [key for key in sweep["values"] if key in keys or not keys]
    runs = [
        f"{results}/sweeps/{sweep['model']}/{key}/{index}/run.json"
        for key in chosen
        for index in range(len(sweep["values"][key]))
    ]
    return [f"{results}/models/{sweep['model']}/run.json", *runs] if runs else []


def interpreted(params: Mapping[str, Any], results: str, record: str) -> list[str]:
    """The interpret stage's ``record`` of ``interpretability.model``."""
    model = params["interpretability"]["model"]
    if model is None:
        raise UserError(
            "this figure needs interpretability.model in params.yaml (a softmax Transformer)"
        )
    return [f"{results}/interpret/{model}/{record}"]


# -- drawing ----------------------------------------------------------------------------------


def _curves(paths: list[Path]) -> dict[str, Any]:
    """``results/models/<name>/curve.tsv`` tables by model name."""
    if not paths:
        raise UserError("this figure needs the models' curve.tsv files: add a model to params")
    return {path.parent.name: pd.read_csv(path, sep="\t") for path in paths}


def _study(paths: list[Path]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The study's base metrics (the one without a ``sweep`` entry) and its runs' metrics;
    None and [] without a study."""
    metrics = [read_json(path) for path in paths]
    bases = [m for m in metrics if "sweep" not in m]
    runs = [m for m in metrics if "sweep" in m]
    if metrics and len(bases) != 1:
        raise UserError(f"the study needs exactly one base model's run.json, got {len(bases)}")
    return (bases[0] if bases else None), runs


def _overfit_gap(files: Files, out: Path, dpi: int) -> list[Any]:
    base, runs = _study(files["runs"])
    return overfit_gap.draw(_curves(files["curves"]), out, dpi=dpi, base=base, runs=runs)


def _hyperparams(files: Files, out: Path, dpi: int) -> list[Any]:
    base, runs = _study(files["runs"])
    if base is None or not runs:
        raise UserError("hyperparams needs the study's runs: sweep.values in params.yaml")
    return hyperparams.draw(base, runs, out, dpi=dpi)


def _loss_curves(files: Files, out: Path, dpi: int) -> list[Any]:
    floor = read_json(files["split"][0])["splits"]["test"]["entropy_floor_nats_per_token"]
    return loss_curves.draw(_curves(files["curves"]), floor, out, dpi=dpi)


def _attention_scaling(files: Files, out: Path, dpi: int) -> list[Any]:
    return attention_scaling.draw(pd.read_csv(files["points"][0], sep="\t"), out, dpi=dpi)


def _attention_quality(files: Files, out: Path, dpi: int) -> list[Any]:
    """The base model (its own attention) and the study's runs that swap the attention."""
    curves, parameters = {}, {}
    for path in files["runs"]:
        metrics = read_json(path)
        kind = metrics["architecture"].get("attention", "softmax")
        curves[kind] = pd.read_csv(path.with_name("curve.tsv"), sep="\t")  # in files["curves"]
        parameters[kind] = metrics["final"]["parameters"]
    if len(curves) < 2:
        raise UserError("attention_quality needs sweep.values.attention in params.yaml")
    return attention_quality.draw(curves, parameters, out, dpi=dpi)


def _diversity_vs_p(files: Files, out: Path, dpi: int) -> list[Any]:
    sweeps = {summary["model"]: summary["by_p"] for summary in map(read_json, files["samples"])}
    return diversity_vs_p.draw(sweeps, out, dpi=dpi)


# -- the table: a new figure is a module in picollm.figures and one entry here -----------------


@dataclass(frozen=True)
class Figure:
    draw: Callable[[Files, Path, int], list[Any]]
    """Draws the PNG from the input files (by role) and returns the series it drew."""
    inputs: Callable[[Mapping[str, Any], str, str], dict[str, list[str]]]
    """The input files by role, given the params, the results folder and split.json."""
    wanted: Callable[[Mapping[str, Any]], bool] = lambda params: True
    """Whether the default target draws it for these params."""


def _with_study(params: Mapping[str, Any]) -> bool:
    return bool(params["sweep"]["values"])


FIGURES: dict[str, Figure] = {
    "overfit_gap": Figure(
        _overfit_gap,
        lambda p, r, s: {"curves": model_files(p, r, "curve.tsv"), "runs": study_runs(p, r)},
    ),
    "loss_curves": Figure(
        _loss_curves, lambda p, r, s: {"curves": model_files(p, r, "curve.tsv"), "split": [s]}
    ),
    "diversity_vs_p": Figure(
        _diversity_vs_p,
        lambda p, r, s: {"samples": [f"{r}/samples/{m}.json" for m in sorted(p["models"])]},
    ),
    "attention_scaling": Figure(
        _attention_scaling, lambda p, r, s: {"points": [f"{r}/attention/scaling.tsv"]}
    ),
    "hyperparams": Figure(
        _hyperparams, lambda p, r, s: {"runs": study_runs(p, r)}, wanted=_with_study
    ),
    "attention_quality": Figure(
        _attention_quality,
        lambda p, r, s: {
            "runs": study_runs(p, r, ["attention"]),
            "curves": [
                run[: -len("run.json")] + "curve.tsv" for run in study_runs(p, r, ["attention"])
            ],
        },
        wanted=lambda p: "attention" in p["sweep"]["values"],
    ),
    "attention_maps": Figure(
        lambda files, out, dpi: attention_maps.draw(read_json(files["records"][0]), out, dpi=dpi),
        lambda p, r, s: {"records": interpreted(p, r, "attention.json")},
        wanted=lambda p: p["interpretability"]["model"] is not None,
    ),
    "sae_features": Figure(
        lambda files, out, dpi: sae_features.draw(read_json(files["records"][0]), out, dpi=dpi),
        lambda p, r, s: {"records": interpreted(p, r, "features.json")},
        wanted=lambda p: p["interpretability"]["model"] is not None,
    ),
}
"""Every figure by name, in the order the default target lists them."""


def default_figures(params: Mapping[str, Any]) -> list[str]:
    """The figures ``snakemake`` (and ``dvc repro``) draw for these params."""
    return [name for name, figure in FIGURES.items() if figure.wanted(params)]
