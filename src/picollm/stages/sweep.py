"""``picollm sweep``: one training run of the hyperparameter study in ``sweep`` of params.yaml.

The study varies one key at a time around a base model (``sweep.model``): a key of that model's
entry (``d_model``, ``kgram_k``, ...), a training key (``learning_rate``, ``batch_size``, ...;
the two sets of names do not overlap), or ``data_fraction``, the share of the training documents
used (a training-set size ladder). Each
(key, value) pair is one Snakemake job, addressed by the key and the value's index in
``sweep.values.<key>``, so no value ever travels through a shell command.
"""

from __future__ import annotations

import argparse
from typing import Any

from picollm.stages import Stage
from picollm.stages import train as train_stage

DATA_FRACTION = "data_fraction"


def configure(parser: argparse.ArgumentParser) -> None:
    train_stage.configure(parser)
    parser.add_argument("--key", required=True, help="the swept key (under sweep.values)")
    parser.add_argument("--index", type=int, required=True, help="which of its values")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from picollm.config import model_config, training_config
    from picollm.errors import ConfigError
    from picollm.training.config import TRAINING_KEYS

    if params["sweep"]["model"] != args.model:
        raise ConfigError(f"--model {args.model!r} is not sweep.model {params['sweep']['model']!r}")
    values = params["sweep"]["values"][args.key]
    if not 0 <= args.index < len(values):
        raise ConfigError(f"sweep.values.{args.key} has no value number {args.index}")
    value = values[args.index]
    model_entry = model_config(params, args.model)
    training = training_config(params, args.model)
    data_fraction = 1.0
    if args.key == DATA_FRACTION:
        data_fraction = value
    elif args.key in TRAINING_KEYS:
        training[args.key] = value
    else:
        model_entry[args.key] = value
    train_stage.train_model(
        args,
        params,
        f"{args.model}-{args.key}-{args.index}",
        model_entry,
        training,
        data_fraction,
        extra={"sweep": {"model": args.model, "key": args.key, "value": value}},
    )


STAGE = Stage(
    name="sweep",
    help="train one variant of the hyperparameter study (sweep in params.yaml)",
    param_keys=(*train_stage.PARAM_KEYS, "sweep.model", "sweep.values.{key}"),
    configure=configure,
    run=run,
    wildcards=("model", "key"),
)
