"""``picollm sweep``: one seed of the runs of one study in ``sweep`` of params.yaml.

The study ``sweep.values.<key>`` lists points; each changes sweep.model's entry (after
``sweep.common``): a plain value sets ``<key>`` (``d_model``, ``position``, a training key such
as ``learning_rate`` or ``data_fraction``), a mapping sets several keys at once. One job trains
every point of one key at one seed of ``sweep.seeds``, into ``<out>/<index>/`` (the point's
index), so no value ever travels through a shell command and the Snakemake and DVC graphs both
have one step per (key, seed), which a cluster runs in parallel.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.config import model_config, training_config
from picollm.errors import ConfigError
from picollm.stages import train as train_stage
from picollm.studies import point_label
from picollm.training.runs import sweep_variant

RUN_FILES = {
    "weights": "weights.safetensors",
    "metrics": "metrics.json",
    "run": "run.json",
    "curve": "curve.tsv",
    "steps": "steps.tsv",
}
"""The files of one run (``vocab.json`` goes beside the weights), by training option name."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="sweep.model, the study's base model")
    parser.add_argument("--key", required=True, help="the study (a key of sweep.values)")
    parser.add_argument(
        "--seed", type=int, required=True, help="the training seed (one of sweep.seeds)"
    )
    parser.add_argument("--split", type=Path, required=True, help="split.json of the split stage")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the folder of this key and seed: one <index>/ per point",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    if params["sweep"]["model"] != args.model:
        raise ConfigError(f"--model {args.model!r} is not sweep.model {params['sweep']['model']!r}")
    if args.key not in params["sweep"]["values"]:
        raise ConfigError(f"--key {args.key!r} is not a key of sweep.values")
    for index, point in enumerate(params["sweep"]["values"][args.key]):
        variant = sweep_variant(params, args.key, index, args.seed)
        folder = args.out / str(index)
        files = {option: folder / name for option, name in RUN_FILES.items()}
        train_stage.train_model(
            argparse.Namespace(**vars(args), **files),
            params,
            f"{args.model}-{args.key}-{index}-seed{args.seed}",
            model_config(variant.params, args.model),
            training_config(variant.params, args.model),
            extra={
                "sweep": {
                    "model": args.model,
                    "key": args.key,
                    "index": index,
                    "point": point,
                    "label": point_label(args.key, params["sweep"]["values"][args.key], index),
                    "seed": args.seed,
                }
            },
            stage="sweep",
        )
