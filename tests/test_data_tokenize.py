"""Batched GPT-2 tokenisation against per-document ``encode_ordinary``, in one or many processes."""

import json
import multiprocessing
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from picollm.data import tokenize
from picollm.data.tokenize import TokenizerPool, _cut, tokenize_documents
from picollm.tokenizer import EOT_ID, get_encoding

PIECES = ["Hello", " world", "  ", "\n", "é", "🙂", "<|endoftext|>", "123", " 4", "\t"]


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 12))) for _ in range(n)]


def per_document(texts: list[str]) -> list[list[int]]:
    """The oracle: each text encoded on its own, then EOT."""
    encoding = get_encoding()
    return [[*encoding.encode_ordinary(text), EOT_ID] for text in texts]


@pytest.mark.parametrize(
    "workers, chunk_chars",
    [(1, 1 << 18), (1, 7), (2, 7), (3, 50), (4, 1), (2, 1 << 18)],
)
def test_tokens_match_encode_ordinary_per_document(workers, chunk_chars):
    texts = random_texts(300)
    tokenized = tokenize_documents(texts, workers=workers, chunk_chars=chunk_chars)
    assert [tokenized.document(i).tolist() for i in range(len(texts))] == per_document(texts)
    assert tokenized.tokens.dtype == np.uint16 and tokenized.offsets.dtype == np.int64
    assert tokenized.offsets[0] == 0 and tokenized.offsets[-1] == len(tokenized.tokens)
    assert multiprocessing.active_children() == []


def test_no_documents_and_empty_documents():
    assert len(tokenize_documents([], workers=2).tokens) == 0
    tokenized = tokenize_documents(["", "", "a"], workers=3, chunk_chars=1)
    assert tokenized.tokens.tolist() == [
        EOT_ID,
        EOT_ID,
        *get_encoding().encode_ordinary("a"),
        EOT_ID,
    ]


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_bad_worker_counts_are_rejected(workers):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        tokenize_documents(["a"], workers=workers)


@pytest.mark.parametrize("seed", range(20))
def test_cut_runs_tile_the_texts_and_shares_never_outnumber_workers(seed):
    rng = random.Random(seed)
    texts = ["x" * rng.randrange(0, 30) for _ in range(rng.randrange(0, 60))]
    size = rng.randrange(1, 100)
    runs = _cut(texts, size)
    assert [text for run in runs for text in run] == texts
    assert all(len(run) > 0 for run in runs)
    assert all(sum(map(len, run)) >= size for run in runs[:-1])
    workers = rng.randrange(1, 8)
    share_chars = max(1, -(-sum(map(len, texts)) // workers))
    assert len(_cut(texts, share_chars)) <= workers


def test_a_pool_forks_its_helpers_at_once_and_serves_many_calls():
    texts = random_texts(200, seed=3)
    with TokenizerPool(3) as pool:
        assert len(multiprocessing.active_children()) == 2
        first = pool.tokenize(texts, chunk_chars=10)
        second = pool.tokenize(texts[::-1], chunk_chars=25)
    assert multiprocessing.active_children() == []
    assert [first.document(i).tolist() for i in range(len(texts))] == per_document(texts)
    assert [second.document(i).tolist() for i in range(len(texts))] == per_document(texts[::-1])
    with pytest.raises(ValueError, match="closed"):
        pool.tokenize(texts, chunk_chars=10)


def fail_in_helpers(monkeypatch, failure):
    """Make ``_encode_chunk`` call ``failure()`` in any process but this one."""
    parent = os.getpid()
    encode_chunk = tokenize._encode_chunk

    def encode_chunk_here_only(texts):
        if os.getpid() != parent:
            failure()
        return encode_chunk(texts)

    monkeypatch.setattr(tokenize, "_encode_chunk", encode_chunk_here_only)


def test_an_error_in_a_helper_is_raised_here_and_leaves_no_process(monkeypatch):
    def out_of_memory():
        raise MemoryError("helper out of memory")

    fail_in_helpers(monkeypatch, out_of_memory)
    with pytest.raises(MemoryError, match="helper out of memory"):
        tokenize_documents(random_texts(200), workers=3, chunk_chars=10)
    assert multiprocessing.active_children() == []


def test_a_helper_that_dies_is_a_clear_error(monkeypatch):
    fail_in_helpers(monkeypatch, lambda: os._exit(9))
    with pytest.raises(RuntimeError, match=r"tokeniser process died .*--workers 1"):
        tokenize_documents(random_texts(200), workers=2, chunk_chars=10)
    assert multiprocessing.active_children() == []


def test_a_failure_here_stops_the_helpers(monkeypatch):
    parent = os.getpid()
    encode_chunk = tokenize._encode_chunk

    def fails_here(texts):
        if os.getpid() == parent:
            raise KeyboardInterrupt
        return encode_chunk(texts)

    monkeypatch.setattr(tokenize, "_encode_chunk", fails_here)
    with pytest.raises(KeyboardInterrupt):
        tokenize_documents(random_texts(200), workers=2, chunk_chars=10)
    assert multiprocessing.active_children() == []


def test_threads_stand_in_where_fork_is_unavailable(monkeypatch):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(multiprocessing, "get_context", None)  # no process may start
    texts = random_texts(300, seed=1)
    tokenized = tokenize_documents(texts, workers=3, chunk_chars=20)
    assert [tokenized.document(i).tolist() for i in range(len(texts))] == per_document(texts)


def test_the_tokenize_stage_reads_tinystories_without_importing_torch(tmp_path):
    """Forking is slower from a process holding torch, and importing it costs seconds."""
    stories = tmp_path / "stories.txt"
    stories.write_text("<|endoftext|>".join(random_texts(50, seed=2)) + "<|endoftext|>")
    params = tmp_path / "params.yaml"
    params.write_text(
        "data:\n"
        "  input_files: []\n"
        "  tinystories_weight: 1.0\n"
        f"  tinystories: {{source: local, path: {json.dumps(str(stories))}, "
        "max_validation_stories: 0}\n"
        "split: {tinystories_test: holdout}\n"
        "models:\n  lstm: {type: lstm}\n"
    )
    script = (
        "import sys; from picollm.cli import main; "
        f"main(['tokenize', '--params', {str(params)!r}, '--out', {str(tmp_path / 'c.parquet')!r},"
        f" '--metadata', {str(tmp_path / 'c.json')!r}, '--workers', '2']); "
        "assert 'torch' not in sys.modules and 'datasets' in sys.modules"
    )
    environment = {k: v for k, v in os.environ.items() if k != "USE_TORCH"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    corpus = json.loads((tmp_path / "c.json").read_text())
    assert corpus["tinystories_source"] == "local"
    assert list(corpus["lineage"]["inputs"]) == [str(stories)]  # the one write holds the lineage


def test_helpers_die_with_a_parent_killed_by_sigkill(tmp_path):
    """kill -9 of `picollm tokenize` used to leave a helper blocked forever on its queue."""
    import signal
    import time

    script = (
        "import os, sys, time; from picollm.data.tokenize import TokenizerPool; "
        "pool = TokenizerPool(2); "
        "print(*pool._helpers._processes, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    helpers = []
    try:
        helpers = [int(pid) for pid in parent.stdout.readline().split()]
        assert helpers and all(alive(pid) for pid in helpers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in helpers):
        time.sleep(0.05)
    survivors = [pid for pid in helpers if alive(pid)]
    for pid in survivors:  # leave nothing behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "a helper outlived its parent"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
