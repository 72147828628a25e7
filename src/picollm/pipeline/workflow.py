"""Helpers the Snakefile uses to wire rules from the stage registry.

The rules stay pure wiring: which files a stage reads and writes, which params keys it declares
(from ``Stage.param_keys``) and which source files it runs (``stage_code``), so that editing a key
or a module reruns exactly the stages that depend on it, in Snakemake and in DVC alike.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from picollm.config import ConfigError, prune
from picollm.stages import STAGE_MODULES, load_stage

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent  # the directory that holds the ``picollm`` package


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


def train_launcher(params: Mapping[str, Any], model: str) -> str:
    """What starts ``picollm train`` for ``model``: itself, or torchrun starting
    ``training.processes`` data-parallel copies of it (an integer the schema checked)."""
    from picollm.config import training_config

    processes = int(training_config(params, model).get("processes", 1))
    if processes == 1:
        return "picollm"
    return f"torchrun --standalone --nproc_per_node {processes} -m picollm"


def stage_keys(stage: str) -> Callable[[Any], list[str]]:
    """A params function for a rule: the dotted keys the stage reads, given the job's wildcards."""
    spec = load_stage(stage)

    def keys(wildcards: Any) -> list[str]:
        return spec.keys(**{name: wildcards[name] for name in spec.wildcards})

    return keys


def stage_params(stage: str, config: Mapping[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """A params function for a rule: the params subtree the stage reads (so changing it reruns)."""
    keys = stage_keys(stage)
    return lambda wildcards: prune(config, keys(wildcards))


@cache
def stage_code(stage: str, relative_to: Path | None = None) -> list[str]:
    """Source files of the picollm modules the stage imports, directly or transitively."""
    module = f"picollm.stages.{STAGE_MODULES[stage]}"
    files = sorted(_module_closure(module))
    base = relative_to or Path.cwd()
    return [_relative(path, base) for path in files]


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base.resolve()))
    except ValueError:
        return str(path)


LAZY_EXPORTS = "_EXPORTS"
"""The name of a lazily importing package's table of its names' submodules."""


def _module_file(module: str) -> Path | None:
    """The file of a picollm module or package, or None if it is not one."""
    parts = module.split(".")
    if parts[0] != "picollm":
        return None
    base = SOURCE_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Modules named by the import statements of one file (absolute and relative). A name
    imported from a package that loads its names lazily (PEP 562, see :func:`_lazy_exports`)
    counts as an import of the submodule that defines it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            lazy = _lazy_exports(base)
            found.update(f"{base}.{lazy.get(alias.name, alias.name)}" for alias in node.names)
    return found


def _lazy_exports(package: str) -> dict[str, str]:
    """Name -> submodule from the ``_EXPORTS`` table of a package's ``__init__.py`` (empty for a
    package without one, or a plain module)."""
    path = _module_file(package)
    if path is None or path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == LAZY_EXPORTS for target in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


def _module_closure(root: str) -> set[Path]:
    """Files of ``root`` and of every picollm module it reaches through imports, with the
    ``__init__.py`` of each package on the way (they run on import)."""
    seen: set[str] = set()
    files: set[Path] = set()
    pending = [root]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        files.add(path)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        pending.extend(parents)
        pending.extend(_imports(path, module))
    return files
