"""Split a corpus into train and test by document, deterministically and stably.

A document goes to test iff ``mix64(doc_id XOR mix64(seed)) / 2**64 < test_fraction``, where
``mix64`` is the SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014). ``doc_id`` depends only on the document's source, split, content and
how often that content occurred before in its source (:mod:`picollm.data.corpus`), so adding a
source or more stories never moves an existing document between train and test. Repeated
documents (3seqs.txt repeats three lines 1,111 times each) are spread like distinct ones; the
summary counts the test documents whose exact tokens also occur in train.

TinyStories (``tinystories_test``): ``"validation"`` puts the official validation stories in test
and every train story in train; ``"holdout"`` splits the train stories by the rule above and leaves
the validation stories out.

Outputs in ``out_dir``, fixed names (``SPLIT_OUTPUTS``):

* ``train.parquet``, ``test.parquet``: the corpus rows of each split (same schema, corpus order);
* ``{split}.tokens.npy``: uint16 (N,), the split's documents concatenated (each ends with EOT);
* ``{split}.docs.npy``: int64 (n_docs, 3), per document [start offset, length, source id];
* ``vocab.json``: the model's token table (:class:`picollm.vocab.Vocabulary`), built from the
  train tokens only, as ``vocab_rule`` asks;
* ``split.json``: the settings, ``sources`` (source id -> name), documents and tokens per split
  and source, each split's share of tokens outside the vocabulary, and the SHA-256 of every
  output.

The token arrays are written in a second streaming pass over the corpus, straight into
memory-mapped ``.npy`` files, so corpora larger than memory work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from picollm.data.sources import TINYSTORIES_SOURCE
from picollm.files import atomic_path, sha256_file, write_json
from picollm.vocab import VOCAB_FILE, Vocabulary

SPLITS = ("train", "test")  # a document's assignment is its index here, or LEFT_OUT
LEFT_OUT = -1
TINYSTORIES_TEST_RULES = ("validation", "holdout")
SPLIT_SUMMARY = "split.json"
SPLIT_FILES = ("parquet", "tokens.npy", "docs.npy")
SPLIT_OUTPUTS = (
    *(f"{s}.{kind}" for s in SPLITS for kind in SPLIT_FILES),
    VOCAB_FILE,
    SPLIT_SUMMARY,
)
GPT2_VOCAB_RULE = {"vocab": "gpt2"}
_BATCH_ROWS = 16_384


def split_corpus(
    corpus_parquet: str | Path,
    test_fraction: float,
    seed: int,
    tinystories_test: str,
    out_dir: str | Path,
    lineage: Mapping[str, Any] | None = None,
    vocab_rule: Mapping[str, Any] = GPT2_VOCAB_RULE,
) -> dict[str, Any]:
    """Write the train/test Parquet, token arrays, ``vocab.json`` and ``split.json``; return the
    summary.

    ``vocab_rule``: the ``data.vocab``, ``data.vocab_size`` and ``data.vocab_min_count`` params
    (only ``vocab`` for ``gpt2``). ``lineage`` (what produced the split, see
    ``picollm.pipeline.lineage.record``) is stored in the summary as is.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float):
        raise TypeError(f"test_fraction must be a number, got {test_fraction!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    if tinystories_test not in TINYSTORIES_TEST_RULES:
        raise ValueError(
            f"tinystories_test must be one of {TINYSTORIES_TEST_RULES}, got {tinystories_test!r}"
        )
    corpus_parquet, out_dir = Path(corpus_parquet), Path(out_dir)
    table = pq.read_table(
        corpus_parquet,
        columns=["doc_id", "source", "split", "n_tokens", "content_hash", "logprob"],
    )
    sources = table.column("source").combine_chunks().dictionary_encode()  # first-seen order
    source_names = sources.dictionary.to_pylist()
    source_ids = sources.indices.to_numpy().astype(np.int64)
    tinystories = source_ids == (
        source_names.index(TINYSTORIES_SOURCE) if TINYSTORIES_SOURCE in source_names else -1
    )
    validation = pc.fill_null(pc.equal(table.column("split"), "validation"), False)
    assignment = _assign(
        table.column("doc_id").to_numpy(),
        tinystories & ~validation.to_numpy(),
        tinystories & validation.to_numpy(),
        test_fraction,
        seed,
        tinystories_test,
    )
    n_tokens = table.column("n_tokens").to_numpy().astype(np.int64)
    logprob = table.column("logprob").to_numpy(zero_copy_only=False)  # NaN where unknown
    paths = {s: {kind: out_dir / f"{s}.{kind}" for kind in SPLIT_FILES} for s in SPLITS}
    _write_splits(corpus_parquet, paths, assignment, source_ids, n_tokens)
    tokens = {s: np.load(paths[s]["tokens.npy"], mmap_mode="r") for s in SPLITS}
    vocabulary = Vocabulary.for_params(vocab_rule, tokens["train"])
    vocabulary.save(out_dir / VOCAB_FILE)

    hashes = table.column("content_hash").to_numpy()
    also_in_train = np.isin(hashes[assignment == 1], hashes[assignment == 0])
    summary = {
        "corpus": str(corpus_parquet),
        "corpus_sha256": sha256_file(corpus_parquet),
        "test_fraction": test_fraction,
        "seed": seed,
        "tinystories_test": tinystories_test,
        "sources": source_names,
        "splits": {
            s: {
                "documents": int((assignment == i).sum()),
                "tokens": int(n_tokens[assignment == i].sum()),
                "per_source": {
                    name: {
                        "documents": int(((assignment == i) & (source_ids == j)).sum()),
                        "tokens": int(n_tokens[(assignment == i) & (source_ids == j)].sum()),
                    }
                    for j, name in enumerate(source_names)
                },
                "unknown_token_share": vocabulary.unknown_share(tokens[s]),
                "entropy_floor_nats_per_token": _entropy_floor(
                    logprob[assignment == i], n_tokens[assignment == i]
                ),
                "sha256": {path.name: sha256_file(path) for path in paths[s].values()},
            }
            for i, s in enumerate(SPLITS)
        },
        "vocab": {
            "name": vocabulary.name,
            **vocabulary.rule,
            "size": vocabulary.size,
            "sha256": sha256_file(out_dir / VOCAB_FILE),
        },
        "left_out_documents": int((assignment == LEFT_OUT).sum()),
        "test_documents_also_in_train": int(also_in_train.sum()),
    }
    if lineage is not None:
        summary["lineage"] = dict(lineage)
    write_json(out_dir / SPLIT_SUMMARY, summary)
    return summary


def _assign(
    doc_ids: np.ndarray,
    tinystories_train: np.ndarray,
    tinystories_validation: np.ndarray,
    test_fraction: float,
    seed: int,
    tinystories_test: str,
) -> np.ndarray:
    """Per document: 0 (train), 1 (test) or LEFT_OUT."""
    threshold = np.uint64(min(int(test_fraction * 2**64), 2**64 - 1))
    key = doc_ids.astype(np.uint64) ^ _mix64(np.array([seed], dtype=np.uint64))
    assignment = (_mix64(key) < threshold).astype(np.int64)
    if tinystories_test == "holdout":
        assignment[tinystories_validation] = LEFT_OUT
    elif tinystories_train.any() or tinystories_validation.any():
        if not tinystories_validation.any():
            raise ValueError(
                "tinystories_test='validation' but the corpus has no TinyStories validation "
                "stories: build it with n_validation > 0, or use tinystories_test='holdout'"
            )
        assignment[tinystories_train] = 0
        assignment[tinystories_validation] = 1
    return assignment


def _entropy_floor(logprob: np.ndarray, n_tokens: np.ndarray) -> float | None:
    """The loss a model that knows the generating process reaches on these documents: their
    information -sum(log p(doc)) over their tokens (EOT included), in nats per token; None
    unless every document's log-probability is known and there are tokens."""
    if not len(logprob) or np.isnan(logprob).any() or not n_tokens.sum():
        return None
    return float(-logprob.sum() / n_tokens.sum())


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that scrambles every bit."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _write_splits(
    corpus_parquet: Path,
    paths: dict[str, dict[str, Path]],
    assignment: np.ndarray,
    source_ids: np.ndarray,
    n_tokens: np.ndarray,
) -> None:
    """Second pass: stream the corpus rows into each split's Parquet and token array."""
    corpus = pq.ParquetFile(corpus_parquet)
    with contextlib.ExitStack() as stack:
        tmp = {
            s: {k: stack.enter_context(atomic_path(p)) for k, p in paths[s].items()} for s in SPLITS
        }
        writers = {
            s: stack.enter_context(
                pq.ParquetWriter(tmp[s]["parquet"], corpus.schema_arrow, compression="zstd")
            )
            for s in SPLITS
        }
        tokens = {
            s: np.lib.format.open_memmap(
                tmp[s]["tokens.npy"],
                mode="w+",
                dtype=np.uint16,
                shape=(int(n_tokens[assignment == i].sum()),),
            )
            for i, s in enumerate(SPLITS)
        }
        filled = dict.fromkeys(SPLITS, 0)
        first_row = 0
        for batch in corpus.iter_batches(batch_size=_BATCH_ROWS):
            rows = slice(first_row, first_row + batch.num_rows)
            first_row += batch.num_rows
            for i, s in enumerate(SPLITS):
                part = batch.filter(pa.array(assignment[rows] == i))
                writers[s].write_batch(part)
                flat = part.column("tokens").flatten().to_numpy()
                tokens[s][filled[s] : filled[s] + len(flat)] = flat
                filled[s] += len(flat)
        for i, s in enumerate(SPLITS):
            tokens[s].flush()
            in_split = assignment == i
            lengths = n_tokens[in_split]
            starts = np.cumsum(lengths) - lengths
            docs = np.stack([starts, lengths, source_ids[in_split]], axis=1).astype(np.int64)
            with open(tmp[s]["docs.npy"], "wb") as f:
                np.save(f, docs)
