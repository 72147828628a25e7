"""GPT-2 tokenisation of many documents at once, each followed by ``<|endoftext|>``.

tiktoken encodes the text between special tokens independently, so encoding
``doc_1 + EOT + doc_2 + EOT + ...`` with ``<|endoftext|>`` allowed gives exactly
``encode_ordinary(doc_1) + [EOT_ID] + encode_ordinary(doc_2) + [EOT_ID] + ...``. We join
consecutive documents into coarse chunks of about ``chunk_chars`` characters and encode each chunk
with ``encode_to_numpy`` (no Python list of ints: 1.1x faster than ``encode_ordinary``), then cut
the result at the EOT ids. Per-document calls are slower: each pays a fixed overhead. A chunk with a
document whose text contains the literal string ``<|endoftext|>`` is encoded document by document
with ``encode_ordinary``, so that string stays ordinary text.

With ``workers > 1`` the documents are cut into that many contiguous shares of about equal size
(never smaller than one chunk): this process encodes the first while helper processes encode the
others. Processes, not threads: on the project's 2-core machine two tiktoken threads in one
process ran at 1.4-1.7x one thread, two processes at 2x (``benchmarks/bench_tokenize.py``). The
helpers are forked (they inherit the loaded encoding), and forking costs time in proportion to the
memory this process holds, so a :class:`TokenizerPool` is best started before large libraries and
data are loaded. Where fork is unavailable (Windows) the helpers are threads. A helper dies with
the process that started it, even one killed with SIGKILL (``_die_with_parent``), so it never
lingers blocked on a queue nobody reads.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from picollm.tokenizer import EOT_ID, EOT_TOKEN, get_encoding

DEFAULT_CHUNK_CHARS = 1 << 18  # ~256 KiB of text per chunk


@dataclass(frozen=True)
class TokenizedDocuments:
    """Documents as one flat token array; document ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``."""

    tokens: np.ndarray  # (N,) uint16, every document ends with EOT_ID
    offsets: np.ndarray  # (n_docs + 1,) int64, offsets[0] == 0 and offsets[-1] == N

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def document(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TokenizerPool:
    """This process plus ``workers - 1`` helpers, started now, sharing each :meth:`tokenize` call.

    Use it as a context manager; the helpers stop when it closes. One worker means no helpers.
    """

    def __init__(self, workers: int = 1):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        self.workers = workers
        get_encoding()  # loaded before forking, so that every helper inherits it
        self._helpers: Executor | None = None
        if workers > 1:
            if "fork" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("fork")
                self._helpers = ProcessPoolExecutor(
                    workers - 1,
                    mp_context=context,
                    initializer=_die_with_parent,
                    initargs=(os.getpid(),),
                )
            else:
                self._helpers = ThreadPoolExecutor(workers - 1)
            with warnings.catch_warnings():
                # Python >= 3.12 warns when a process with threads forks: a lock held by another
                # thread stays locked in the child. Ours are idle library threads (OpenBLAS,
                # Arrow) whose code the helpers, running only tiktoken and NumPy, never enter.
                warnings.filterwarnings("ignore", "This process .* is multi-threaded")
                # A fork-based ProcessPoolExecutor forks its helpers at the first submission: now.
                self._helpers.submit(os.getpid).result()

    def tokenize(
        self, texts: Sequence[str], chunk_chars: int = DEFAULT_CHUNK_CHARS
    ) -> TokenizedDocuments:
        """GPT-2 tokens of every text followed by ``<|endoftext|>`` (id 50256), in order; the
        result depends neither on ``workers`` nor on ``chunk_chars``."""
        if not isinstance(chunk_chars, int) or chunk_chars < 1:
            raise ValueError(f"chunk_chars must be an int >= 1, got {chunk_chars!r}")
        total_chars = sum(len(text) for text in texts)
        share_chars = max(chunk_chars, math.ceil(total_chars / self.workers))
        (first, *others) = _cut(texts, share_chars) or [texts]
        if others and self._helpers is None:
            raise ValueError("this TokenizerPool is closed")
        pending = [self._helpers.submit(_encode, share, chunk_chars) for share in others]
        try:
            parts = [_encode(first, chunk_chars), *(future.result() for future in pending)]
        except BrokenProcessPool as error:
            raise RuntimeError(
                "a tokeniser process died (out of memory?); tokenise in this process alone with "
                "`picollm tokenize --workers 1` (or workers=1)"
            ) from error
        finally:
            for future in pending:
                future.cancel()
        tokens = np.concatenate(parts)
        ends = np.flatnonzero(tokens == EOT_ID) + 1
        if len(ends) != len(texts):  # ordinary encoding never emits EOT_ID, so this cannot happen
            raise AssertionError(f"expected {len(texts)} end-of-text tokens, found {len(ends)}")
        offsets = np.concatenate([[0], ends]).astype(np.int64)
        return TokenizedDocuments(tokens=tokens, offsets=offsets)

    def close(self) -> None:
        """Stop the helpers (after their current work); idempotent."""
        if self._helpers is not None:
            self._helpers.shutdown(wait=True, cancel_futures=True)
            self._helpers = None

    def __enter__(self) -> TokenizerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def tokenize_documents(
    texts: Sequence[str], workers: int = 1, chunk_chars: int = DEFAULT_CHUNK_CHARS
) -> TokenizedDocuments:
    """:meth:`TokenizerPool.tokenize` with a pool of ``workers`` started for this call alone."""
    with TokenizerPool(workers) as pool:
        return pool.tokenize(texts, chunk_chars)


PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal this process gets when the thread that forked it dies."""


def _die_with_parent(parent_pid: int) -> None:
    """Run first in each helper: end it when ``parent_pid`` ends, however that ends. Linux
    sends SIGKILL at once (prctl); elsewhere a daemon thread polls the parent every second."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _cut(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    """``texts`` as consecutive runs of at least ``size`` characters (the last may hold fewer);
    runs of ``ceil(total / k)`` characters therefore number at most ``k``."""
    runs, start, run_chars = [], 0, 0
    for i, text in enumerate(texts):
        run_chars += len(text)
        if run_chars >= size:
            runs.append(texts[start : i + 1])
            start, run_chars = i + 1, 0
    if start < len(texts):
        runs.append(texts[start:])
    return runs


def _encode(texts: Sequence[str], chunk_chars: int) -> np.ndarray:
    """The tokens of ``texts``, encoded a chunk of about ``chunk_chars`` characters at a time."""
    parts = [_encode_chunk(chunk) for chunk in _cut(texts, chunk_chars)]
    return np.concatenate([np.zeros(0, dtype=np.uint16), *parts])


def _encode_chunk(texts: Sequence[str]) -> np.ndarray:
    encoding = get_encoding()
    joined = EOT_TOKEN.join(texts) + EOT_TOKEN
    if joined.count(EOT_TOKEN) == len(texts):  # no text holds the literal "<|endoftext|>"
        return encoding.encode_to_numpy(joined, allowed_special={EOT_TOKEN}).astype(np.uint16)
    ids = [t for text in texts for t in (*encoding.encode_ordinary(text), EOT_ID)]
    return np.array(ids, dtype=np.uint16)
