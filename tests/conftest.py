"""Test-wide settings and fixtures."""

import shutil

import pytest
import torch

from picollm.cli import main

# Each xdist worker gets one core of the two on CI; more threads would only fight over them.
torch.set_num_threads(1)


LINES = "\n".join(f"{i} {i + 1} {i + 2} {i + 3}" for i in range(60)) + "\n"


@pytest.fixture(scope="module")
def pipeline_data(tmp_path_factory):
    """A directory where `picollm tokenize` and `picollm split` have run on a small text file."""
    root = tmp_path_factory.mktemp("integrity")
    (root / "lines.txt").write_text(LINES)
    (root / "params.yaml").write_text(
        "data: {input_files: [lines.txt], block_size: 8}\n"
        "training: {batch_size: 2, max_steps_per_epoch: 3, warmup_steps: 1, eval_batches: 1}\n"
        "models:\n  lstm: {type: lstm, embed_size: 4}\n"
    )
    processed = root / "data/processed"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["tokenize", "--out", f"{processed}/corpus.parquet",
                     "--metadata", f"{processed}/corpus.json", "--workers", "1"]) == 0  # fmt: skip
        assert main(["split", "--corpus", f"{processed}/corpus.parquet", "--summary", f"{processed}/split/split.json"]) == 0  # fmt: skip
    return root


@pytest.fixture
def project(pipeline_data, tmp_path, monkeypatch):
    """A scratch copy of ``pipeline_data`` to damage, as the working directory."""
    copy = tmp_path / "project"
    shutil.copytree(pipeline_data, copy)
    monkeypatch.chdir(copy)
    return copy
