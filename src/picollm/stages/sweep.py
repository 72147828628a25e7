"""``picollm sweep``: the runs of one key of the hyperparameter study in ``sweep`` of params.yaml.

The study varies one key at a time around a base model (``sweep.model``): a key of that model's
entry (``d_model``, ``kgram_k``, ...), a training key (``learning_rate``, ``batch_size``, ...;
the two sets of names do not overlap), or ``data_fraction``, the share of the training documents
used (a training-set size ladder). One job trains every value of one key in turn, into
``<out>/<index>/`` (the value's index in ``sweep.values.<key>``), so no value ever travels
through a shell command and the Snakemake and DVC graphs have one step per key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.config import model_config, training_config
from picollm.errors import ConfigError
from picollm.stages import train as train_stage
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
    parser.add_argument("--key", required=True, help="the swept key (under sweep.values)")
    parser.add_argument("--split", type=Path, required=True, help="split.json of the split stage")
    parser.add_argument(
        "--out", type=Path, required=True, help="the key's folder: one <index>/ per value"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    if params["sweep"]["model"] != args.model:
        raise ConfigError(f"--model {args.model!r} is not sweep.model {params['sweep']['model']!r}")
    if args.key not in params["sweep"]["values"]:
        raise ConfigError(f"--key {args.key!r} is not a key of sweep.values")
    for index, value in enumerate(params["sweep"]["values"][args.key]):
        variant = sweep_variant(params, args.key, index)
        folder = args.out / str(index)
        files = {option: folder / name for option, name in RUN_FILES.items()}
        train_stage.train_model(
            argparse.Namespace(**vars(args), **files),
            params,
            f"{args.model}-{args.key}-{index}",
            model_config(variant.params, args.model),
            training_config(variant.params, args.model),
            variant.data_fraction,
            extra={"sweep": {"model": args.model, "key": args.key, "value": value}},
            stage="sweep",
        )
