"""The training runs params define (each model, each sweep variant), checked before any work.

``check_training_runs`` builds every run as its TrainConfig and its model on PyTorch's meta
device (no weights are allocated), so a value that only the model's own code rejects
(``n_heads: 3`` with ``d_model: 64``, a sweep value of an unknown key) stops ``picollm validate``
and the Snakefile, instead of the one job that trains it after everything else has run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picollm.config import model_config, schema_problems, training_config
from picollm.errors import ConfigError
from picollm.studies import point_changes
from picollm.training.config import TRAINING_KEYS, TrainConfig


@dataclass(frozen=True)
class TrainingRun:
    """One training run the params define: a model, or one seed of one point of the sweep."""

    label: str  # where in params.yaml it comes from: "models.lstm", "sweep.values.d_model[1]"
    name: str  # the model's name under models
    params: Mapping[str, Any]  # the params with the point's changes in place

    @property
    def is_sweep_variant(self) -> bool:
        return self.label.startswith("sweep.")


def sweep_variant(
    params: Mapping[str, Any], key: str, index: int, seed: int | None = None
) -> TrainingRun:
    """The run of point ``sweep.values.<key>[index]`` with training seed ``seed`` (default: the
    model's own): sweep.model with ``sweep.common`` and then the point's changes applied. A
    training key (``learning_rate``, ``data_fraction``, ...) lands in the model's own
    ``training`` overrides, any other key in the model's entry."""
    sweep = params["sweep"]
    name = sweep["model"]
    points = sweep["values"].get(key)
    if points is None:
        raise ConfigError(f"sweep.values has no key {key!r}; have {sorted(sweep['values'])}")
    if not 0 <= index < len(points):
        raise ConfigError(f"sweep.values.{key} has no point number {index}")
    variant = copy.deepcopy(dict(params))
    entry = variant["models"][name]
    changes = {**sweep.get("common", {}), **point_changes(key, points[index])}
    if seed is not None:
        changes["seed"] = seed
    for changed, value in changes.items():
        if changed in TRAINING_KEYS:
            entry["training"] = {**entry.get("training", {}), changed: value}
        else:
            entry[changed] = value
    return TrainingRun(f"sweep.values.{key}[{index}]", name, variant)


def training_runs(params: Mapping[str, Any]) -> Iterator[TrainingRun]:
    """Every training run of validated params: each model, then each sweep point (at its first
    seed: seeds change no setting a check could reject)."""
    for name in params["models"]:
        yield TrainingRun(f"models.{name}", name, params)
    sweep = params["sweep"]
    if sweep["model"] in params["models"]:
        for key, points in sweep["values"].items():
            for index in range(len(points)):
                yield sweep_variant(params, key, index, sweep["seeds"][0])


def check_training_runs(params: Mapping[str, Any], vocab_size: int | None = None) -> None:
    """Raise ConfigError listing each training run of validated ``params`` that would fail to
    start: a sweep variant that breaks the schema, a TrainConfig or a model that its own code
    rejects. A variant of a model that already fails is not reported again. ``vocab_size``:
    the models' (default: GPT-2's, the largest)."""
    from picollm.models import check_buildable
    from picollm.tokenizer import VOCAB_SIZE

    problems: list[str] = []
    failed: set[str] = set()
    for run in training_runs(params):
        if run.name in failed:
            continue
        found = schema_problems(run.params) if run.is_sweep_variant else []
        if not found:
            try:
                TrainConfig.from_dict(training_config(run.params, run.name))
                arch = model_config(run.params, run.name)
                check_buildable({"vocab_size": vocab_size or VOCAB_SIZE, **arch})
            except (TypeError, ValueError) as err:
                found = [str(err)]
        if found and not run.is_sweep_variant:
            failed.add(run.name)
        problems.extend(f"{run.label}: {line}" for line in found)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"params define {len(problems)} training run(s) that cannot start:\n{listing}"
        )


def check_run_lengths(params: Mapping[str, Any], split_summary: Path) -> None:
    """Raise ConfigError listing each training run whose warm-up is not shorter than the run
    itself on the data split at ``split_summary`` (split.json) as it is now: how many steps a
    run takes depends on the train tokens, which only an existing split knows. Runs that
    ``check_training_runs`` rejects are skipped."""
    from picollm.data.loader import TokenStore
    from picollm.training.config import run_length

    tokens = TokenStore.open(split_summary.parent, "train").n_tokens  # steps count on all of it
    problems = []
    for run in training_runs(params):
        try:
            config = TrainConfig.from_dict(training_config(run.params, run.name))
            block_size = model_config(run.params, run.name)["block_size"]
        except (TypeError, ValueError):
            continue
        if tokens < 1:
            continue
        _, steps = run_length(config, tokens, block_size)
        if config.warmup_steps >= steps:
            problems.append(
                f"{run.label}: warmup_steps ({config.warmup_steps}) must be below the {steps} "
                f"steps it trains for on the current split ({tokens:,} train tokens): lower "
                "warmup_steps, or raise max_steps_per_epoch or epochs"
            )
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"with {split_summary} as it is:\n{listing}")
