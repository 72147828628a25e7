"""``picollm trace``: walking the DAG back to raw data and checking each step's stored records.

Most tests run on a fake pipeline of ``Job``s (no Snakemake): a ``prepare`` step reads a raw file,
two ``train`` steps read its output, and a ``figure`` reads both; the files are "built" by writing
them with real lineage records. One slow test runs the real pipeline through DVC.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
from pathlib import Path

import pytest
import yaml
from test_pipeline import FULL, make_project, run

from picollm.cli import main
from picollm.config import lookup, prune
from picollm.pipeline import lineage
from picollm.pipeline.dag import CODE_INPUT, Job
from picollm.pipeline.trace import (
    DIRECTORY,
    FileDigests,
    chain,
    check_dvc_lock,
    code_hash,
    data_notes,
    lineage_records,
    param_differences,
    raw_inputs,
    render,
    trace,
)

CODE = "src/stage.py"
RAW = "raw/text.txt"
CORPUS = "data/corpus.txt"
FIGURE = "results/figure.png"
PARAMS = {
    "data": {"lines": 3},
    "training": {"lr": 0.1, "steps": 2},
    "models": {"m1": {"size": 4}, "m2": {"size": 8}},
    "figures": {"dpi": 50},
}


def make_job(rule: str, inputs: list[str], outputs: list[str], keys=(), **wildcards) -> Job:
    command = " ".join(["picollm", rule, *wildcards.values(), *outputs])
    return Job(
        rule=rule,
        shellcmd=command,
        wildcards=wildcards,
        input=[*(("data", path) for path in inputs), (CODE_INPUT, CODE)],
        output=[("", path) for path in outputs],
        params={"param_keys": list(keys)},
    )


def train_job(model: str) -> Job:
    outputs = [f"results/{model}/curve.tsv", f"results/{model}/metrics.json"]
    return make_job("train", [CORPUS], outputs, ["training", f"models.{model}"], model=model)


JOBS = [
    make_job("prepare", [RAW], [CORPUS], ["data"]),
    train_job("m1"),
    train_job("m2"),
    make_job(
        "figure",
        ["results/m1/curve.tsv", "results/m2/curve.tsv"],
        [FIGURE, "results/figure.json"],
        ["figures"],
    ),
    make_job("unrelated", [RAW], ["results/other.txt"]),
]
CHAIN = ["prepare", "train@m1", "train@m2", "figure"]


def names(jobs: list[Job]) -> list[str]:
    return [job.stage_name for job in jobs]


def step(result, stage: str):
    return next(s for s in result.steps if s.stage == stage)


@pytest.fixture
def built(tmp_path, monkeypatch) -> Path:
    """A directory where every job of ``JOBS`` has run: each output written, JSON outputs with
    a lineage record like the real stages write (a whole sidecar, or a ``lineage`` entry)."""
    monkeypatch.chdir(tmp_path)  # lineage.record hashes its inputs relative to the cwd
    for path, text in [(CODE, "print('stage')\n"), (RAW, "one\ntwo\nthree\n")]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    for job in JOBS:
        record = lineage.record(job.rule, job.data_inputs, prune(PARAMS, job.param_keys))
        for path in job.output_paths:
            output = Path(path)
            output.parent.mkdir(parents=True, exist_ok=True)
            if output.name == "metrics.json":
                output.write_text(json.dumps({"loss": 1.5, "lineage": record}))
            elif output.suffix == ".json":
                output.write_text(json.dumps(record))
            else:
                output.write_text(f"{path} made by {job.stage_name} from {record['inputs']}\n")
    return tmp_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def dvc_lock(root: Path) -> dict:
    """A ``dvc.lock`` as ``dvc repro`` writes it for ``JOBS`` built in ``root``."""

    def entries(paths):
        return [{"path": p, "hash": "md5", "md5": md5(root / p), "size": 1} for p in sorted(paths)]

    stages = {}
    for job in JOBS:
        stage = {"cmd": job.shellcmd, "deps": entries(job.input_paths)}
        if job.param_keys:
            stage["params"] = {"params.yaml": {k: lookup(PARAMS, k) for k in job.param_keys}}
        stage["outs"] = entries(job.output_paths)
        stages[job.stage_name] = stage
    return {"schema": "2.0", "stages": stages}


# -- walking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_chain_lists_each_step_after_the_steps_it_reads_from(seed):
    shuffled = random.Random(seed).sample(JOBS, len(JOBS))
    assert names(chain(shuffled, FIGURE)) == CHAIN
    assert names(chain(shuffled, "results/m2/metrics.json")) == ["prepare", "train@m2"]


def test_raw_data_and_code_end_the_walk():
    makes_code = make_job("codegen", [], [CODE])  # code is never walked as data
    steps = chain([makes_code, *JOBS], "./data/../" + CORPUS)
    assert names(steps) == ["prepare"]
    assert raw_inputs(steps) == [RAW]
    assert raw_inputs(chain(JOBS, FIGURE)) == [RAW]


def test_an_output_no_job_makes_is_an_error_naming_it_and_the_known_outputs():
    with pytest.raises(
        ValueError, match=f"no job of the pipeline makes {RAW}; it makes .*{CORPUS}"
    ):
        chain(JOBS, RAW)


# -- lineage records ---------------------------------------------------------------------------


def test_a_freshly_built_pipeline_agrees_with_its_records(built):
    result = trace(FIGURE, JOBS, PARAMS, built)
    assert result.ok, result.problems
    assert names(JOBS[:4]) == [s.stage for s in result.steps]
    assert result.raw_inputs == {RAW: hashlib.sha256((built / RAW).read_bytes()).hexdigest()}
    assert [len(s.lineage) for s in result.steps] == [0, 1, 1, 1]
    train = step(result, "train@m1")
    assert train.params == {"training": {"lr": 0.1, "steps": 2}, "models": {"m1": {"size": 4}}}
    assert train.command == JOBS[1].shellcmd
    assert list(train.inputs) == [CORPUS]  # code is summarised, not listed as an input
    assert list(train.code["files"]) == [CODE]
    assert train.lineage[0].source == "results/m1/metrics.json"
    text = render(result)
    assert text.endswith("everything agrees")
    assert "results/m1/metrics.json: agrees" in text
    assert "dvc.lock: none here" in text


def test_a_changed_input_makes_the_records_built_from_it_stale(built):
    (built / CORPUS).write_text("edited\n")
    result = trace(FIGURE, JOBS, PARAMS, built)
    assert result.problems == [
        f"train@{m}: results/{m}/metrics.json: stale: input {CORPUS} changed since it was built"
        for m in ("m1", "m2")
    ]
    assert "stale: input data/corpus.txt changed since it was built" in render(result)


def test_a_changed_param_is_stale_with_its_key_and_both_values(built):
    params = copy.deepcopy(PARAMS)
    params["training"]["lr"] = 0.2
    params["models"]["m2"]["size"] = 16
    result = trace(FIGURE, JOBS, params, built)
    prefix = "stale: param"
    assert result.problems == [
        f"train@m1: results/m1/metrics.json: {prefix} training.lr changed since it was built "
        "(0.1 -> 0.2)",
        f"train@m2: results/m2/metrics.json: {prefix} training.lr changed since it was built "
        "(0.1 -> 0.2)",
        f"train@m2: results/m2/metrics.json: {prefix} models.m2.size changed since it was built "
        "(8 -> 16)",
    ]


def test_a_missing_output_is_marked_not_built(built):
    (built / "results/m2/curve.tsv").unlink()
    result = trace(FIGURE, JOBS, PARAMS, built)
    assert step(result, "train@m2").outputs["results/m2/curve.tsv"] is None
    assert result.problems == [
        "train@m2: missing: results/m2/curve.tsv not built",
        "figure: results/figure.json: stale: input results/m2/curve.tsv is gone since it was built",
    ]
    assert re.search(r"outputs +results/m2/curve.tsv +missing: not built", render(result))


def test_lineage_records_are_found_in_sidecars_and_lineage_entries_only(tmp_path):
    record = {"stage": "x", "inputs": {}, "params": {}}
    files = {
        "sidecar.json": json.dumps(record),
        "metrics.json": json.dumps({"loss": 1, "lineage": record}),
        "summary.json": json.dumps({"loss": 1}),
        "list.json": "[1, 2]",
        "broken.json": "{not json",
        "record.txt": json.dumps(record),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    found = lineage_records([*files, "absent.json"], tmp_path)
    assert found == [("sidecar.json", record), ("metrics.json", record), ("broken.json", None)]


def test_the_data_notes_say_where_tinystories_came_from_and_the_vocabulary(tmp_path):
    corpus = {
        "tinystories_source": "excerpt",
        "sources": {"tinystories": {"splits": {"train": 20, "validation": 2}}},
    }
    split = {
        "vocab": {"name": "compact-4096"},
        "splits": {"train": {"unknown_token_share": 0.009}, "test": {"unknown_token_share": 0.018}},
    }
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    (tmp_path / "split.json").write_text(json.dumps(split))
    (tmp_path / "other.json").write_text(json.dumps({"vocab": "not a record"}))
    notes = data_notes(["corpus.json", "split.json", "other.json", "absent.json"], tmp_path)
    assert notes == [
        "TinyStories source: excerpt: real TinyStories from the excerpt shipped with picollm "
        "(the Hub was not used) (20 train, 2 validation stories)",
        "vocabulary compact-4096; unknown tokens: train 0.9%, test 1.8%",
    ]


def test_param_differences_name_each_differing_leaf():
    then = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    now = {"a": {"b": 1, "c": [1, 3], "e": True}, "d": "x"}
    assert param_differences(then, then) == []
    assert param_differences(then, now) == [("a.c", "[1, 2]", "[1, 3]"), ("a.e", "absent", "True")]


def test_the_code_hash_is_the_sha256_of_sha256sum_output(built):
    files = FileDigests(built).many([CODE])
    digest = hashlib.sha256((built / CODE).read_bytes()).hexdigest()
    expected = hashlib.sha256(f"{digest}  {CODE}\n".encode()).hexdigest()
    assert code_hash(files) == expected
    assert code_hash({CODE: digest, "src/gone.py": None}) is None


# -- dvc.lock ----------------------------------------------------------------------------------


def test_a_fresh_dvc_lock_agrees(built):
    result = trace(FIGURE, JOBS, PARAMS, built, lock=dvc_lock(built))
    assert result.ok, result.problems
    assert all(s.dvc is not None and not s.dvc.problems for s in result.steps)
    assert render(result).count("agrees with dvc.lock") == len(CHAIN)


def test_every_disagreement_with_dvc_lock_is_reported(built):
    lock = dvc_lock(built)
    stages = lock["stages"]
    stages["prepare"]["outs"][0]["md5"] = "0" * 32
    stages["train@m1"]["params"]["params.yaml"]["training"] = {"lr": 0.5, "steps": 2}
    stages["train@m1"]["deps"] = [d for d in stages["train@m1"]["deps"] if d["path"] != CORPUS]
    del stages["train@m2"]
    stages["figure"]["cmd"] = "picollm figure --old"
    stages["figure"]["outs"].append({"path": "results/old.png", "md5": "1" * 32})
    now = md5(built / CORPUS)[:12]
    assert trace(FIGURE, JOBS, PARAMS, built, lock=lock).problems == [
        f"prepare: dvc.lock: {CORPUS} changed (md5 000000000000 in the lock, {now} now)",
        f"train@m1: dvc.lock: does not list {CORPUS}",
        "train@m1: dvc.lock: param training.lr is 0.5 in the lock, 0.1 in params.yaml",
        "train@m2: dvc.lock: no stage train@m2",
        "figure: dvc.lock: the command differs; it ran: picollm figure --old",
        "figure: dvc.lock: results/old.png is missing",
        "figure: dvc.lock: lists results/old.png, which the job no longer uses",
    ]


def test_a_changed_params_file_disagrees_with_dvc_lock(built):
    lock = dvc_lock(built)
    (built / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "figures": {"dpi": 60}}))
    assert trace(FIGURE, JOBS, PARAMS, built, lock=lock).problems == [
        "figure: dvc.lock: param figures.dpi is 50 in the lock, 60 in params.yaml",
    ]


def test_directories_in_dvc_lock_are_noted_not_compared(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "packed.txt").write_text("packed\n")
    job = Job("pack", "picollm pack", input=[("", "raw")], output=[("", "packed.txt")])
    lock = {
        "stages": {
            "pack": {
                "cmd": "picollm pack",
                "deps": [{"path": "raw", "md5": "ab.dir"}],
                "outs": [{"path": "packed.txt", "md5": md5(tmp_path / "packed.txt")}],
            }
        }
    }
    check = check_dvc_lock(job, lock, FileDigests(tmp_path))
    assert check.problems == []
    assert check.notes == ["raw is a directory: not compared (only files are)"]
    assert FileDigests(tmp_path)("raw") == DIRECTORY


def test_the_json_form_holds_the_same_trace(built):
    result = trace(FIGURE, JOBS, PARAMS, built, lock=dvc_lock(built))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is True and data["problems"] == []
    assert [s["stage"] for s in data["steps"]] == CHAIN
    train = data["steps"][1]
    assert train["inputs"] == step(result, "train@m1").inputs
    assert train["code"]["files"] == {CODE: hashlib.sha256((built / CODE).read_bytes()).hexdigest()}
    assert train["dvc"] == {"source": "dvc.lock", "problems": [], "notes": []}


# -- the command ------------------------------------------------------------------------------


def test_the_command_exits_0_1_or_2_for_agreeing_missing_or_unknown_outputs(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text('rule make:\n    output: "made.txt"\n    shell: "touch {output}"\n')
    params = tmp_path / "params.yaml"
    params.write_text("models: {lstm: {type: lstm}}\n")

    def trace_command(output: str, *options: str) -> int:
        argv = ["trace", output, "--snakefile", str(snakefile), "--params", str(params)]
        return main([*argv, *options])

    assert trace_command("nothing.txt") == 2
    assert "no job of the pipeline makes nothing.txt; it makes made.txt" in capsys.readouterr().err
    assert trace_command(str(tmp_path / "made.txt"), "--json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["problems"] == ["make: missing: made.txt not built"]
    assert data["steps"][0]["command"] == "touch made.txt"
    (tmp_path / "made.txt").write_text("")
    assert trace_command(str(tmp_path / "made.txt")) == 0
    assert capsys.readouterr().out.endswith("everything agrees\n")


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.xdist_group("pipeline")
def test_trace_of_a_dvc_built_figure_agrees_until_a_raw_input_changes(tmp_path):
    notes = "data/raw/notes.txt"
    params = copy.deepcopy(FULL)
    params["data"]["input_files"] = [*params["data"]["input_files"], notes]
    project = make_project(tmp_path, params)
    (project / notes).parent.mkdir(parents=True, exist_ok=True)
    (project / notes).write_text("the cat sat on the mat\nthe dog ran in the park\n" * 20)
    run(project, "git", "init", "-q")
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    run(project, "dvc", "repro", "figure@overfit_gap")  # only the stages the figure needs

    result = run(project, "picollm", "trace", "results/figures/overfit_gap.png", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in (
        "tokenize",
        "split",
        "train (model=lstm)",
        "sweep (key=d_model, seed=1)",
        "figure (name=overfit_gap)",
    ):
        assert f"] {rule}" in result.stdout
    assert result.stdout.count("agrees with dvc.lock") == result.stdout.count("  command  ")
    assert f"  {notes}" in result.stdout  # listed as raw data

    with open(project / notes, "a") as handle:
        handle.write("a new line\n")
    result = run(project, "picollm", "trace", "results/figures/overfit_gap.png", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    # dvc.lock holds data/raw as a folder (not compared); the corpus's lineage names the file
    assert f"tokenize: data/processed/corpus.json: stale: input {notes} changed" in result.stdout


def test_a_data_file_that_differs_from_its_records_hash_is_a_problem(tmp_path):
    """A file overwritten (and touched) after its stage recorded its sha256: the trace must not
    say everything agrees, although no lineage record is stale."""
    record, data = "data/split/split.json", "data/split/train.tokens.npy"
    jobs = [make_job("split", [RAW], [data, record])]
    for path, text in [(CODE, "print('stage')\n"), (RAW, "raw\n"), (data, "tokens\n")]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    digest = hashlib.sha256(b"tokens\n").hexdigest()
    (tmp_path / record).write_text(json.dumps({"splits": {"train": {"sha256": {
        "train.tokens.npy": digest}}}}))  # fmt: skip
    assert trace(data, jobs, PARAMS, tmp_path).ok
    (tmp_path / data).write_text("other tokens\n")
    result = trace(data, jobs, PARAMS, tmp_path)
    assert result.problems == [
        f"split: {record}: damaged: train.tokens.npy differs from the sha256 recorded here; "
        "rebuild it: snakemake --forcerun split (with DVC: dvc repro --force split)"
    ]
    assert "everything agrees" not in render(result)
