"""What the Snakefile needs besides wiring: input files, the code each stage runs, its params.

A stage's code is declared, not discovered: ``CORE`` (what every ``picollm <stage>`` command runs)
plus the stage's entry in ``STAGE_CODE``, directories and files relative to the repository root.
``dvc.yaml`` lists the same paths as each stage's ``deps``; the Snakemake rules take every file
under them as input, so editing any module a stage runs reruns it in both drivers
(``tests/test_workflow.py`` imports each stage and checks that nothing it loads is left out).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from picollm.config import ConfigError, prune
from picollm.stages import STAGES

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SOURCE_PREFIX = "src/picollm"
"""Where the package lies in the repository; the declared code paths start with it."""
REPOSITORY_ROOT = PACKAGE_DIR.parents[1]
"""The checkout holding ``src/picollm`` (for an installed package: only a guess, unused)."""

CORE = [
    f"{SOURCE_PREFIX}/{path}"
    for path in (
        "__init__.py",
        "__main__.py",
        "entry.py",
        "cli.py",
        "config.py",
        "errors.py",
        "files.py",
        "schema",
        "stages/__init__.py",
        "pipeline/__init__.py",
        "pipeline/lineage.py",
    )
]
"""Code every stage runs: the command line, params loading and checking, lineage records."""

_DATA = ("data", "tokenizer.py", "vocab.py", "integrity.py")
_TRAINED = (*_DATA, "models", "training", "studies.py")
_TRAINS = ("stages/train.py", *_TRAINED, "init_gradients.py", "length_generalization.py")
STAGE_CODE: dict[str, list[str]] = {
    stage: [f"{SOURCE_PREFIX}/{path}" for path in paths]
    for stage, paths in {
        "three-seqs": ("stages/three_seqs.py", "data"),
        "tokenize": ("stages/tokenize.py", *_DATA),
        "split": ("stages/split.py", *_DATA),
        "train": (*_TRAINS, "pipeline/workflow.py"),
        "sweep": ("stages/sweep.py", *_TRAINS, "pipeline/workflow.py"),
        "sample-sweep": (
            "stages/sample.py",
            *_TRAINED,
            "generation.py",
            "sampling.py",
            "text_metrics.py",
            "memorisation.py",
        ),
        "attention-scaling": ("stages/attention_scaling.py", "attention_scaling.py", "models"),
        "interpret": ("stages/interpret.py", *_TRAINED, "interpret"),
        "figure": (
            "stages/figure.py",
            "figures",
            "stats.py",
            "studies.py",
            "length_generalization.py",
        ),
        "metrics": ("stages/metrics.py",),
    }.items()
}
"""Code each stage runs besides ``CORE``: its module under ``stages/`` and what that imports."""


def code_paths(stage: str) -> list[str]:
    """The declared code of ``stage``: ``CORE`` and its ``STAGE_CODE``, repository-relative."""
    return [*CORE, *STAGE_CODE[stage]]


def code_files(stage: str, root: Path | None = None) -> list[str]:
    """Every source file under the stage's code paths, sorted: relative to ``root`` (a checkout
    holding ``src/picollm``), or with ``root`` None, absolute paths into the imported package."""
    base = PACKAGE_DIR if root is None else root / SOURCE_PREFIX
    files: set[Path] = set()
    for declared in code_paths(stage):
        path = base / Path(declared).relative_to(SOURCE_PREFIX)
        found = path.rglob("*") if path.is_dir() else [path]
        files.update(f for f in found if f.is_file() and "__pycache__" not in f.parts)
    if root is None:
        return sorted(str(f) for f in files)
    return sorted(f.relative_to(root).as_posix() for f in files)


def corpus_inputs(params: Mapping[str, Any]) -> list[str]:
    """Files the tokenize stage reads: the input files, and a local TinyStories path if used."""
    data = params["data"]
    files = list(data["input_files"])
    local = data["tinystories"]["path"]
    if (
        data["tinystories_weight"] > 0
        and local
        and data["tinystories"]["source"] in ("auto", "local")
    ):
        files.append(local)
    return files


THREE_SEQS_TEXT = "data/raw/3seqs.txt"
"""The one input file the pipeline makes itself (rule three_seqs), so it may be absent at first."""


def check_inputs_exist(params: Mapping[str, Any], root: Path | None = None) -> None:
    """Raise ConfigError naming each input path of params (``data.input_files``, a local
    TinyStories path) that does not exist under ``root`` (default: the working directory) and
    that the pipeline does not make. Called before any work by ``picollm validate`` and the
    Snakefile, so a missing input never lets a run go ahead on what was there before."""
    base = Path.cwd() if root is None else root
    data = params["data"]
    named = [(f"data.input_files[{i}]", path) for i, path in enumerate(data["input_files"])]
    local = corpus_inputs(params)[len(data["input_files"]) :]
    named += [("data.tinystories.path", path) for path in local]
    problems = [
        f"{key} = {path!r}: no such file under {base}; fix the path or remove it"
        for key, path in named
        if not (base / path).exists() and Path(path).as_posix() != THREE_SEQS_TEXT
    ]
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"params name {len(problems)} missing input(s):\n{listing}")


def split_outputs(directory: str) -> dict[str, str]:
    """The split stage's output files by rule name (``summary``, ``train_tokens``, ...)."""
    from picollm.data.split import SPLIT_FILES, SPLIT_SUMMARY, SPLITS
    from picollm.vocab import VOCAB_FILE

    outputs = {
        f"{split}_{kind.split('.')[0]}": f"{directory}/{split}.{kind}"
        for split in SPLITS
        for kind in SPLIT_FILES
    }
    return {
        **outputs,
        "vocab": f"{directory}/{VOCAB_FILE}",
        "summary": f"{directory}/{SPLIT_SUMMARY}",
    }


def train_processes(params: Mapping[str, Any], model: str) -> int:
    """``training.processes`` of ``model``: how many data-parallel copies its training runs."""
    from picollm.config import training_config

    return int(training_config(params, model).get("processes", 1))


def train_launcher(params: Mapping[str, Any], model: str) -> str:
    """What starts ``picollm train`` for ``model``: itself, or torchrun starting
    ``train_processes`` data-parallel copies of it (an integer the schema checked)."""
    processes = train_processes(params, model)
    if processes == 1:
        return "picollm"
    return f"torchrun --standalone --nproc_per_node {processes} -m picollm"


def results_root(params_file: str | Path) -> str:
    """Where a run on ``params_file`` writes: ``results`` for params.yaml, else
    ``results/<stem>``, so that a run on another params file never replaces the default run's."""
    path = Path(params_file)
    return "results" if path.name == "params.yaml" else f"results/{path.stem}"


def stage_params(stage: str, params: Mapping[str, Any], **wildcards: str) -> dict[str, Any]:
    """The params subtree ``stage`` reads for these wildcard values."""
    return prune(params, STAGES[stage].keys(**wildcards))


def write_params_record(path: str | Path, values: Mapping[str, Any], source: str | Path) -> str:
    """Write ``values`` (a stage's params) as JSON to ``path`` unless it holds them already, and
    give a new file the modification time of the params file ``source``: Snakemake reruns a job
    when its record is newer than its outputs, that is, when the params changed after they were
    built (by either driver). Returns ``path``, for use as a rule input."""
    target = Path(path)
    text = json.dumps(values, indent=1, sort_keys=True) + "\n"
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return str(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    changed = os.stat(source).st_mtime_ns
    os.utime(temporary, ns=(changed, changed))
    os.replace(temporary, target)
    return str(path)
