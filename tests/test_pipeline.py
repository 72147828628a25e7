"""The pipeline end to end, driven by Snakemake and by DVC, in a temporary copy of the repository.

These tests run real `snakemake` and `dvc` commands on a tiny configuration (a few training
steps on 3seqs), so they take a while; they share one xdist group so they never compete for the
two CI cores with each other.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPIED = [
    "Snakefile",
    "rules",
    "workflow",
    "profiles",
    "src",
    "dvc.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "data/raw/.gitkeep",
    "data/processed/.gitkeep",
    "results/.gitkeep",
]

TINY = {
    "data": {"block_size": 16, "input_files": ["data/raw/3seqs.txt"]},
    "split": {"test_fraction": 0.1, "seed": 0},
    "training": {
        "batch_size": 4,
        "max_steps_per_epoch": 6,
        "warmup_steps": 2,
        "eval_interval": 3,
        "eval_batches": 1,
    },
    "models": {"lstm": {"type": "lstm", "embed_size": 8}},
    "sampling": {"prompt": "0 1 2", "top_p": [0.9], "samples_per_prompt": 2, "max_new_tokens": 4},
    "attention_scaling": {
        "lengths": [32, 64],
        "methods": ["sdpa", "gla"],
        "d_model": 32,
        "repeats": 1,
    },
    "figures": {"dpi": 50},
}


def complete(params: dict) -> dict:
    """``params`` over the shipped params.yaml (``models`` and ``sweep`` replaced whole), so that
    every key dvc.yaml lists is there, as it is in a real project."""
    full = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, value in params.items():
        if section in ("models", "sweep") or not isinstance(value, dict):
            full[section] = copy.deepcopy(value)
        else:
            full[section] = {**full[section], **copy.deepcopy(value)}
    return full


FULL = complete(
    {
        **TINY,
        "data": {**TINY["data"], "tinystories_weight": 0.0},
        "models": {
            "lstm": {"type": "lstm", "embed_size": 8},
            "transformer": {"type": "transformer", "d_model": 16, "n_heads": 2},
        },
        "sweep": {
            "model": "transformer",
            "seeds": [1],
            "common": {},
            "values": {  # every study the shipped dvc.yaml draws, one point each
                "d_model": [8],
                "data_fraction": [0.5],
                "position": ["nope"],
                "attention": ["linear"],
                "norm_warmup": [{"norm": "post", "warmup_steps": 0}],
            },
        },
        "interpretability": {
            "model": "transformer",
            "prompt": "0 1 2 3",
            "tokens": 512,
            "expansion": 2,
            "steps": 30,
            "batch_size": 64,
            "features_shown": 3,
            "examples_per_feature": 2,
        },
    }
)
"""A tiny run of every stage and figure, with every key dvc.yaml reads."""
FIGURES = [
    "overfit_gap", "loss_curves", "diversity_vs_p", "attention_scaling", "hyperparams",
    "attention_quality", "length_generalization", "norm_warmup", "attention_maps", "sae_features",
]  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline")]


def run(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_project(tmp_path: Path, params: dict) -> Path:
    project = tmp_path / "project"
    project.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def planned(project: Path, *target: str) -> dict[str, int]:
    """Jobs per rule that a dry run would execute (empty when there is nothing to do)."""
    out = run(project, "snakemake", "-n", "--quiet", "rules", *target).stdout
    jobs = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit() and fields[0] not in ("job", "total", "all"):
            jobs[fields[0]] = int(fields[1])
    return jobs


def planned_rules(project: Path, *target: str) -> list[str]:
    """The rules a dry run would execute (empty when there is nothing to do)."""
    return sorted(planned(project, *target))


def commit(project: Path, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A project whose default target Snakemake has built once."""
    project = make_project(tmp_path_factory.mktemp("snakemake"), FULL)
    run(project, "snakemake")
    return project


def test_snakemake_builds_the_figure_with_lineage(built):
    figure = built / "results/figures/overfit_gap.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lineage = json.loads(figure.with_suffix(".json").read_text())
    assert lineage["params"]["figures"] == {"dpi": 50}
    assert "results/models/lstm/curve.tsv" in lineage["inputs"]
    assert lineage["code"]["version"]
    metrics = json.loads((built / "results/models/lstm/metrics.json").read_text())
    assert (
        metrics["test_loss"] > 0 and metrics["gap"] == metrics["test_loss"] - metrics["train_loss"]
    )


def test_second_run_has_nothing_to_do(built):
    assert planned_rules(built) == []


def test_tokeniser_processes_follow_the_cores_without_causing_reruns(built):
    for cores in ("1", "3"):
        assert planned_rules(built, "--cores", cores) == []
    plan = run(built, "snakemake", "-n", "--cores", "3", "--forcerun", "tokenize").stdout
    assert "--workers 3 " in plan
    plan = run(built, "snakemake", "-n", "--cores", "8", "--forcerun", "tokenize").stdout
    assert "--workers 4 " in plan  # the rule's threads


def test_a_figure_param_reruns_only_the_figure(built, tmp_path):
    params = yaml.safe_load((built / "params.yaml").read_text())
    params["figures"]["dpi"] = 60
    copy = tmp_path / "copy"
    shutil.copytree(built, copy, symlinks=True)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert planned(copy) == {"figure": len(FIGURES)}


def test_editing_any_module_a_stage_runs_reruns_it(built, tmp_path):
    """Code is declared by folder: a module of the trainer reruns training and all after it;
    a figure module reruns only the figures."""
    project = tmp_path / "copy"
    shutil.copytree(built, project, symlinks=True)
    trainer = project / "src/picollm/training/history.py"
    trainer.write_text(trainer.read_text() + "\n# edited\n")
    assert {"train", "sweep", "sample", "interpret", "figure", "metrics"} <= set(
        planned_rules(project)
    )
    assert "tokenize" not in planned_rules(project)
    run(project, "git", "init", "-q")
    run(project, "dvc", "commit", "--force")
    (project / "src/picollm/training/history.py").write_text(trainer.read_text() + "# again\n")
    status = run(project, "dvc", "status").stdout
    assert "train@lstm:" in status and "sweep@d_model-1:" in status
    assert "tokenize:" not in status and "figure@" not in status  # theirs did not change


def test_snakemake_lint_is_clean():
    result = run(ROOT, "snakemake", "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_refuses_config_overrides_with_the_projects_message(tmp_path):
    project = make_project(tmp_path, TINY)
    for value in ('training={"learning_rate":0.001}', "figures={dpi: 60}", 'sampling={"top_p": [0.5]}',
                  "seed=1"):  # fmt: skip
        result = run(project, "snakemake", "-n", "--config", value, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "--config overrides are not seen by the picollm stages" in output, output
        assert "is not of type" not in output


def test_another_params_file_writes_its_own_results(built, tmp_path):
    """`--configfile other.yaml` plans results/other/ and data/processed/other/, never the
    default run's results."""
    project = tmp_path / "copy"
    shutil.copytree(built, project, symlinks=True)
    (project / "other.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    plan = run(project, "snakemake", "-n", "-p", "--configfile", "other.yaml").stdout
    assert "results/other/models/lstm/weights.safetensors" in plan
    assert "data/processed/other/split/split.json" in plan
    assert " results/models/" not in plan and " data/processed/split/" not in plan
    assert planned_rules(project) == []  # the default run is untouched


def test_dvc_repro_experiments_and_snakemake_agree(tmp_path):
    """`dvc repro` builds what `snakemake` does; Snakemake then has nothing to do, also after
    `dvc exp run -S`; `dvc exp show` and `dvc metrics diff` read the metrics DVC's cache keeps."""
    project = make_project(tmp_path, FULL)
    run(project, "git", "init", "-q", "-b", "main")
    commit(project, "init")
    run(project, "dvc", "repro")
    for name in FIGURES:
        assert (project / f"results/figures/{name}.png").exists()
    assert planned_rules(project) == []
    assert run(project, "dvc", "status").stdout.strip().endswith("up to date.")
    commit(project, "results")
    assert "results/metrics.json" not in run(project, "git", "ls-files", "results").stdout

    run(project, "dvc", "exp", "run", "-n", "dpi60", "-S", "figures.dpi=60")
    assert planned_rules(project) == []
    run(project, "dvc", "exp", "run", "-S", "figures.dpi=70")
    run(project, "dvc", "exp", "apply", "dpi60")
    assert planned_rules(project) == []
    changed = run(project, "dvc", "exp", "show", "--only-changed", "--csv").stdout.splitlines()
    assert len(changed[0].split(",")) <= 30 and "figures.dpi" in changed[0], changed[0]
    shown = run(project, "dvc", "exp", "show", "--csv").stdout
    columns, *rows = csv.reader(io.StringIO(shown))
    metrics = [f"{model}.{key}" for model in FULL["models"] for key in ("train_loss", "test_loss")]
    assert set(metrics) <= set(columns), columns
    for row in rows:  # the workspace, main and the experiments: every metric has a value
        cells = dict(zip(columns, row, strict=True))
        assert all(cells[metric] not in ("", "!") for metric in metrics), row
    diff = run(project, "dvc", "metrics", "diff", "main", "--json")
    assert "failed to load" not in diff.stdout + diff.stderr
    plots = json.loads(run(project, "dvc", "plots", "show", "--json").stdout)
    assert not plots.get("errors"), plots["errors"]
    curve = json.dumps(plots["data"]["results/models/lstm/curve.tsv"])
    assert "training step" in curve and "test loss (nats per token)" in curve
    assert "results/figures/overfit_gap.png" in plots["data"]


def test_dvc_after_snakemake_has_nothing_to_do_once_committed(built, tmp_path):
    project = tmp_path / "copy"
    shutil.copytree(built, project, symlinks=True)
    run(project, "git", "init", "-q")
    run(project, "dvc", "commit", "--force")
    repro = run(project, "dvc", "repro").stdout
    assert "Running stage" not in repro, repro
    assert run(project, "dvc", "status").stdout.strip().endswith("up to date.")


def test_slurm_profile_plans_the_whole_pipeline(tmp_path):
    """A dry run through the SLURM executor plugin accepts the profile and plans every job."""
    project = make_project(tmp_path, TINY)
    result = run(project, "snakemake", "--profile", "workflow/profiles/slurm", "-n", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train" in result.stdout and "figure" in result.stdout


@pytest.mark.parametrize("profile", ["workflow/profiles/default", "workflow/profiles/slurm"])
def test_a_model_asking_for_processes_trains_under_torchrun(tmp_path, profile):
    params = copy.deepcopy(TINY)
    params["models"]["lstm"]["training"] = {"processes": 2}
    project = make_project(tmp_path, params)
    result = run(project, "snakemake", "--profile", profile, "-n", "-p", "--cores", "2")
    train = [line for line in result.stdout.splitlines() if " train --params" in line]
    launched = "torchrun --standalone --nproc_per_node 2 -m picollm train --params"
    assert train and all(launched in line for line in train), result.stdout


def test_killed_training_resumes_when_the_same_command_is_rerun(tmp_path):
    """SIGKILL the training process mid-run; the same snakemake command then resumes it from
    its checkpoint, and the result is bit-identical to an uninterrupted run. (One thread per
    job: float reductions split over a varying number of threads need not agree bit for bit.)"""
    import signal
    import time

    params = copy.deepcopy(TINY)
    params["training"].update(max_steps_per_epoch=1000, checkpoint_interval=5, eval_interval=100)
    command = ["snakemake", "--cores", "1", "--set-threads", "train=1", "tokenize=1", "--"]
    target = "results/models/lstm/weights.safetensors"

    whole = make_project(tmp_path / "whole", params)
    run(whole, *command, target)

    killed = make_project(tmp_path / "killed", params)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    first = subprocess.Popen(
        [*command, target],
        cwd=killed,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = killed / ".picollm" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/checkpoint.pt")):
        assert time.monotonic() < deadline and first.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    import psutil

    trainers = [
        child
        for child in psutil.Process(first.pid).children(recursive=True)
        if "train" in child.cmdline() and any("picollm" in part for part in child.cmdline())
    ]
    assert trainers, "the training process was not found"
    for child in trainers:
        child.send_signal(signal.SIGKILL)
    assert first.wait(timeout=120) != 0
    assert not (killed / target).exists(), "a failed job leaves no outputs behind"

    run(killed, *command, target)
    metrics = json.loads((killed / "results/models/lstm/run.json").read_text())
    assert metrics["resumed_from_step"] is not None and metrics["resumed_from_step"] > 0
    assert (killed / target).read_bytes() == (whole / target).read_bytes()
    assert not list(checkpoints.glob("*/checkpoint.pt")), "finished runs clean up checkpoints"


def test_training_progress_is_in_the_job_log(tmp_path):
    """`tail -f results/logs/train/<m>.log` follows a run: progress lines, then the result."""
    project = make_project(tmp_path, TINY)
    run(project, "snakemake", "--cores", "1", "results/models/lstm/weights.safetensors")
    lines = (project / "results/logs/train/lstm.log").read_text().splitlines()
    progress = [line for line in lines if " step " in line and "time left" in line]
    assert progress and " step 6/6 " in progress[-1], lines
    assert all(word in progress[0] for word in ("loss", "lr", "tokens/s"))
    assert json.loads(lines[-1])["test_loss"] > 0


def test_torchrun_trains_as_the_readme_shows_and_matches_one_process(tmp_path, monkeypatch):
    """The README's data-parallel command, through torchrun itself (two CPU processes, gloo on
    the loopback interface), computes the single-process run up to float summation order."""
    import pandas as pd
    import safetensors.torch

    project = make_project(tmp_path, TINY)
    run(project, "snakemake", "--cores", "1", "data/processed/split/split.json")
    common = ["--params", "params.yaml", "--model", "lstm", "--split",
              "data/processed/split/split.json"]  # fmt: skip

    def outputs(folder: str) -> list[str]:
        files = ("weights.safetensors", "metrics.json", "run.json", "curve.tsv", "steps.tsv")
        options = ("--weights", "--metrics", "--run-json", "--curve", "--steps")
        return [part for o, f in zip(options, files, strict=True) for part in (o, f"{folder}/{f}")]

    torchrun = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "picollm", "train"]
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    run(project, *torchrun, *common, *outputs("two"))
    run(project, "picollm", "train", *common, *outputs("one"))
    curves = [pd.read_csv(project / f"{n}/curve.tsv", sep="\t") for n in ("one", "two")]
    assert len(curves[0]) > 1
    pd.testing.assert_frame_equal(curves[0], curves[1], rtol=1e-4)
    weights = [
        safetensors.torch.load_file(project / f"{n}/weights.safetensors") for n in ("one", "two")
    ]
    for name, tensor in weights[0].items():
        assert (tensor - weights[1][name]).abs().max() < 1e-4, name


def test_the_interpretability_study_draws_attention_maps_and_sae_features(built):
    project = built
    figures = ["results/figures/attention_maps.png", "results/figures/sae_features.png"]
    for figure in figures:
        assert (project / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    features = json.loads((project / "results/interpret/transformer/features.json").read_text())
    assert features["n_features"] == 32 and len(features["feature_density"]) == 32
    assert features["lineage"]["params"]["interpretability"]["steps"] == 30
    assert (
        "| feature | density |"
        in (project / "results/interpret/transformer/features.md").read_text()
    )
    attention = json.loads((project / "results/interpret/transformer/attention.json").read_text())
    assert len(attention["maps"]) == 2 and len(attention["tokens"]) == 4


def test_an_interpretability_figure_without_a_model_says_which_param_to_set(tmp_path):
    project = make_project(tmp_path, TINY)  # interpretability.model: null
    result = run(project, "snakemake", "-n", "results/figures/sae_features.png", check=False)
    assert result.returncode != 0
    assert "needs interpretability.model in params.yaml" in result.stdout + result.stderr


def test_snakemake_report_holds_every_figure_and_the_samples(built):
    run(built, "snakemake", "--report", "results/report.html")
    report = (built / "results/report.html").read_text(errors="replace")
    for name in ("overfit_gap.png", "loss_curves.png", "diversity_vs_p.png", "lstm.tsv"):
        assert name in report
    assert "metrics.tsv" in report
    header, row, _ = (built / "results/metrics.tsv").read_text().splitlines()
    metrics = json.loads((built / "results/models/lstm/metrics.json").read_text())
    assert header.split("\t") == ["model", "train_loss", "test_loss", "gap", "tokens_per_s",
                                   "parameters"]  # fmt: skip
    assert row.split("\t")[0] == "lstm" and row.split("\t")[-1] == str(metrics["parameters"])
    summary = json.loads((built / "results/metrics.json").read_text())
    assert summary["lstm"]["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"training": {**TINY["training"], "batch_size": 4.0}}, ["training.batch_size = 4.0"]),
        ({"models": {"t": {"type": "transformer", "d_model": 8, "n_heads": 3}}}, ["n_heads=3"]),
        ({"data": {**TINY["data"], "input_files": ["gone.txt"]}}, ["data.input_files[0]"]),
    ],
)
def test_snakemake_refuses_bad_params_with_the_projects_message_only(tmp_path, change, words):
    """Bad values, models that cannot be built and missing inputs stop Snakemake before any job,
    with the project's one-line message (not Snakemake's schema dump), and never exit 0."""
    project = make_project(tmp_path, {**TINY, **change})
    result = run(project, "snakemake", "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for word in words:
        assert word in output
    assert len(output.splitlines()) < 15, output


def test_damaged_split_data_stops_training_and_fails_the_trace(tmp_path):
    """Token ids overwritten with other valid ids and touched, so Snakemake sees newer input and
    retrains: the stage must refuse them (its log keeps the error), and `picollm trace` must not
    say everything agrees."""
    import numpy as np

    project = make_project(tmp_path, TINY)
    run(project, "snakemake", "--cores", "1", "data/processed/split/split.json")
    tokens_file = project / "data/processed/split/train.tokens.npy"
    np.save(tokens_file, np.roll(np.load(tokens_file), 1))
    result = run(project, "snakemake", "--cores", "1", "results/models/lstm/run.json", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "train.tokens.npy is damaged or was replaced" in output
    log = (project / "results/logs/train/lstm.log").read_text()  # a failing job's error stays
    assert "picollm train: error: " in log and "train.tokens.npy is damaged" in log
    assert "snakemake --forcerun split" in output
    trace = run(project, "picollm", "trace", "data/processed/split/split.json", check=False)
    assert trace.returncode == 1
    assert "damaged: train.tokens.npy differs from the sha256 recorded here" in trace.stdout
