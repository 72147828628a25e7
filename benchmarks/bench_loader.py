"""Speed of the data side on CPU, measured against references run in the same process.

1. Tokenising stories: ``tokenize_documents`` (documents joined into ~256 KiB chunks, each
   encoded to a NumPy array, cut into one token array per document) vs one single-threaded
   ``encode_ordinary`` over the same text. Target: >= 1.5x. Also shown: the chunks on two
   threads, one chunk per story, and tiktoken's ``encode_ordinary_batch`` with one story per item
   on two threads.
2. Loader: ``BatchStream`` batches/s on a memory-mapped split (batch 16 x 128 tokens) vs training
   steps/s of a small Transformer (embedding, 2 ``nn.TransformerEncoderLayer`` blocks with a
   causal mask, d_model 128, unembedding to 50,257). Target: >= 10x.

Text: the TinyStories sample in ``../shared`` when present, else story-grammar stories of about
the same size. Timings alternate the variants (median of repeats) so shared load hits them alike.

Run ``python benchmarks/bench_data.py`` (about a minute) or ``--quick`` (a smoke run, written to
benchmarks/out/). Prints markdown tables and writes them to benchmarks/results/bench_data.md.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import interleaved_seconds, machine, markdown_table  # benchmarks/common.py
from torch import nn

from picollm.data.corpus import write_corpus_parquet
from picollm.data.loader import MODES, BatchStream, TokenStore
from picollm.data.sources import Documents, load_tinystories
from picollm.data.split import split_corpus
from picollm.data.synthetic import generate
from picollm.data.tokenize import tokenize_documents
from picollm.tokenizer import VOCAB_SIZE, get_encoding

SAMPLE = Path(__file__).parents[2] / "shared/data/tinystories/tinystories_sample.txt"
RESULTS = Path(__file__).parent / "results" / "bench_data.md"
QUICK_RESULTS = Path(__file__).parent / "out" / "bench_data.md"
BLOCK_SIZE, BATCH_SIZE, D_MODEL = 128, 16, 128


def stories(cache_dir: Path) -> tuple[list[str], str]:
    if SAMPLE.is_file():
        with warnings.catch_warnings():  # the sample's cut-off last story is dropped, as expected
            warnings.simplefilter("ignore", RuntimeWarning)
            loaded = load_tinystories("local", n_train=None, local_path=SAMPLE, cache_dir=cache_dir)
        return loaded.documents[0].texts, f"TinyStories sample ({SAMPLE.name})"
    return generate("story_grammar", 5_000, seed=0).texts, "5,000 story-grammar stories"


def tokenizer_rows(texts: list[str], repeats: int) -> list[list[str]]:
    encoding = get_encoding()
    joined = "\n".join(texts)
    megabytes = len(joined.encode()) / 1e6
    runs = {
        "one encode_ordinary over the text (reference)": lambda: encoding.encode_ordinary(joined),
        "tokenize_documents, 1 thread (default)": lambda: tokenize_documents(texts, 1),
        "tokenize_documents, 2 threads": lambda: tokenize_documents(texts, 2),
        "tokenize_documents, 1 thread, one story per chunk": lambda: tokenize_documents(
            texts, 1, chunk_chars=1
        ),
        "encode_ordinary_batch, one story per item, 2 threads": lambda: (
            encoding.encode_ordinary_batch(texts, num_threads=2)
        ),
    }
    seconds = interleaved_seconds(runs, repeats)
    reference = seconds["one encode_ordinary over the text (reference)"]
    rows = []
    for name, s in seconds.items():
        target = " (target >= 1.5x)" if "(default)" in name else ""
        rows.append([name, f"{megabytes / s:.1f}", f"{reference / s:.2f}x{target}"])
    return rows


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
        texts, text_name = stories(tmp / "hf")
        token_rows = tokenizer_rows(texts, repeats)
        write_corpus_parquet(tmp / "corpus.parquet", [Documents("tinystories", texts, "train")])
        split_corpus(tmp / "corpus.parquet", 0.0, 0, "holdout", tmp / "split")
        store = TokenStore.open(tmp / "split", "train")
        batch_rows = loader_rows(store, repeats, n_batches)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    report = "\n\n".join(
        [
            "# bench_data" + (" (--quick)" if args.quick else ""),
            f"Machine: {machine()}. Other jobs share this machine, so absolute numbers vary; "
            "the ratios come from interleaved runs in one process.",
            f"## Tokenising {text_name}: {len(texts):,} stories, {megabytes:.2f} MB, "
            f"median of {repeats}",
            markdown_table(["tokeniser", "MB/s", "vs reference"], token_rows),
            f"## Loader vs a training step: memory-mapped split of {store.n_tokens:,} tokens, "
            f"batch {BATCH_SIZE} x {BLOCK_SIZE}, Transformer d_model {D_MODEL}, 2 layers, "
            f"vocabulary {VOCAB_SIZE:,}; {n_batches} batches per timing, median of {repeats}",
            markdown_table(["", "per second", "vs training step"], batch_rows),
        ]
    )
    print(report)
    out = QUICK_RESULTS if args.quick else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
