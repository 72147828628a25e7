"""The ``picollm`` command line: one subcommand per pipeline stage, plus tools.

Every Snakemake rule (and its DVC stage in dvc.yaml) calls exactly one subcommand. Each
subcommand validates the whole params file first, so a bad value fails before any work starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from picollm import __version__
from picollm.errors import UserError, error_line
from picollm.stages import STAGES, Stage, execute

DEFAULT_PARAMS = "params.yaml"
DEFAULT_SPLIT = "data/processed/split/split.json"
PARAMS_HELP = f"the params file (default: {DEFAULT_PARAMS})"
SNAKEFILE_HELP = "the workflow whose rules are read (default: Snakefile)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; a stage's own options only for ``command`` (or for every
    stage when it is None), so that running one stage imports only that stage's code."""
    parser = argparse.ArgumentParser(
        prog="picollm",
        description="Train, sample and study pico-sized language models, reproducibly.",
    )
    parser.add_argument("--version", action="version", version=f"picollm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for stage in STAGES.values():
        _add_stage(commands, stage, configure=command in (None, stage.name))
    _add_tools(commands, configure_sample=command in (None, "sample"))
    return parser


def _add_stage(commands: argparse._SubParsersAction, stage: Stage, configure: bool) -> None:
    sub = commands.add_parser(stage.name, help=stage.help, description=stage.help)
    sub.add_argument(
        "--params",
        default=DEFAULT_PARAMS,
        help=f"the params file (default: {DEFAULT_PARAMS}); this stage reads "
        + ", ".join(stage.param_keys or ("no keys",)),
    )
    sub.add_argument(
        "--log-file",
        dest="log",
        type=Path,
        help="write all output of the stage (progress, errors) to this file",
    )
    if configure:
        stage.load().configure(sub)
    sub.set_defaults(handler=lambda args: execute(stage, args))


def _add_tools(commands: argparse._SubParsersAction, configure_sample: bool) -> None:

    sample = commands.add_parser(
        "sample",
        help="print samples from a trained model: picollm sample RUN_DIR --prompt TEXT",
        description="Continue prompts with a trained model. RUN_DIR is its folder: "
        "results/models/<model> or a sweep run's results/sweeps/<model>/<key>/<index>.",
    )
    if configure_sample:
        from picollm import sample_command  # only for `picollm sample`: a stage never loads it

        sample_command.configure(sample)
        sample.set_defaults(handler=sample_command.run)

    validate = commands.add_parser(
        "validate",
        help="check a params file: the schema, every model and sweep run, the input files",
    )
    validate.add_argument("--params", default=DEFAULT_PARAMS, help=PARAMS_HELP)
    validate.add_argument(
        "--split",
        type=Path,
        default=Path(DEFAULT_SPLIT),
        help=f"split.json of the data split, if built (default: {DEFAULT_SPLIT}): each run's "
        "length on it is checked too",
    )
    validate.set_defaults(handler=_validate)

    trace = commands.add_parser(
        "trace",
        help="print the chain of steps from raw data to an output, checked against its records",
        description="Trace an output back to raw data: each step's command, params, code and "
        "file hashes, compared with the lineage records and dvc.lock. Exit status 1 if "
        "anything is missing, stale or disagrees.",
    )
    trace.add_argument("output", help="the file to trace, e.g. results/figures/overfit_gap.png")
    trace.add_argument("--snakefile", default="Snakefile", help=SNAKEFILE_HELP)
    trace.add_argument("--params", default=DEFAULT_PARAMS, help=PARAMS_HELP)
    trace.add_argument("--json", action="store_true", help="print the trace as JSON")
    trace.set_defaults(handler=_trace)


def _validate(args: argparse.Namespace) -> None:
    from picollm.config import load_params
    from picollm.pipeline.workflow import check_inputs_exist
    from picollm.training.runs import check_run_lengths, check_training_runs

    params = load_params(args.params)
    check_training_runs(params)
    check_inputs_exist(params)
    if args.split.is_file():
        check_run_lengths(params, args.split)
    print(f"{args.params}: ok ({len(params['models'])} model(s): {', '.join(params['models'])})")


def _trace(args: argparse.Namespace) -> int:
    from picollm.pipeline.trace import run

    return run(args.output, args.snakefile, args.params, as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), "")
    args = build_parser(command).parse_args(argv)
    try:
        return args.handler(args) or 0
    except (UserError, OSError) as err:
        if os.environ.get("PICOLLM_DEBUG"):
            raise
        print(error_line(args.command, err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
