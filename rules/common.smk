# Helpers shared by the rules: the validated params, and per-stage params/code lookups.

import re

from picollm.config import ConfigError, load_params
from picollm.training.runs import check_training_runs
from picollm.pipeline.workflow import (
    THREE_SEQS_TEXT,
    check_inputs_exist,
    corpus_inputs,
    split_outputs,
    stage_code,
    stage_keys,
    stage_params,
    train_launcher,
)

if workflow.config_settings.config:
    raise WorkflowError(
        "--config overrides are not seen by the picollm stages, which read the params file: "
        "edit params.yaml or pass another file with --configfile"
    )
PARAMS_FILE = str((workflow.overwrite_configfiles or ["params.yaml"])[-1])
try:  # exactly what every stage will read (Snakemake merges --configfile over params.yaml)
    PARAMS = load_params(PARAMS_FILE)
    check_training_runs(PARAMS)  # every model and sweep variant, built on the meta device
    check_inputs_exist(PARAMS)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
MODELS = sorted(PARAMS["models"])
CONDA_ENV = "../workflow/envs/picollm.yaml"
SPLIT_OUTPUTS = split_outputs("data/processed/split")
SWEEP = PARAMS["sweep"]
SWEEP_RUNS = [  # run records of the hyperparameter study
    f"results/sweeps/{SWEEP['model']}/{key}/{index}/run.json"
    for key, values in SWEEP["values"].items()
    for index in range(len(values))
]
if SWEEP_RUNS:  # the base model's own run is the study's reference point
    SWEEP_RUNS.insert(0, f"results/models/{SWEEP['model']}/run.json")
ATTENTION_RUNS = [  # the base model and the study's runs that swap its attention
    f"results/models/{SWEEP['model']}/run.json",
    *(
        f"results/sweeps/{SWEEP['model']}/attention/{index}/run.json"
        for index in range(len(SWEEP["values"].get("attention", [])))
    ),
] if "attention" in SWEEP["values"] else []
INTERPRETED = PARAMS["interpretability"]["model"]  # the model the study reads, or None
FIGURES = [
    f"results/figures/{name}.png"
    for name in ("overfit_gap", "loss_curves", "diversity_vs_p", "attention_scaling")
    + (("hyperparams",) if SWEEP_RUNS else ())
    + (("attention_quality",) if ATTENTION_RUNS else ())
    + (("attention_maps", "sae_features") if INTERPRETED else ())
]


def interpreted(record):
    """The interpret stage's ``record`` file of `interpretability.model`, for its figures."""

    def path(wildcards):
        if INTERPRETED is None:
            raise WorkflowError(
                "this figure needs interpretability.model in params.yaml (a softmax Transformer)"
            )
        return f"results/interpret/{INTERPRETED}/{record}"

    return path


def declared(stage):
    """The params a stage reads: its dotted keys and their values (both rerun triggers)."""
    return {"param_keys": stage_keys(stage), "param_values": stage_params(stage, PARAMS)}


wildcard_constraints:
    model="|".join(MODELS),
    key="|".join(re.escape(key) for key in SWEEP["values"]) or "(?!)",
    index=r"\d+",
