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
    length_generalization,
    loss_curves,
    norm_warmup,
    overfit_gap,
    sae_features,
)
from picollm.figures.series import separations
from picollm.figures.sweeps import DATA_FRACTION
from picollm.files import read_json, write_json
from picollm.pipeline import lineage
from picollm.studies import point_changes, training_keys

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
    """run.json of every seed of every point of the studies ``keys`` of ``sweep.values`` (all
    of them when empty; the ones that exist when named)."""
    sweep = params["sweep"]
    return [
        f"{results}/sweeps/{sweep['model']}/{key}/{seed}/{index}/run.json"
        for key in sweep["values"]
        if key in keys or not keys
        for seed in sweep["seeds"]
        for index in range(len(sweep["values"][key]))
    ]


def study_with_curves(params: Mapping[str, Any], results: str, key: str) -> dict[str, list[str]]:
    """The run.json (``runs``) and curve.tsv (``curves``) of every run of study ``key``."""
    runs = study_runs(params, results, [key])
    return {"runs": runs, "curves": [run.removesuffix("run.json") + "curve.tsv" for run in runs]}


def ladder_studies(params: Mapping[str, Any]) -> list[str]:
    """The studies overfit_gap draws as ladders: ``data_fraction`` (training tokens) and any
    study whose points give its own architecture key a number (model size, e.g. d_model)."""
    values = params["sweep"]["values"]

    def numeric_architecture_key(key: str) -> bool:
        numbers = [point_changes(key, p).get(key) for p in values[key]]
        return key not in training_keys() and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in numbers
        )

    return [k for k in values if k == DATA_FRACTION or numeric_architecture_key(k)]


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


def data_note(split_path: Path) -> str:
    """What the models read, from split.json and the corpus.json it names: each source (for
    TinyStories, where it came from: the Hub, a local path or the shipped excerpt) and the
    vocabulary, e.g. ``"TinyStories (excerpt), vocabulary compact-4096"``."""
    split = read_json(split_path)
    corpus = read_json(Path(split["corpus"]).with_suffix(".json"))
    origin = corpus.get("tinystories_source")
    sources = [
        f"TinyStories ({origin})" if source == "tinystories" and origin else source
        for source in split["sources"]
    ]
    return f"{' + '.join(sources)}, vocabulary {split['vocab']['name']}"


def _runs(paths: list[Path]) -> list[dict[str, Any]]:
    return [read_json(path) for path in paths]


def _by_point(paths: list[Path]) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """The study's runs (path, run.json) by point label, in the order of the points."""
    runs = sorted(
        ((path, read_json(path)) for path in paths),
        key=lambda item: (item[1]["sweep"]["index"], item[1]["sweep"]["seed"]),
    )
    grouped: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path, run in runs:
        grouped.setdefault(run["sweep"]["label"], []).append((path, run))
    return grouped


def _seed_curves(paths: list[Path], study: str) -> dict[str, list[pd.DataFrame]]:
    """Each point's eval curves (curve.tsv beside its run.json), one per seed, by label."""
    if not paths:
        raise UserError(f"this figure needs sweep.values.{study} in params.yaml")
    return {
        label: [pd.read_csv(path.with_name("curve.tsv"), sep="\t") for path, _ in runs]
        for label, runs in _by_point(paths).items()
    }


def _overfit_gap(files: Files, out: Path, dpi: int) -> list[Any]:
    copy_rates = {
        summary["model"]: [[{"p": row["p"], **row["copy_rate"]} for row in summary["by_p"]]]
        for summary in map(read_json, files["samples"])
    }
    return overfit_gap.draw(
        _curves(files["curves"]),
        out,
        dpi=dpi,
        runs=_runs(files["runs"]),
        copy_rates=copy_rates,
        data=data_note(files["split"][0]),
    )


def _hyperparams(files: Files, out: Path, dpi: int) -> list[Any]:
    if not files["runs"]:
        raise UserError("hyperparams needs the study's runs: sweep.values in params.yaml")
    return hyperparams.draw(_runs(files["runs"]), out, dpi=dpi)


def _norm_warmup(files: Files, out: Path, dpi: int) -> list[Any]:
    """The study's curves, and each norm placement's gradient norms at initialisation (one
    per seed: points that differ only in warm-up start from the same weights)."""
    init_norms: dict[str, dict[int, list[float]]] = {}
    for run in _runs(files["runs"]):
        norm = run["architecture"].get("norm", "pre")
        seeds = init_norms.setdefault(norm, {})
        seeds.setdefault(run["sweep"]["seed"], run["init_gradient_norms"]["mlp_out"])
    return norm_warmup.draw(
        _seed_curves(files["runs"], "norm_warmup"),
        out,
        dpi=dpi,
        init_norms={norm: list(seeds.values()) for norm, seeds in init_norms.items()},
    )


def _length_generalization(files: Files, out: Path, dpi: int) -> list[Any]:
    grouped = _by_point(files["runs"])
    if not grouped:
        raise UserError("length_generalization needs sweep.values.position in params.yaml")
    records = {
        label: [run["loss_by_position"] for _, run in runs] for label, runs in grouped.items()
    }
    block_size = next(iter(grouped.values()))[0][1]["loss_by_position"]["trained_length"]
    return length_generalization.draw(records, block_size, out, dpi=dpi)


def _loss_curves(files: Files, out: Path, dpi: int) -> list[Any]:
    floor = read_json(files["split"][0])["splits"]["test"]["entropy_floor_nats_per_token"]
    return loss_curves.draw(
        _curves(files["curves"]), floor, out, dpi=dpi, data=data_note(files["split"][0])
    )


def _attention_scaling(files: Files, out: Path, dpi: int) -> list[Any]:
    return attention_scaling.draw(pd.read_csv(files["points"][0], sep="\t"), out, dpi=dpi)


def _attention_quality(files: Files, out: Path, dpi: int) -> list[Any]:
    """The attention study's curves (seeds) and parameter counts, by attention kind."""
    parameters = {
        label: runs[0][1]["final"]["parameters"] for label, runs in _by_point(files["runs"]).items()
    }
    return attention_quality.draw(
        _seed_curves(files["runs"], "attention"), parameters, out, dpi=dpi
    )


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
        lambda p, r, s: {
            "curves": model_files(p, r, "curve.tsv"),
            "runs": study_runs(p, r, ladder_studies(p)) if ladder_studies(p) else [],
            "samples": [f"{r}/samples/{m}.json" for m in sorted(p["models"])],
            "split": [s],
        },
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
        lambda p, r, s: study_with_curves(p, r, "attention"),
        wanted=lambda p: "attention" in p["sweep"]["values"],
    ),
    "length_generalization": Figure(
        _length_generalization,
        lambda p, r, s: {"runs": study_runs(p, r, ["position"])},
        wanted=lambda p: "position" in p["sweep"]["values"],
    ),
    "norm_warmup": Figure(
        _norm_warmup,
        lambda p, r, s: study_with_curves(p, r, "norm_warmup"),
        wanted=lambda p: "norm_warmup" in p["sweep"]["values"],
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
