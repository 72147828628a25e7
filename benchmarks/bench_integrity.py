"""Cost of the stages' integrity checks (``picollm.integrity.verify_files``) against their work.

The split stage hashes ``corpus.parquet`` once before splitting it; the train and sweep stages
hash the four token arrays they read once before training. Measured here, in one process, on the
TinyStories sample in ``../shared`` (else story-grammar stories of about the same size): each
check against the work of its stage (``split_corpus``; one training step of bench_loader's small
Transformer, times the 120 steps of the shipped params.yaml).

Run ``python benchmarks/bench_integrity.py`` (about a minute) or ``--quick`` (written to
benchmarks/out/). Prints a markdown table and writes it to benchmarks/results/bench_integrity.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_loader import BATCH_SIZE, BLOCK_SIZE, TinyTransformer
from common import interleaved_seconds, machine, markdown_table, write_report
from stories import benchmark_stories  # benchmarks/stories.py

from picollm.data.corpus import write_corpus_parquet
from picollm.data.loader import BatchStream, TokenStore
from picollm.data.sources import Documents
from picollm.data.split import split_corpus
from picollm.integrity import verify_files

TRAIN_STEPS = 120  # max_steps_per_epoch of the shipped params.yaml
SPLIT_FILES = [f"{s}.{kind}.npy" for s in ("train", "test") for kind in ("tokens", "docs")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    repeats = 2 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts, text_name = benchmark_stories(tmp / "hf")
        corpus = tmp / "corpus.parquet"
        metadata = write_corpus_parquet(corpus, [Documents("tinystories", texts, "train")])
        split_corpus(corpus, 0.1, 0, "holdout", tmp / "split")
        store = TokenStore.open(tmp / "split", "train")
        sizes = sum((tmp / "split" / name).stat().st_size for name in SPLIT_FILES)

        torch.manual_seed(0)
        model = TinyTransformer()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = next(BatchStream(store, BLOCK_SIZE, BATCH_SIZE, seed=0))

        def train_step() -> None:
            logits = model(batch.inputs)  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        seconds = interleaved_seconds(
            {
                "verify corpus": lambda: verify_files(tmp / "corpus.json", [corpus.name]),
                "split": lambda: split_corpus(corpus, 0.1, 0, "holdout", tmp / "again"),
                "verify split": lambda: verify_files(tmp / "split/split.json", SPLIT_FILES),
                "train step": train_step,
            },
            repeats,
        )
    run_seconds = TRAIN_STEPS * seconds["train step"]
    rows = [
        [
            f"split stage: hash corpus.parquet ({metadata['documents']:,} documents)",
            f"{1000 * seconds['verify corpus']:.1f} ms",
            f"split_corpus: {1000 * seconds['split']:.0f} ms",
            f"{100 * seconds['verify corpus'] / seconds['split']:.1f} %",
        ],
        [
            f"train stage: hash the 4 token arrays ({sizes / 2**20:.1f} MiB)",
            f"{1000 * seconds['verify split']:.1f} ms",
            f"{TRAIN_STEPS} training steps: {run_seconds:.1f} s",
            f"{100 * seconds['verify split'] / run_seconds:.2f} %",
        ],
    ]
    report = "\n\n".join(
        [
            "# bench_integrity" + (" (--quick)" if args.quick else ""),
            f"Machine: {machine()}. Timings interleaved in one process, median of {repeats}.",
            f"## Integrity checks vs the stage's work: {text_name}, {store.n_tokens:,} train "
            f"tokens; training step: batch {BATCH_SIZE} x {BLOCK_SIZE}, bench_loader's Transformer",
            markdown_table(["check", "time", "the stage's work", "check / work"], rows),
        ]
    )
    write_report("bench_integrity", report, args.quick)


if __name__ == "__main__":
    main()
