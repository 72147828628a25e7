"""Training speed and test loss with the compact vocabulary against GPT-2's full table.

For each default model of ``params.yaml`` (LSTM, k-gram MLP, Transformer at their default sizes,
block size and batch size), two copies start from the same seed: one with ``data.vocab: compact``
(the default rule: at most 4,096 ids from the training split, tokens seen once left out), one with
GPT-2's 50,257 ids. They train for the same number of AdamW steps on the same windows of the
TinyStories excerpt shipped with picollm, alternating step by step so that shared load hits both
alike; each step is timed (forward, backward, optimizer). Then both are scored on the whole held-out
split in non-overlapping windows, on the target tokens that are inside the compact table (the
compact model's loss on its unknown id is not comparable, so neither model is scored there).
Target: the compact model at least 5x faster, with an in-vocabulary test loss no worse.

Run ``python benchmarks/bench_vocab.py`` (about 15 minutes on 2 cores) or ``--quick`` (a smoke run, written to
benchmarks/out/). Writes benchmarks/results/bench_vocab.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from common import machine, markdown_table, write_report

from picollm.config import load_params, model_config, training_config
from picollm.data.corpus import write_corpus_parquet
from picollm.data.loader import BatchStream, TokenStore, eval_batches
from picollm.data.sources import load_tinystories
from picollm.data.split import split_corpus
from picollm.models import build
from picollm.vocab import VOCAB_FILE, Vocabulary

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SEED = 0


def build_splits(tmp: Path, data: dict) -> dict[str, Path]:
    """The excerpt's corpus split twice: with the compact rule of ``data`` and with GPT-2's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loaded = load_tinystories("excerpt", n_train=None, n_validation=None, cache_dir=tmp / "hf")
    write_corpus_parquet(tmp / "corpus.parquet", loaded.documents)
    rules = {"compact": {**data, "vocab": "compact"}, "gpt2": {"vocab": "gpt2"}}
    for kind, rule in rules.items():
        split_corpus(tmp / "corpus.parquet", 0.0, 0, "validation", tmp / kind, vocab_rule=rule)
    return {kind: tmp / kind for kind in rules}


def compare(
    name: str, params: dict, splits: dict[str, Path], steps: int, eval_batches: int
) -> list[str]:
    """Train both copies of model ``name`` for ``steps`` interleaved steps, score them on up to
    ``eval_batches`` test batches; one table row."""
    entry, training = model_config(params, name), training_config(params, name)
    block, batch = params["data"]["block_size"], training["batch_size"]
    vocabularies = {kind: Vocabulary.load(path / VOCAB_FILE) for kind, path in splits.items()}
    stores = {kind: TokenStore.open(path, "train") for kind, path in splits.items()}
    streams = {kind: BatchStream(stores[kind], block, batch, seed=SEED) for kind in splits}
    models, optimizers, seconds = {}, {}, dict.fromkeys(splits, 0.0)
    for kind, vocabulary in vocabularies.items():
        torch.manual_seed(SEED)
        models[kind] = build({"vocab_size": vocabulary.size, "block_size": block, **entry})
        optimizers[kind] = torch.optim.AdamW(models[kind].parameters(), training["learning_rate"])
    for _ in range(steps):
        for kind, model in models.items():
            inputs = next(streams[kind])
            start = time.perf_counter()
            loss = F.cross_entropy(model(inputs.inputs).flatten(0, 1), inputs.targets.flatten())
            optimizers[kind].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[kind].step()
            seconds[kind] += time.perf_counter() - start
    speed = {kind: steps * batch * block / seconds[kind] for kind in splits}
    compact = vocabularies["compact"]
    losses = in_vocabulary_test_loss(models, splits, compact, block, batch, eval_batches)
    return [
        name,
        f"{vocabularies['compact'].size:,}",
        f"{speed['compact']:,.0f}",
        f"{speed['gpt2']:,.0f}",
        f"{speed['compact'] / speed['gpt2']:.1f}x",
        f"{losses['compact']:.3f}",
        f"{losses['gpt2']:.3f}",
    ]


@torch.no_grad()
def in_vocabulary_test_loss(models, splits, compact: Vocabulary, block, batch, n_batches):
    """Mean test loss of each model over the same target tokens: those inside the compact table."""
    evaluation = {
        kind: eval_batches(TokenStore.open(path, "test"), block, batch, n_batches, seed=SEED)
        for kind, path in splits.items()
    }
    totals = dict.fromkeys(models, 0.0)
    counted = 0
    for compact_batch, gpt2_batch in zip(evaluation["compact"], evaluation["gpt2"], strict=True):
        known = compact_batch.targets != compact.unk_id  # (B, T)
        counted += int(known.sum())
        for kind, one in (("compact", compact_batch), ("gpt2", gpt2_batch)):
            logits = models[kind].eval()(one.inputs)  # (B, T, V)
            per_token = F.cross_entropy(logits.transpose(1, 2), one.targets, reduction="none")
            totals[kind] += float(per_token[known].sum())
    return {kind: total / counted for kind, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 200)")
    args = parser.parse_args()
    steps = args.steps or (10 if args.quick else 200)
    n_eval = 4 if args.quick else 10**9  # the whole held-out split
    params = load_params(PARAMS)
    with tempfile.TemporaryDirectory() as tmp:
        splits = build_splits(Path(tmp), params["data"])
        rows = [compare(name, params, splits, steps, n_eval) for name in sorted(params["models"])]
    header = ["model", "compact ids", "compact tok/s", "gpt2 tok/s", "speed-up"]
    header += ["test loss, compact", "test loss, gpt2"]
    report = "\n\n".join(
        [
            "# bench_vocab" + (" (--quick)" if args.quick else ""),
            f"Machine: {machine()}. Steps alternate between the two copies, so shared load hits "
            "both alike; tokens/s counts forward, backward and optimizer time only.",
            f"## Compact vs GPT-2 vocabulary: the default models of params.yaml, {steps} AdamW "
            "steps each on the shipped TinyStories excerpt; test loss in nats per token over "
            "the held-out split's targets that are inside the compact table",
            markdown_table(header, rows),
        ]
    )
    write_report("bench_vocab", report, args.quick)


if __name__ == "__main__":
    main()
