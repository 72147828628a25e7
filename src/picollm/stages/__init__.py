"""Pipeline stages: the thin layer between files/params and the library.

``STAGES`` lists each ``picollm <stage>`` command: its module under ``picollm.stages`` (which
defines ``configure(parser)`` and ``run(args, params)``), its help, and the dotted ``params.yaml``
keys it reads (``{model}``-style placeholders are filled from the command's options). The CLI hands
the stage a params tree pruned to those keys and the pipeline reruns the stage when they change, so a
stage cannot read a value whose change would not rerun it. The table imports nothing heavy, so the
Snakefile and ``picollm --help`` load fast; the CLI imports only the module of the command it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from picollm.errors import UserError


@dataclass(frozen=True)
class Stage:
    """One ``picollm <name>`` command of the pipeline."""

    name: str
    module: str
    help: str
    param_keys: tuple[str, ...] = ()
    wildcards: tuple[str, ...] = ()
    """Command-line options that fill the ``{placeholders}`` of ``param_keys``."""

    def keys(self, **wildcards: str) -> list[str]:
        """The dotted params keys this stage reads for the given wildcard values."""
        return [key.format(**wildcards) for key in self.param_keys]

    def load(self) -> ModuleType:
        """The stage's module, with its ``configure`` and ``run``."""
        return importlib.import_module(f"picollm.stages.{self.module}")


TRAIN_KEYS = (
    "data.block_size",
    "data.loader",
    "data.tinystories_weight",
    "training",
    "models.{model}",
)
"""What a training run reads; the sweep stage reads these too."""

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "three-seqs",
            "three_seqs",
            "write the course's 3seqs.txt (3,333 lines of counting, evens and powers of two)",
        ),
        Stage(
            "tokenize",
            "tokenize",
            "read TinyStories, input files and generated corpora; tokenise them into one Parquet",
            (
                "data.input_files",
                "data.document_mode",
                "data.generated",
                "data.tinystories_weight",
                "data.tinystories",
            ),
        ),  # fmt: skip
        Stage(
            "split",
            "split",
            "split the corpus into train and test by document; write memory-mappable token arrays",
            ("split", "data.vocab", "data.vocab_size", "data.vocab_min_count"),
        ),
        Stage(
            "train",
            "train",
            "train one model from params.yaml; write weights, metrics and loss curves",
            TRAIN_KEYS,
            wildcards=("model",),
        ),
        Stage(
            "sweep",
            "sweep",
            "train every point of one study of the sweep in params.yaml, at one seed",
            (*TRAIN_KEYS, "sweep.model", "sweep.common", "sweep.values.{key}"),
            wildcards=("model", "key"),
        ),
        Stage(
            "sample-sweep",
            "sample",
            "the pipeline's p sweep: sample at every nucleus mass p in params; measure diversity "
            "and log-probability (to sample by hand: picollm sample RUN_DIR)",
            ("sampling",),
        ),
        Stage(
            "attention-scaling",
            "attention_scaling",
            "measure forward+backward time and memory of softmax, linear, GLA and GDN against length",
            ("attention_scaling",),
        ),
        Stage(
            "interpret",
            "interpret",
            "attention maps and sparse-autoencoder features of a trained Transformer",
            ("interpretability",),
        ),
        Stage(
            "figure",
            "figure",
            "draw a figure from result files (with a JSON lineage sidecar)",
            (
                "figures",
                "models",
                "sweep.model",
                "sweep.seeds",
                "sweep.values",
                "interpretability.model",
            ),
        ),
        Stage(
            "metrics",
            "metrics",
            "every model's final train/test loss, gap, tokens/s and parameters: one JSON, one TSV",
            ("models",),
        ),
    )
}


def add_trained_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--weights`` and ``--run-json``: a trained model for a stage that reads one."""
    parser.add_argument("--model", required=True, help="the model's name under `models`")
    parser.add_argument("--weights", type=Path, required=True, help="its weights.safetensors")
    parser.add_argument(
        "--run-json",
        dest="run",
        type=Path,
        required=True,
        help="its training run.json (holds the architecture)",
    )


def execute(stage: Stage, args: argparse.Namespace) -> None:
    """Validate the whole params file, prune it to the stage's keys, and run the stage.

    With ``args.log`` set, all its output (Python's and native libraries' alike) goes to that
    file, and so does its error if it fails (the CLI prints the error to stderr as well). Its
    progress lines (``logging`` at INFO from picollm modules) go to stderr: the log, or the
    console when run by hand.
    """
    from picollm.config import load_params, prune  # jsonschema and yaml: not for other commands

    with _output_to(args.log):
        _log_progress_to_stderr()
        try:
            params = load_params(args.params)
            wildcards = {name: getattr(args, name) for name in stage.wildcards}
            try:
                stage.load().run(args, prune(params, stage.keys(**wildcards)))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
                raise _missing_input(err) from err
        except Exception as err:
            if args.log is not None:  # stderr is the log file here
                _print_error(stage.name, err)
            raise


def _missing_input(err: OSError) -> UserError:
    """A path given to a stage that is not there (or not a file): one line naming it."""
    if err.filename is None:  # a message of our own, which names the path
        return UserError(str(err))
    return UserError(
        f"{err.filename}: {(err.strerror or 'cannot open').lower()}; check the path given on "
        f"the command line (a pipeline output is made by `snakemake {err.filename}`)"
    )


def _log_progress_to_stderr() -> None:
    """picollm's INFO messages (training progress, resumption) to stderr, with the time."""
    logger = logging.getLogger("picollm")
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a message comes."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


def _print_error(command: str, err: Exception) -> None:
    """The error as the CLI shows it: one line for a ``UserError``, else the traceback."""
    from picollm.errors import error_line

    if isinstance(err, UserError):
        print(error_line(command, err), file=sys.stderr, flush=True)
    else:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


_console_fd = 2
"""Where :func:`announce` writes besides standard output: the terminal's standard error, kept
while a stage's output goes to its log file."""


def announce(message: str) -> None:
    """Print ``message`` to the stage's output (its log) and to the console that started it, so
    that a fact every user should see (e.g. which data a run trains on) never hides in a log."""
    print(message, flush=True)
    if _console_fd != 2:
        os.write(_console_fd, f"{message}\n".encode())


@contextlib.contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Redirect file descriptors 1 and 2 to ``log`` (created with its directory) for the block."""
    global _console_fd
    if log is None:
        yield
        return
    rank = int(os.environ.get("RANK", "0") or 0)  # torchrun: each process its own file
    if rank:
        log = log.with_name(f"{log.name}.rank{rank}")
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        _console_fd = saved[1]
        try:
            yield
        finally:
            _console_fd = 2
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
