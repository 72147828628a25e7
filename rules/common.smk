# Shared by the rules: the params file (checked once, here), where a run writes, and helpers.

if workflow.config_settings.config:  # before anything reads the values, whatever their type
    raise WorkflowError(
        "--config overrides are not seen by the picollm stages, which read the params file: "
        "edit params.yaml or pass another file with --configfile"
    )

import re
from pathlib import Path

from picollm.config import ConfigError, load_params
from picollm.pipeline.workflow import (
    THREE_SEQS_TEXT,
    check_inputs_exist,
    code_files,
    corpus_inputs,
    results_root,
    split_outputs,
    stage_params,
    train_launcher,
    train_processes,
    write_params_record,
)
from picollm.stages.figure import FIGURES, default_figures
from picollm.training.runs import check_training_runs

PARAMS_FILE = str((workflow.overwrite_configfiles or ["params.yaml"])[-1])
try:  # exactly what every stage will read
    PARAMS = load_params(PARAMS_FILE)
    check_training_runs(PARAMS)  # every model and sweep variant, built on the meta device
    check_inputs_exist(PARAMS)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
RESULTS = results_root(PARAMS_FILE)  # results/ for params.yaml, results/<stem>/ for another
PROCESSED = "data/processed" if RESULTS == "results" else f"data/processed/{Path(RESULTS).name}"
SPLIT = split_outputs(f"{PROCESSED}/split")
# What training reads of the split: split.json (with every file's sha256), vocabulary, token arrays
TRAIN_DATA = {key: path for key, path in SPLIT.items() if not key.endswith("_parquet")}
MODELS = sorted(PARAMS["models"])
SWEEP = PARAMS["sweep"]
INTERPRETED = PARAMS["interpretability"]["model"]  # the model the study reads, or None
CONDA_ENV = "../workflow/envs/picollm.yaml"
CODE_ROOT = Path(".") if Path("src/picollm").is_dir() else None  # else the installed package


def code(stage):
    """The source files ``stage`` runs (its declared code paths): rerun when one changes."""
    return code_files(stage, CODE_ROOT)


def params_record(stage, job, **wildcards):
    """An input function: the job's params, written to a file that is newer than the job's
    outputs only when they changed after they were built (see write_params_record)."""

    def path(w):
        values = {name: (w[name] if value is None else value) for name, value in wildcards.items()}
        name = job.format(**values)
        record = f".picollm/params/{Path(PARAMS_FILE).stem}/{name}.json"
        return write_params_record(record, stage_params(stage, PARAMS, **values), PARAMS_FILE)

    return path


def figure_output(name):
    return f"{RESULTS}/figures/{name}.png"


def made_by(path):
    """The declared output holding ``path``: a sweep run's files lie in its study/seed folder."""
    match = re.match(rf"({re.escape(RESULTS)}/sweeps/[^/]+/[^/]+/\d+)/\d+/", path)
    return match.group(1) if match else path


def figure_inputs(wildcards):
    files = FIGURES[wildcards.name].inputs(PARAMS, RESULTS, SPLIT["summary"])
    return sorted({made_by(path) for paths in files.values() for path in paths})

