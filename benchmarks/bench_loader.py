"""Speed of the training data loader on CPU, measured against a training step in the same process.

``BatchStream`` batches/s on a memory-mapped split (batch 16 x 128 tokens) in each loader mode vs
training steps/s of a small Transformer (embedding, 2 ``nn.TransformerEncoderLayer`` blocks with a
causal mask, d_model 128, unembedding to 50,257). Target: >= 10x.

Text: the TinyStories sample in ``../shared`` when present, else story-grammar stories of about
the same size. Timings alternate the variants (median of repeats) so shared load hits them alike.

Run ``python benchmarks/bench_loader.py`` (about a minute) or ``--quick`` (a smoke run, written to
benchmarks/out/). Prints a markdown table and writes it to benchmarks/results/bench_loader.md.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved_seconds, machine, markdown_table, write_report
from stories import benchmark_stories  # benchmarks/stories.py
from torch import nn

from picollm.data.corpus import write_corpus_parquet
from picollm.data.loader import MODES, BatchStream, TokenStore
from picollm.data.sources import Documents
from picollm.data.split import split_corpus
from picollm.tokenizer import VOCAB_SIZE

BLOCK_SIZE, BATCH_SIZE, D_MODEL = 128, 16, 128


class TinyTransformer(nn.Module):
    """Embedding, causal ``nn.TransformerEncoder`` (pre-norm), unembedding."""

    def __init__(self, n_layers: int = 2, n_heads: int = 4):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, D_MODEL)
        self.position = nn.Embedding(BLOCK_SIZE, D_MODEL)
        layer = nn.TransformerEncoderLayer(
            D_MODEL, n_heads, 4 * D_MODEL, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.unembedding = nn.Linear(D_MODEL, VOCAB_SIZE)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(BLOCK_SIZE))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embedding(tokens) + self.position.weight[:t]  # (B, T, D)
        x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)  # (B, T, D)
        return self.unembedding(x)  # (B, T, V)


def loader_rows(store: TokenStore, repeats: int, n_batches: int) -> list[list[str]]:
    torch.manual_seed(0)
    model = TinyTransformer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = next(BatchStream(store, BLOCK_SIZE, BATCH_SIZE, seed=0))

    def train_step() -> None:
        logits = model(batch.inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    streams = {
        mode: BatchStream(store, BLOCK_SIZE, BATCH_SIZE, seed=0, mode=mode) for mode in MODES
    }
    runs: dict[str, Callable[[], object]] = {"train step": train_step}
    for mode, stream in streams.items():
        runs[mode] = lambda stream=stream: [next(stream) for _ in range(n_batches)]
    seconds = interleaved_seconds(runs, repeats)
    steps_per_second = 1 / seconds.pop("train step")
    rows = [["training step (reference)", f"{steps_per_second:.2f}", "1x"]]
    for mode, s in seconds.items():
        per_second = n_batches / s
        ratio = per_second / steps_per_second
        rows.append([f"BatchStream {mode}", f"{per_second:,.0f}", f"{ratio:,.0f}x (target >= 10x)"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    repeats, n_batches = (2, 50) if args.quick else (7, 500)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts, text_name = benchmark_stories(tmp / "hf")
        write_corpus_parquet(tmp / "corpus.parquet", [Documents("tinystories", texts, "train")])
        split_corpus(tmp / "corpus.parquet", 0.0, 0, "holdout", tmp / "split")
        store = TokenStore.open(tmp / "split", "train")
        rows = loader_rows(store, repeats, n_batches)
    report = "\n\n".join(
        [
            "# bench_loader" + (" (--quick)" if args.quick else ""),
            f"Machine: {machine()}. Other jobs share this machine, so absolute numbers vary; "
            "the ratios come from interleaved runs in one process.",
            f"## Loader vs a training step: {text_name}, memory-mapped split of "
            f"{store.n_tokens:,} tokens, batch {BATCH_SIZE} x {BLOCK_SIZE}, Transformer d_model "
            f"{D_MODEL}, 2 layers, vocabulary {VOCAB_SIZE:,}; {n_batches} batches per timing, "
            f"median of {repeats}",
            markdown_table(["", "per second", "vs training step"], rows),
        ]
    )
    write_report("bench_loader", report, args.quick)


if __name__ == "__main__":
    main()
