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


def configure(parser: argparse.ArgumentParser) -> None:
    train_stage.configure(parser)
    parser.add_argument("--key", required=True, help="the swept key (under sweep.values)")
    parser.add_argument("--index", type=int, required=True, help="which of its values")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from picollm.config import model_config, training_config
    from picollm.errors import ConfigError
    from picollm.training.runs import sweep_variant

    if params["sweep"]["model"] != args.model:
        raise ConfigError(f"--model {args.model!r} is not sweep.model {params['sweep']['model']!r}")
    variant = sweep_variant(params, args.key, args.index)
    value = params["sweep"]["values"][args.key][args.index]
    train_stage.train_model(
        args,
        params,
        f"{args.model}-{args.key}-{args.index}",
        model_config(variant.params, args.model),
        training_config(variant.params, args.model),
        variant.data_fraction,
        extra={"sweep": {"model": args.model, "key": args.key, "value": value}},
        stage="sweep",
    )


STAGE = Stage(
    name="sweep",
    help="train one variant of the hyperparameter study (sweep in params.yaml)",
    param_keys=(*train_stage.PARAM_KEYS, "sweep.model", "sweep.values.{key}"),
    configure=configure,
    run=run,
    wildcards=("model", "key"),
)
