"""The command line: help on every option, errors where the user looks (stderr and the log)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from picollm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_command_has_help():
    missing = [
        f"picollm {name} {'/'.join(action.option_strings) or action.dest}"
        for name, sub in subcommands(build_parser()).items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []


FAKE_STAGE = """
import logging, sys
from pathlib import Path
from picollm.cli import main
from picollm.errors import UserError
from picollm.stages import Stage, STAGES

def run(args, params):
    print("started", flush=True)
    logging.getLogger("picollm.training.trainer").info("step 1/2  loss 3.0")
    if args.fail == "user":
        raise UserError("data/x.txt: no such file; fix the path")
    if args.fail == "bug":
        raise RuntimeError("deep inside")

def configure(parser):
    parser.add_argument("--fail", help="how to fail")

sys.modules["picollm.stages.fake"] = sys.modules[__name__]
STAGES["fake"] = Stage("fake", "fake", "a stage for tests")
sys.exit(main(["fake", *sys.argv[1:]]))
"""


def fake(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """A stage run as a command (its output through real file descriptors, as in a job)."""
    command = [sys.executable, "-c", FAKE_STAGE, "--params", str(ROOT / "params.yaml"), *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize(
    "fail, says",
    [("user", "picollm fake: error: data/x.txt: no such file; fix the path\n"),
     ("bug", "RuntimeError: deep inside\n")],
)  # fmt: skip
def test_a_failing_stage_writes_its_error_to_its_log_and_to_stderr(tmp_path, fail, says):
    log = tmp_path / "logs" / "fake.log"
    result = fake(tmp_path, "--log-file", str(log), "--fail", fail)
    assert result.returncode != 0
    text = log.read_text()
    assert text.startswith("started\n") and text.endswith(says)
    assert result.stderr.endswith(says)
    if fail == "user":
        assert text.count("error") == 1 and "Traceback" not in result.stderr


def test_progress_lines_go_to_the_log_or_to_the_console(tmp_path):
    log = tmp_path / "fake.log"
    assert fake(tmp_path, "--log-file", str(log)).returncode == 0
    assert log.read_text().splitlines()[-1].endswith(" step 1/2  loss 3.0")
    by_hand = fake(tmp_path)
    assert by_hand.stdout == "started\n" and by_hand.stderr.endswith(" step 1/2  loss 3.0\n")


def test_a_bad_params_file_is_in_the_log_too(tmp_path):
    log = tmp_path / "fake.log"
    result = fake(tmp_path, "--params", str(tmp_path / "missing.yaml"), "--log-file", str(log))
    assert result.returncode == 2
    assert "missing.yaml: no such file" in log.read_text()
    assert "missing.yaml: no such file" in result.stderr


@pytest.mark.parametrize(
    "argv, named",
    [
        (["figure", "overfit_gap", "--results", "{tmp}"],
         "{tmp}/samples/kgram.json: no such file or directory"),
        (["figure", "loss_curves", "--results", "{tmp}", "--split", "{tmp}"],
         "{tmp}: is a directory"),
        (["sample-sweep", "--model", "lstm", "--weights", "{tmp}/w.safetensors",
          "--run-json", "{tmp}/run.json", "--split", "{tmp}/split.json",
          "--samples", "{tmp}/s.jsonl", "--summary", "{tmp}/s.json",
          "--table", "{tmp}/s.tsv"], "{tmp}/run.json: no such file or directory"),
    ],
)  # fmt: skip
def test_a_wrong_path_is_one_line_naming_it(tmp_path, capsys, argv, named):
    from picollm.cli import main

    fill = [arg.format(tmp=tmp_path) for arg in argv]
    outputs = ["--out", str(tmp_path / "f.png"), "--lineage", str(tmp_path / "f.json")]
    params = ["--params", str(ROOT / "params.yaml")]
    status = main([*fill, *(outputs if argv[0] == "figure" else []), *params])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"error: {named.format(tmp=tmp_path)}; check the path" in err


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_no_training_option_is_taken_by_torchrun(command):
    """torchrun parses the whole command line, abbreviations included: an option of ours that
    begins one of torchrun's (``--run`` of ``--run-path``) stops it before training starts."""
    from torch.distributed.run import get_args_parser

    theirs = [s for a in get_args_parser()._actions for s in a.option_strings if s.startswith("--")]
    ours = [
        option
        for action in subcommands(build_parser())[command]._actions
        if not isinstance(action, argparse._HelpAction)  # --help: torchrun's own, rightly
        for option in action.option_strings
    ]
    assert "--run-path" in theirs and "--log-dir" in theirs  # the ones we used to collide with
    taken = {option: [t for t in theirs if t.startswith(option)] for option in ours}
    assert {option: hits for option, hits in taken.items() if hits} == {}


def test_the_metrics_summary_has_an_entry_and_a_row_per_model(tmp_path, capsys):
    import json

    from picollm.cli import main

    for model, loss in (("lstm", 2.5), ("transformer", 1.25)):
        path = tmp_path / "models" / model / "metrics.json"
        path.parent.mkdir(parents=True)
        headline = {"train_loss": loss, "test_loss": loss + 0.5, "gap": 0.5,
                    "tokens_per_s": 12345.6, "parameters": 1000}  # fmt: skip
        path.write_text(json.dumps(headline))
    out, table = tmp_path / "metrics.json", tmp_path / "metrics.tsv"
    (tmp_path / "params.yaml").write_text(
        "models: {lstm: {type: lstm}, transformer: {type: transformer}}\n"
    )
    params = ["--params", str(tmp_path / "params.yaml")]
    command = ["metrics", "--results", str(tmp_path), "--out", str(out), "--table", str(table)]
    assert main([*command, *params]) == 0
    summary = json.loads(out.read_text())
    assert list(summary) == ["lstm", "transformer"]
    assert summary["lstm"] == {"train_loss": 2.5, "test_loss": 3.0, "gap": 0.5,
                               "tokens_per_s": 12345.6, "parameters": 1000}  # fmt: skip
    assert table.read_text().splitlines() == [
        "model\ttrain_loss\ttest_loss\tgap\ttokens_per_s\tparameters",
        "lstm\t2.5000\t3.0000\t0.5000\t12346\t1000",
        "transformer\t1.2500\t1.7500\t0.5000\t12346\t1000",
    ]
