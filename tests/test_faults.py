"""Faults a run meets (damaged weights, a missing GPU, bad paths, leftovers) end in one line
naming the file or key and the fix, or are recovered from; never a traceback."""

import pytest
import torch

from picollm.cli import main
from picollm.errors import UserError
from picollm.integrity import IntegrityError
from picollm.models.base import TokenIdError, check_tokens
from picollm.stages import train as train_stage
from picollm.training.weights import load_trained_model

SPLIT = "data/processed/split/split.json"


def train(model="lstm", weights="run/weights.safetensors", run="run/run.json") -> int:
    outputs = ["--weights", weights, "--metrics", "run/metrics.json", "--run", run]
    tables = ["--curve", "run/curve.tsv", "--steps", "run/steps.tsv", "--no-progress"]
    return main(["train", "--model", model, "--split", SPLIT, *outputs, *tables])


@pytest.fixture
def trained(project):
    assert train() == 0
    return project


def test_damaged_weights_are_noticed_not_trusted(trained, capsys):
    weights, run = trained / "run/weights.safetensors", trained / "run/run.json"
    load_trained_model(weights, run)
    data = bytearray(weights.read_bytes())
    data[-3] ^= 1  # one bit of the last float: safetensors itself reads it without complaint
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="weights.safetensors is damaged or was replaced"):
        load_trained_model(weights, run)
    argv = ["sample", str(trained / "run"), "--prompt", "Once", "--max-new-tokens", "2"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert f"delete {trained / 'run'} and rerun snakemake" in error


def test_a_truncated_weights_file_is_one_line(trained, capsys):
    weights = trained / "run/weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    run = trained / "run/run.json"
    run.write_text(run.read_text().replace('"sha256"', '"unrecorded"'))  # an older run.json
    argv = ["sample", str(trained / "run"), "--prompt", "Once", "--max-new-tokens", "2"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "weights.safetensors: cannot load" in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_on_a_cpu_machine_names_the_key_and_the_fix(project, capsys):
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("training: {", "training: {device: cuda, "))
    assert train() == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "training.device = 'cuda', but CUDA is not available" in error
    assert "set device: auto" in error


def test_an_os_error_names_the_file_and_a_fix(project, capsys):
    (project / "blocker").write_text("a file where a folder should be\n")
    assert train(weights="blocker/weights.safetensors") == 2  # fails after training, writing
    output = capsys.readouterr().err.strip()
    assert "Traceback" not in output
    error = output.splitlines()[-1]
    assert error.startswith("picollm train: error: blocker")
    assert "check the path and rerun" in error


def test_out_of_range_token_ids_are_a_user_error_naming_the_range():
    with pytest.raises(TokenIdError, match=r"in \[0, 10\) for this model, got ids from 0 to 12"):
        check_tokens(torch.tensor([[0, 12]]), 10)
    assert issubclass(TokenIdError, UserError)


def test_a_finished_run_removes_its_checkpoint_folders_and_only_its_own(project):
    root = project / train_stage.CHECKPOINT_ROOT
    abandoned = root / "lstm-0123456789ab"  # an earlier run of lstm with other params
    other_run = root / "lstm-d_model-0-0123456789ab"  # a sweep run, not lstm's
    for folder in (abandoned, other_run):
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"old")
    assert train() == 0
    assert sorted(p.name for p in root.iterdir()) == [other_run.name]


def test_the_resume_key_holds_the_stage_code():
    """An edit to any source file the stage runs starts the run afresh (decided: resuming across
    two versions of the code would mix them in one run)."""
    train_code, sweep_code = train_stage._code_sha256("train"), train_stage._code_sha256("sweep")
    assert len(train_code) == 64 and train_code != sweep_code
    assert train_stage._code_sha256("train") == train_code
