"""What the Snakefile and dvc.yaml declare: each stage's code, and one graph for both drivers."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from picollm.pipeline.workflow import CORE, REPOSITORY_ROOT, STAGE_CODE, code_files, code_paths
from picollm.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
LOADED = """
import json, sys
from picollm.cli import build_parser
build_parser(sys.argv[1])  # as `picollm <stage>` does: the CLI, then the stage's module
print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()
                        if n.startswith("picollm") and getattr(m, "__file__", None))))
"""


def test_every_stage_declares_its_code():
    assert sorted(STAGE_CODE) == sorted(STAGES)
    assert REPOSITORY_ROOT == ROOT
    for stage in STAGES:
        assert all((ROOT / path).exists() for path in code_paths(stage)), stage


def test_every_module_a_stage_loads_lies_under_its_declared_code():
    """Editing any module a stage runs must rerun it: each stage's command, imported in a fresh
    process, loads only modules under ``CORE`` and its ``STAGE_CODE`` paths."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs = {
        stage: subprocess.Popen(
            [sys.executable, "-c", LOADED, stage], stdout=subprocess.PIPE, text=True, env=env
        )
        for stage in STAGES
    }
    for stage, process in runs.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, stage
        loaded = {Path(path).resolve().relative_to(ROOT).as_posix() for path in json.loads(out)}
        declared = set(code_files(stage, ROOT))
        assert loaded - declared == set(), stage
        assert f"src/picollm/stages/{STAGES[stage].module}.py" in loaded


def test_code_files_are_every_file_under_the_declared_paths():
    files = code_files("figure", ROOT)
    assert "src/picollm/figures/overfit_gap.py" in files and "src/picollm/cli.py" in files
    assert not [
        path for path in files if path.startswith(("src/picollm/models", "src/picollm/data"))
    ]
    assert not [path for path in files if "__pycache__" in path]
    installed = code_files("figure")  # from the imported package, wherever it lies
    assert len(installed) == len(files) and all(Path(path).is_absolute() for path in installed)


def dvc_stages() -> dict:
    """dvc.yaml's stages, as written (templates unresolved)."""
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_lists_the_declared_code_of_each_stage():
    for name, stage in dvc_stages().items():
        body = stage.get("do", stage)
        command = re.search(r"picollm (\S+)", body["cmd"]).group(1)
        code = [path for path in body["deps"] if path.startswith("src/")]
        assert code == code_paths(command), name
    assert len((ROOT / "dvc.yaml").read_text().splitlines()) <= 300


def test_core_is_listed_first_and_once():
    assert len(set(CORE)) == len(CORE)
    for stage in STAGES:
        assert not set(CORE) & set(STAGE_CODE[stage]), stage


def edges(jobs) -> set[tuple[str, str]]:
    """(maker, reader) pairs of Snakemake jobs: a reader's data input is, or lies in, an output."""
    makers = {path: job.stage_name for job in jobs for path in job.output_paths}
    found = set()
    for job in jobs:
        for path in job.data_inputs:
            parts = Path(path).parts
            for n in range(len(parts), 0, -1):
                maker = makers.get(os.path.join(*parts[:n]))
                if maker:
                    found.add((maker, job.stage_name))
                    break
    return found


@pytest.mark.xdist_group("pipeline")
def test_snakemake_and_dvc_have_one_graph():
    """Same stages, same edges, on the shipped params.yaml (Snakemake joins wildcard values to
    the rule's name with @ and -, as DVC names foreach and matrix stages)."""
    from picollm.pipeline.dag import snakemake_jobs

    jobs = snakemake_jobs(ROOT / "Snakefile")
    dot = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "dag", "--dot"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    nodes = set(re.findall(r'^"([^"]+)";$', dot, re.M))
    arrows = set(re.findall(r'^"([^"]+)" -> "([^"]+)";$', dot, re.M))
    assert {job.stage_name for job in jobs} == nodes
    assert edges(jobs) == arrows


def test_the_train_rule_launches_torchrun_for_a_model_asking_for_processes():
    from picollm.config import validate_params
    from picollm.pipeline.workflow import train_launcher

    models = {"lstm": {"type": "lstm"}, "big": {"type": "lstm", "training": {"processes": 4}}}
    params = validate_params({"models": models})
    assert train_launcher(params, "lstm") == "picollm"
    assert train_launcher(params, "big") == "torchrun --standalone --nproc_per_node 4 -m picollm"


def test_every_input_path_in_params_must_exist(tmp_path):
    import copy

    import pytest

    from picollm.config import ConfigError, validate_params
    from picollm.pipeline.workflow import THREE_SEQS_TEXT, check_inputs_exist

    (tmp_path / "here.txt").write_text("a story\n")
    params = validate_params({"models": {"lstm": {"type": "lstm"}}})
    params["data"]["input_files"] = ["here.txt", THREE_SEQS_TEXT]  # the pipeline makes 3seqs
    check_inputs_exist(params, tmp_path)
    missing = copy.deepcopy(params)
    missing["data"]["input_files"].append("gone.txt")
    missing["data"]["tinystories_weight"] = 1.0
    missing["data"]["tinystories"]["path"] = "stories/"
    with pytest.raises(ConfigError) as caught:
        check_inputs_exist(missing, tmp_path)
    message = str(caught.value)
    assert "data.input_files[2] = 'gone.txt': no such file" in message
    assert "data.tinystories.path = 'stories/': no such file" in message
    missing["data"]["tinystories"]["source"] = "hub"  # a path the hub mode never reads
    missing["data"]["input_files"].pop()
    check_inputs_exist(missing, tmp_path)


def test_picollm_validate_names_a_missing_input(tmp_path, monkeypatch, capsys):
    import yaml

    from picollm.cli import main

    monkeypatch.chdir(tmp_path)
    params = {"data": {"input_files": ["nowhere.txt"]}, "models": {"lstm": {"type": "lstm"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["validate"]) == 2
    assert "data.input_files[0] = 'nowhere.txt': no such file" in capsys.readouterr().err
    (tmp_path / "nowhere.txt").write_text("now here\n")
    assert main(["validate"]) == 0


def test_a_params_record_is_rewritten_only_when_it_changes_and_dated_like_the_params(tmp_path):
    """Snakemake's params trigger: a job's record is newer than its outputs only if its params
    changed after they were built, by either driver."""
    from picollm.pipeline.workflow import write_params_record

    params, record = tmp_path / "params.yaml", tmp_path / "records/train@lstm.json"
    params.write_text("models: {}\n")
    os.utime(params, (1_000_000, 1_000_000))
    assert write_params_record(record, {"training": {"lr": 0.1}}, params) == str(record)
    assert json.loads(record.read_text()) == {"training": {"lr": 0.1}}
    assert record.stat().st_mtime == 1_000_000
    os.utime(record, (2_000_000, 2_000_000))  # unchanged params: the file is left alone
    write_params_record(record, {"training": {"lr": 0.1}}, params)
    assert record.stat().st_mtime == 2_000_000
    write_params_record(record, {"training": {"lr": 0.2}}, params)
    assert record.stat().st_mtime == 1_000_000 and "0.2" in record.read_text()
    assert [path.name for path in record.parent.iterdir()] == [record.name]


def test_each_params_file_has_its_own_results():
    from picollm.pipeline.workflow import results_root

    assert results_root("params.yaml") == "results"
    assert results_root("workflow/configs/course-3seqs.yaml") == "results/course-3seqs"
