"""Speed of GPT-2 tokenisation of stories on CPU, against one ``encode_ordinary`` in the same process.

Reference: one single-threaded tiktoken ``encode_ordinary`` over all the stories joined by
newlines. Timed against it:

- ``TokenizerPool(2).tokenize``: this process and one forked helper each encode half of the
  stories (joined into ~256 KiB chunks, each encoded to a NumPy array). The pool is started before
  the stories are read, as ``picollm tokenize`` (``build_corpus``) starts it; its start and close
  are one-time costs, reported on their own. Target: >= 1.5x.
- ``tokenize_documents(texts, workers=2)``: the same with a pool started and closed inside the
  call, from a process that by then holds every library and the stories (a one-off call's cost).
- one worker; two halves of the text on two threads; tiktoken's ``encode_ordinary_batch`` with
  one story per item on two threads; one story per chunk.

This script never imports torch, like ``picollm tokenize``: a process holding torch forks more
slowly. Text: the TinyStories sample in ``../shared`` when present, else story-grammar stories of
about the same size. Timings alternate the variants (median of repeats) so shared load hits them
alike.

Run ``python benchmarks/bench_tokenize.py`` (under a minute) or ``--quick`` (a smoke run, written
to benchmarks/out/). Prints a markdown table and writes it to benchmarks/results/bench_tokenize.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import cpu_model, interleaved_seconds, load_average, markdown_table, write_report
from stories import benchmark_stories  # benchmarks/stories.py

from picollm.data.tokenize import TokenizerPool, tokenize_documents, usable_cpus
from picollm.tokenizer import get_encoding

os.environ.setdefault("USE_TORCH", "0")  # as `picollm tokenize` does: `datasets` then skips torch
REFERENCE = "one encode_ordinary over the text (reference)"
TARGET = "TokenizerPool(2).tokenize: this process + 1 forked helper"


def tokenizer_rows(pool: TokenizerPool, texts: list[str], repeats: int) -> list[list[str]]:
    encoding = get_encoding()
    joined = "\n".join(texts)
    halves = [joined[: len(joined) // 2], joined[len(joined) // 2 :]]
    megabytes = len(joined.encode()) / 1e6
    with ThreadPoolExecutor(2) as threads:
        runs = {
            REFERENCE: lambda: encoding.encode_ordinary(joined),
            TARGET: lambda: pool.tokenize(texts),
            "tokenize_documents, 2 workers, pool started in the call": lambda: tokenize_documents(
                texts, workers=2
            ),
            "tokenize_documents, 1 worker": lambda: tokenize_documents(texts, workers=1),
            "two halves of the text on two threads (encode_to_numpy)": lambda: list(
                threads.map(encoding.encode_to_numpy, halves)
            ),
            "encode_ordinary_batch, one story per item, 2 threads": lambda: (
                encoding.encode_ordinary_batch(texts, num_threads=2)
            ),
            "tokenize_documents, 1 worker, one story per chunk": lambda: tokenize_documents(
                texts, workers=1, chunk_chars=1
            ),
        }
        seconds = interleaved_seconds(runs, repeats)
    rows = []
    for name, s in seconds.items():
        target = " (target >= 1.5x)" if name == TARGET else ""
        rows.append([name, f"{megabytes / s:.1f}", f"{seconds[REFERENCE] / s:.2f}x{target}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15
    get_encoding()  # loaded once per process; the pool's start below is then its fork alone
    start = time.perf_counter()
    pool = TokenizerPool(2)
    start_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        texts, text_name = benchmark_stories(Path(tmp) / "hf")
    rows = tokenizer_rows(pool, texts, repeats)
    start = time.perf_counter()
    pool.close()
    close_seconds = time.perf_counter() - start
    assert "torch" not in sys.modules, "the tokeniser is timed without torch, as the stage runs"
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    report = "\n\n".join(
        [
            "# bench_tokenize" + (" (--quick)" if args.quick else ""),
            f"Machine: {cpu_model()}; {usable_cpus()} usable CPUs; Python "
            f"{sys.version.split()[0]}; load average {load_average()} (1/5/15 min) at the end; "
            "torch not imported. Other jobs share this machine, so absolute numbers vary; the "
            "ratios come from interleaved runs in one process.",
            f"## Tokenising {text_name}: {len(texts):,} stories, {megabytes:.2f} MB, "
            f"median of {repeats}",
            markdown_table(["tokeniser", "MB/s", "vs reference"], rows),
            f"One-time costs of the `TokenizerPool(2)` (started before the stories were read): "
            f"start {start_seconds * 1e3:.0f} ms (helper forked), close "
            f"{close_seconds * 1e3:.0f} ms.",
        ]
    )
    write_report("bench_tokenize", report, args.quick)


if __name__ == "__main__":
    main()
