"""Training and evaluation batches from a split in the fast format, deterministic and resumable.

A :class:`TokenStore` memory-maps one split written by :func:`picollm.data.split.split_corpus`:
the documents' tokens concatenated (each document ends with ``<|endoftext|>``) and an index of
document starts, lengths and sources. A :class:`BatchStream` turns it into an endless stream of
:class:`Batch` es. Batch ``k`` is drawn with a NumPy generator seeded by ``(seed, k)``, so the
stream's position is one integer: ``state_dict`` stores it and ``load_state_dict`` resumes
bit-identically. Batches are cut with vectorised fancy indexing; no Python loop per token.

Modes (``targets`` are the next tokens, or ``IGNORE_INDEX`` where the loss must not count):

* ``packed``: a window of ``block_size + 1`` consecutive tokens of the packed stream per row;
  documents run into each other across end-of-text tokens; nothing is padded.
* ``padded``: one document per row from its start, cut to ``block_size + 1`` tokens; inputs are
  padded with EOT and the padded targets are ``IGNORE_INDEX``.
* ``starter_faithful``: the course starter's data path, to measure what it costs: documents
  drawn with replacement, their end-of-text token dropped (the starter adds none), cut to
  ``block_size`` tokens, padded with id 0 (``"!"``) to the longest in the batch, and the padding
  counted in the loss. Columns past that longest length are ``IGNORE_INDEX``.

A store opened with a :class:`~picollm.vocab.Vocabulary` reads its GPT-2 token array through it:
indexing ``store.tokens`` returns model ids, mapped per batch (the array stays memory-mapped).

``source_weights`` maps source names to the probability that a row comes from that source
(normalised; sources left out, or weighted 0, are never drawn). In packed mode a weighted row is a
window inside a run of that source's documents. Without weights, packed windows are uniform over
the whole stream, and documents uniform over all documents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from picollm.tokenizer import EOT_ID
from picollm.vocab import VOCAB_FILE, Vocabulary

IGNORE_INDEX = -100
STARTER_PAD_ID = 0
MODES = ("packed", "padded", "starter_faithful")
STATE_VERSION = 1


@dataclass
class Batch:
    """Model inputs and next-token targets for one training or evaluation step."""

    inputs: torch.Tensor  # (B, T) int64 token ids
    targets: torch.Tensor  # (B, T) int64 next-token ids; IGNORE_INDEX where not counted


class ModelTokens:
    """A GPT-2 token array read through a vocabulary: indexing it returns model ids (int64)."""

    def __init__(self, gpt2_tokens: np.ndarray, vocabulary: Vocabulary):
        self.gpt2_tokens = gpt2_tokens  # (N,) uint16, possibly a read-only memmap
        self.vocabulary = vocabulary

    def __len__(self) -> int:
        return len(self.gpt2_tokens)

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.vocabulary.encode_gpt2(self.gpt2_tokens[index])


class TokenStore:
    """One split: a flat token array and, per document, its start, length and source id."""

    def __init__(
        self,
        tokens: np.ndarray | ModelTokens,
        doc_starts: np.ndarray,
        doc_lengths: np.ndarray,
        doc_sources: np.ndarray,
        sources: Sequence[str],
        eot_id: int = EOT_ID,
    ):
        self.tokens = tokens  # (N,) token ids, possibly a read-only memmap or mapped view
        self.eot_id = eot_id  # the end-of-text id in ``tokens``
        self.doc_starts = np.asarray(doc_starts, dtype=np.int64)  # (D,)
        self.doc_lengths = np.asarray(doc_lengths, dtype=np.int64)  # (D,)
        self.doc_sources = np.asarray(doc_sources, dtype=np.int64)  # (D,) indices into sources
        self.sources = list(sources)
        self.n_tokens = int(self.doc_lengths.sum())  # in this store's documents
        self.n_documents = len(self.doc_starts)

    def runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) token offsets (R,), (R,) of the contiguous stretches of ``tokens`` this
        store's documents cover (all of it, for a whole split; a prefix or pieces of it, for
        ``first_fraction``)."""
        return document_runs(self, np.arange(self.n_documents))

    @classmethod
    def open(cls, split_dir: str | Path, split: str) -> TokenStore:
        """Memory-map ``{split}.tokens.npy`` with ``{split}.docs.npy`` and ``split.json``; where a
        ``vocab.json`` lies beside them (the split stage writes one), read tokens as model ids."""
        split_dir = Path(split_dir)
        tokens_path = split_dir / f"{split}.tokens.npy"
        if not tokens_path.is_file():
            raise FileNotFoundError(
                f"no split {split!r} in {str(split_dir)!r}: {tokens_path} missing"
            )
        tokens = np.load(tokens_path, mmap_mode="r")
        docs = np.load(split_dir / f"{split}.docs.npy")  # (D, 3): start, length, source id
        sources = json.loads((split_dir / "split.json").read_text())["sources"]
        vocab_path = split_dir / VOCAB_FILE
        vocabulary = Vocabulary.load(vocab_path) if vocab_path.is_file() else Vocabulary.gpt2()
        if vocabulary.kind != "gpt2":  # GPT-2's own table needs no mapping
            tokens = ModelTokens(tokens, vocabulary)
        return cls(tokens, docs[:, 0], docs[:, 1], docs[:, 2], sources, vocabulary.eot_id)

    def first_fraction(self, fraction: float) -> TokenStore:
        """This store restricted to the first ``fraction`` of each source's documents (at
        least one per source that has any): the sweep's training-set size ladder."""
        if fraction == 1.0:
            return self
        keep = []
        for source in range(len(self.sources)):
            docs = np.flatnonzero(self.doc_sources == source)  # (D_s,) in split order
            keep.append(docs[: max(1, math.ceil(fraction * len(docs)))] if len(docs) else docs)
        kept = np.sort(np.concatenate(keep))
        return TokenStore(
            self.tokens,
            self.doc_starts[kept],
            self.doc_lengths[kept],
            self.doc_sources[kept],
            self.sources,
            self.eot_id,
        )

    @classmethod
    def from_documents(
        cls, documents: Sequence[Sequence[int]], doc_sources: Sequence[str] | None = None
    ) -> TokenStore:
        """An in-memory store of token lists (each should end with EOT), for tests and notebooks.

        ``doc_sources`` names each document's source (default: all ``"corpus"``).
        """
        doc_sources = list(doc_sources) if doc_sources is not None else ["corpus"] * len(documents)
        if len(doc_sources) != len(documents):
            raise ValueError(
                f"doc_sources has {len(doc_sources)} names for {len(documents)} documents"
            )
        sources = list(dict.fromkeys(doc_sources))
        lengths = np.array([len(d) for d in documents], dtype=np.int64)
        tokens = np.array([t for d in documents for t in d], dtype=np.uint16)
        source_ids = np.array([sources.index(s) for s in doc_sources], dtype=np.int64)
        return cls(tokens, np.cumsum(lengths) - lengths, lengths, source_ids, sources)


class BatchStream(Iterator[Batch]):
    """An endless, deterministic, resumable stream of training batches (see the module doc)."""

    def __init__(
        self,
        store: TokenStore,
        block_size: int,
        batch_size: int,
        seed: int,
        mode: str = "packed",
        source_weights: Mapping[str, float] | None = None,
    ):
        for name, value in (("block_size", block_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.store, self.block_size, self.batch_size = store, block_size, batch_size
        self.seed, self.mode = seed, mode
        self.source_weights = dict(source_weights) if source_weights is not None else None
        self.batches_drawn = 0
        groups = _source_groups(store, source_weights)
        self._pools = [
            _WindowPool(store, docs, block_size) if mode == "packed" else _DocumentPool(docs)
            for _, _, docs in groups
        ]
        self._probs = np.array([probability for _, probability, _ in groups])
        for (name, _, _), pool in zip(groups, self._pools, strict=True):
            if pool.size == 0:
                what = f"window of {block_size + 1} tokens" if mode == "packed" else "document"
                raise ValueError(f"{name} has no {what} to draw from")

    def __next__(self) -> Batch:
        rng = np.random.default_rng([self.seed, self.batches_drawn])
        self.batches_drawn += 1
        pool_ids = rng.choice(len(self._pools), size=self.batch_size, p=self._probs)
        picks = np.empty(self.batch_size, dtype=np.int64)
        for p, pool in enumerate(self._pools):
            rows = np.flatnonzero(pool_ids == p)
            picks[rows] = pool.draw(rng, len(rows))
        if self.mode == "packed":
            return packed_batch(self.store, picks, self.block_size)
        if self.mode == "padded":
            return padded_batch(self.store, picks, self.block_size)
        return starter_batch(self.store, picks, self.block_size)

    def state_dict(self) -> dict[str, Any]:
        """The stream's exact position (JSON-able) and the settings it must be resumed with."""
        return {
            "version": STATE_VERSION,
            "batches_drawn": self.batches_drawn,
            "seed": self.seed,
            "mode": self.mode,
            "block_size": self.block_size,
            "batch_size": self.batch_size,
            "source_weights": self.source_weights,
            "n_tokens": self.store.n_tokens,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state``'s position; its settings must equal this stream's."""
        mine = self.state_dict()
        if set(state) != set(mine):
            raise ValueError(f"state keys {sorted(state)} differ from {sorted(mine)}")
        for key, value in mine.items():
            if key != "batches_drawn" and state[key] != value:
                raise ValueError(
                    f"cannot resume: state has {key}={state[key]!r}, stream has {value!r}"
                )
        self.batches_drawn = int(state["batches_drawn"])


def eval_batches(
    store: TokenStore,
    block_size: int,
    batch_size: int,
    n_batches: int,
    seed: int,
    mode: str = "packed",
    max_rows: int | None = None,
) -> list[Batch]:
    """A fixed evaluation set of up to ``n_batches`` batches, drawn without replacement.

    ``packed``: windows from the non-overlapping tiling of each run of the store's documents
    (``packed_eval_starts``); ``padded``: whole documents from their start. If the split holds fewer
    than ``n_batches * batch_size`` of them, all are used (the last batch may be smaller), so a
    large ``n_batches`` evaluates the whole split; if it holds none, ValueError. Average losses
    over counted target tokens. ``max_rows`` caps the rows drawn (the last batch is then cut).
    """
    if mode not in ("packed", "padded"):
        raise ValueError(f"mode must be 'packed' or 'padded', got {mode!r}")
    for name, value in (
        ("block_size", block_size),
        ("batch_size", batch_size),
        ("n_batches", n_batches),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1
    ):
        raise ValueError(f"max_rows must be None or an int >= 1, got {max_rows!r}")
    n_items = eval_items(store, block_size, mode)
    if n_items == 0:
        what = f"window of {block_size + 1} tokens" if mode == "packed" else "document"
        raise ValueError(f"the store has no {what} to evaluate on")
    rng = np.random.default_rng(seed)
    rows = n_batches * batch_size if max_rows is None else min(n_batches * batch_size, max_rows)
    chosen = np.sort(rng.permutation(n_items)[:rows])
    starts = packed_eval_starts(store, block_size) if mode == "packed" else None
    batches = []
    for first in range(0, len(chosen), batch_size):
        picks = chosen[first : first + batch_size]
        if starts is not None:
            batches.append(packed_batch(store, starts[picks], block_size))
        else:
            batches.append(padded_batch(store, picks, block_size))
    return batches


def eval_items(store: TokenStore, block_size: int, mode: str = "packed") -> int:
    """How many evaluation rows the split holds: non-overlapping windows of ``block_size + 1``
    tokens (``packed``, see ``packed_eval_starts``) or documents (``padded``)."""
    if mode == "packed":
        return len(packed_eval_starts(store, block_size))
    return store.n_documents


def packed_eval_starts(store: TokenStore, block_size: int) -> np.ndarray:
    """Token offsets (W,) of the packed evaluation windows: in each run of consecutive
    documents (``TokenStore.runs``) of L tokens, the windows starting at ``run_start + j *
    block_size`` for ``j < (L - 1) // block_size``, each ``block_size + 1`` tokens long and
    inside the run. A whole split is one run: its windows tile the stream."""
    run_starts, run_ends = store.runs()  # (R,), (R,)
    per_run = np.maximum(run_ends - run_starts - 1, 0) // block_size  # (R,) windows in each
    first_of_run = np.repeat(np.cumsum(per_run) - per_run, per_run)  # (W,)
    within = np.arange(int(per_run.sum())) - first_of_run  # (W,) j inside its run
    return np.repeat(run_starts, per_run) + within * block_size


def matched_eval_sets(
    stores: Mapping[str, TokenStore],
    block_size: int,
    batch_size: int,
    seed: int,
    mode: str = "packed",
    reference: str = "test",
    max_rows: int | None = None,
) -> dict[str, list[Batch]]:
    """Evaluation sets for precise losses: the whole ``reference`` split (or a fixed sample of
    ``max_rows`` of its rows), and for every other split a fixed sample of as many rows (all of
    it if it holds fewer), so train and test losses are measured on equal numbers of tokens and
    their standard errors are comparable."""
    if reference not in stores:
        raise ValueError(f"reference split {reference!r} is not among the stores {sorted(stores)}")
    rows = eval_items(stores[reference], block_size, mode)
    if max_rows is not None:
        rows = min(rows, max_rows)
    n_batches = max(1, -(-rows // batch_size))  # ceil: every row of the reference split
    return {
        split: eval_batches(store, block_size, batch_size, n_batches, seed, mode, max_rows=rows)
        for split, store in stores.items()
    }


def packed_batch(store: TokenStore, starts: np.ndarray, block_size: int) -> Batch:
    """Rows are the windows ``tokens[start : start + block_size + 1]``."""
    index = starts[:, None] + np.arange(block_size + 1)  # (B, T+1)
    windows = np.asarray(store.tokens[index], dtype=np.int64)  # (B, T+1)
    return Batch(_tensor(windows[:, :-1]), _tensor(windows[:, 1:]))


def padded_batch(store: TokenStore, docs: np.ndarray, block_size: int) -> Batch:
    """Rows are documents from their start, cut to ``block_size + 1`` tokens, padded."""
    sequences, valid = _document_rows(store, docs, block_size + 1, drop_last=False)  # (B, T+1)
    inputs = np.where(valid[:, :-1], sequences[:, :-1], store.eot_id)
    targets = np.where(valid[:, 1:], sequences[:, 1:], IGNORE_INDEX)
    return Batch(_tensor(inputs), _tensor(targets))


def starter_batch(store: TokenStore, docs: np.ndarray, block_size: int) -> Batch:
    """The starter's rows: documents without EOT, cut to ``block_size``, 0-padded and counted."""
    sequences, valid = _document_rows(store, docs, block_size, drop_last=True)  # (B, T)
    inputs = np.where(valid, sequences, STARTER_PAD_ID)  # (B, T)
    # The starter pads to the longest row L and scores tokens[1:L] of the padded batch.
    n_scored = max(int(valid.sum(axis=1).max()) - 1, 0)
    targets = np.full_like(inputs, IGNORE_INDEX)  # (B, T)
    targets[:, :n_scored] = inputs[:, 1 : n_scored + 1]
    return Batch(_tensor(inputs), _tensor(targets))


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def _document_rows(
    store: TokenStore, docs: np.ndarray, width: int, drop_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``width`` tokens of each document (B, width) and a mask of real tokens."""
    lengths = store.doc_lengths[docs] - (1 if drop_last else 0)  # (B,)
    offsets = np.arange(width)  # (width,)
    valid = offsets < lengths[:, None]  # (B, width)
    last = np.maximum(lengths - 1, 0)[:, None]  # (B, 1): stay inside each document
    index = store.doc_starts[docs][:, None] + np.minimum(offsets, last)  # (B, width)
    return np.asarray(store.tokens[index], dtype=np.int64), valid


def _source_groups(
    store: TokenStore, source_weights: Mapping[str, float] | None
) -> list[tuple[str, float, np.ndarray]]:
    """(description, probability, document indices) of each group that rows are drawn from."""
    if source_weights is None:
        return [("the store", 1.0, np.arange(store.n_documents))]
    if not isinstance(source_weights, Mapping):
        raise TypeError(f"source_weights must be a mapping or None, got {source_weights!r}")
    unknown = sorted(set(source_weights) - set(store.sources))
    if unknown:
        raise ValueError(f"source_weights names unknown sources {unknown}; known: {store.sources}")
    for name, weight in source_weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            raise ValueError(f"source_weights[{name!r}] must be a number >= 0, got {weight!r}")
    total = sum(source_weights.values())
    if not 0 < total < float("inf"):
        raise ValueError(f"source_weights must have a positive finite sum, got {source_weights}")
    return [
        (
            f"source {name!r}",
            weight / total,
            np.flatnonzero(store.doc_sources == store.sources.index(name)),
        )
        for name, weight in source_weights.items()
        if weight > 0
    ]


class _DocumentPool:
    """Draws documents uniformly from a set of documents."""

    def __init__(self, docs: np.ndarray):
        self.docs = docs
        self.size = len(docs)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.docs[rng.integers(0, self.size, size=n)]


def document_runs(store: TokenStore, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) token offsets (R,), (R,) of the maximal runs of the documents ``docs``
    (sorted indices into ``store``) that follow one another in the token array with no gap."""
    starts = store.doc_starts[docs]  # (D,)
    ends = starts + store.doc_lengths[docs]  # (D,)
    if len(docs) == 0:
        return starts, ends
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1  # (R - 1,) a run begins at each
    return starts[np.r_[0, breaks]], ends[np.r_[breaks - 1, len(docs) - 1]]


class _WindowPool:
    """Draws window starts uniformly from the windows inside runs of the given documents.

    A run is a maximal set of documents contiguous in the token array (``document_runs``); a
    run of L tokens holds L - block_size windows of block_size + 1 tokens.
    """

    def __init__(self, store: TokenStore, docs: np.ndarray, block_size: int):
        self.run_starts, run_ends = document_runs(store, docs)  # (R,), (R,) token offsets
        self.counts = np.maximum(run_ends - self.run_starts - block_size, 0)  # (R,)
        self.cumulative = np.cumsum(self.counts)  # (R,)
        self.size = int(self.counts.sum())

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.integers(0, self.size, size=n)  # (n,) an index over all windows of the pool
        run = np.searchsorted(self.cumulative, u, side="right")  # (n,)
        return self.run_starts[run] + u - (self.cumulative[run] - self.counts[run])
