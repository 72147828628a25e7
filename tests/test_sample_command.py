"""``picollm sample RUN_DIR``: a trained model's folder in, exactly the samples asked for out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from picollm.cli import main
from picollm.generation import generate
from picollm.models import build
from picollm.tokenizer import EOT_ID, VOCAB_SIZE, get_encoding
from picollm.training import save_model_weights

ARCH = {"type": "lstm", "vocab_size": VOCAB_SIZE, "embed_size": 8}


def make_run_folder(path: Path, arch: dict) -> Path:
    """What training leaves in a model's folder: its weights and its run record."""
    torch.manual_seed(0)
    save_model_weights(build(arch), path / "weights.safetensors")
    (path / "run.json").write_text(json.dumps({"model": "m", "architecture": arch}))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A sweep run's folder: the command finds everything in it, wherever it is."""
    return make_run_folder(tmp_path_factory.mktemp("results") / "sweeps/m/d_model/0", ARCH)


def sample(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["sample", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_prints_exactly_the_samples_asked_for(capsys, run_dir):
    status, out, _ = sample(
        capsys, run_dir, "--prompt", "Once upon", "--prompt", "The cat",
        "--num-samples", 3, "--max-new-tokens", 5, "--jsonl",
    )  # fmt: skip
    assert status == 0
    got = records(out)
    assert [(r["prompt"], r["sample"]) for r in got] == [
        (prompt, i) for prompt in ("Once upon", "The cat") for i in range(3)
    ]
    assert all(1 <= len(r["tokens"]) <= 5 for r in got)
    assert len({tuple(r["tokens"]) for r in got}) > 1  # sampled, not one line repeated


def test_text_output_separates_the_samples(capsys, run_dir):
    _, out, _ = sample(capsys, run_dir, "--prompt", "Once", "--num-samples", 4,
                       "--max-new-tokens", 3)  # fmt: skip
    texts = out.rstrip("\n").split("\n---\n")
    assert len(texts) == 4 and all(text.startswith("Once") for text in texts)


def test_samples_are_generate_with_the_given_settings(capsys, run_dir):
    """The oracle: the library's ``generate`` on the same model, prompt and settings."""
    _, out, _ = sample(
        capsys, run_dir, "--prompt", "Once upon", "--num-samples", 2, "--max-new-tokens", 6,
        "--temperature", 0.7, "--top-p", 0.8, "--top-k", 50, "--seed", 5, "--jsonl",
    )  # fmt: skip
    from picollm.training import load_trained_model

    model = load_trained_model(run_dir / "weights.safetensors", run_dir / "run.json")
    prompt = get_encoding().encode_ordinary("Once upon")
    expected = generate(model, [prompt, prompt], 6, temperature=0.7, top_p=0.8, top_k=50,
                        seed=5, stop_token=EOT_ID)  # fmt: skip
    assert [r["tokens"] for r in records(out)] == expected.tokens
    assert records(out)[0]["text"] == get_encoding().decode(expected.tokens[0])


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(capsys, run_dir):
    def draw(seed: int) -> list[list[int]]:
        argv = (run_dir, "--num-samples", 3, "--max-new-tokens", 8, "--seed", seed, "--jsonl")
        return [r["tokens"] for r in records(sample(capsys, *argv)[1])]

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_greedy_samples_agree(capsys, run_dir):
    _, out, _ = sample(capsys, run_dir, "--prompt", "Once", "--num-samples", 2, "--greedy",
                       "--max-new-tokens", 4, "--jsonl")  # fmt: skip
    first, second = records(out)
    assert first["tokens"] == second["tokens"]


def test_without_a_prompt_samples_start_a_document(capsys, run_dir):
    _, out, _ = sample(capsys, run_dir, "--max-new-tokens", 4, "--jsonl")
    (only,) = records(out)
    assert only["prompt"] == "" and len(only["tokens"]) == 4


def test_interactive_reads_prompts_until_the_end_of_input(capsys, run_dir, monkeypatch):
    argv = ("--num-samples", 2, "--max-new-tokens", 4, "--jsonl")
    _, batch, _ = sample(capsys, run_dir, "--prompt", "Once", "--prompt", "The cat", *argv)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Once\nThe cat\n"))
    _, interactive, _ = sample(capsys, run_dir, "--interactive", *argv)
    assert interactive == batch


def test_a_folder_without_a_trained_model_is_refused_in_one_line(capsys, tmp_path, run_dir):
    (tmp_path / "run.json").write_text("{}")
    for folder, says in [
        (tmp_path, "missing weights.safetensors"),
        (tmp_path / "nowhere", "no such folder"),
        (run_dir / "weights.safetensors", f"give the folder that holds it: {run_dir}"),
    ]:
        status, out, err = sample(capsys, folder, "--prompt", "Once")
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and str(folder) in err and says in err


def test_an_unreadable_model_is_one_line_naming_the_folder(capsys, tmp_path):
    folder = make_run_folder(tmp_path, ARCH)
    (folder / "weights.safetensors").write_bytes(b"not weights")
    status, _, err = sample(capsys, folder)
    assert status == 2 and err.count("\n") == 1 and f"{folder}: cannot load" in err


@pytest.mark.parametrize(
    "option, value",
    [("--num-samples", "0"), ("--top-p", "0"), ("--top-p", "1.5"), ("--top-k", "0"),
     ("--temperature", "-1"), ("--max-new-tokens", "many")],
)  # fmt: skip
def test_a_bad_option_value_is_refused_before_loading(capsys, tmp_path, option, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path / "nowhere"), option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err.splitlines()[-1]


def test_a_run_folder_with_a_vocabulary_reads_text_through_it(capsys, tmp_path, monkeypatch):
    """``vocab.json`` beside the weights: text <-> ids goes through ``picollm.vocab``."""

    class Letters:  # a stand-in Vocabulary: ids 0..25 are a..z, 26 is end-of-text
        size, eot_id = 27, 26

        @classmethod
        def load(cls, path):
            assert Path(path).name == "vocab.json"
            return cls()

        def encode_text(self, text):
            return [ord(c) - ord("a") for c in text]

        def decode_text(self, ids):
            return "".join(chr(ord("a") + i) if i < 26 else "?" for i in ids)

    monkeypatch.setitem(sys.modules, "picollm.vocab", types.SimpleNamespace(Vocabulary=Letters))
    folder = make_run_folder(tmp_path, {**ARCH, "vocab_size": Letters.size})
    (folder / "vocab.json").write_text("{}")
    _, out, _ = sample(capsys, folder, "--prompt", "abc", "--max-new-tokens", 5, "--jsonl")
    (only,) = records(out)
    assert only["text"] == Letters().decode_text([t for t in only["tokens"] if t != 26])
    assert all(0 <= t < 27 for t in only["tokens"])


def test_the_sampling_path_imports_neither_pandas_nor_snakemake(run_dir):
    code = (
        "import sys; from picollm.cli import main; "
        f"main(['sample', {str(run_dir)!r}, '--max-new-tokens', '2']); "
        "print(sorted(m for m in ('pandas', 'snakemake', 'datasets', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
