"""Tokenise documents from every source into one Parquet corpus, with a JSON description beside it.

Parquet schema, one row per document, in source order (TinyStories, input files, generated):

* ``doc_id`` int64: a stable 63-bit id, the hash of (source, split, content_hash, how often
  that content occurred before in that source and split);
* ``source`` string: ``"tinystories"``, an input file's name (``"3seqs.txt"``), or the name
  of a generated corpus (``"counting"``);
* ``split`` string, nullable: ``"train"``/``"validation"`` where the source defines splits;
* ``n_tokens`` int32: the length of ``tokens``;
* ``logprob`` double, nullable: the natural log-probability of the document under its
  generating process, where known (generated documents);
* ``content_hash`` int64: a 63-bit hash of ``tokens``; equal documents have equal hashes;
* ``tokens`` list<uint16>: the GPT-2 token ids of the text, then ``<|endoftext|>`` (50256).

``doc_id`` does not move when sources are added or more stories are read (it is keyed by content),
so a split keyed on it (:mod:`picollm.data.split`) is stable too.

The JSON (``corpus_metadata_path``) records, per source: documents, tokens, documents per split,
the SHA-256 of its input files (or of its text), its provenance, and for generated sources the
total information ``nats`` and the entropy floor in nats per token (sum of -log p(doc) over
tokens including the end-of-text tokens); plus the Parquet's SHA-256 and the TinyStories mode
actually used.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from picollm.data.sources import (
    MAX_LINE_CHARS,
    TINYSTORIES_SOURCE,
    Documents,
    input_file_documents,
    load_tinystories,
)
from picollm.data.synthetic import generate
from picollm.data.tokenize import TokenizedDocuments, TokenizerPool, tokenize_documents
from picollm.files import atomic_path, sha256_file, write_json
from picollm.tokenizer import ENCODING_NAME, EOT_ID, EOT_TOKEN

CORPUS_FORMAT = "picollm-corpus/1"
ROW_GROUP_ROWS = 65_536
SCHEMA = pa.schema(
    [
        ("doc_id", pa.int64()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("n_tokens", pa.int32()),
        ("logprob", pa.float64()),
        ("content_hash", pa.int64()),
        ("tokens", pa.list_(pa.uint16())),
    ]
)
GENERATED_KEYS = frozenset({"generator", "n_docs", "seed", "params"})
TINYSTORIES_KEYS = frozenset(inspect.signature(load_tinystories).parameters)


def corpus_metadata_path(corpus_path: str | Path) -> Path:
    """The JSON beside a corpus Parquet: ``corpus.parquet`` -> ``corpus.json``."""
    return Path(corpus_path).with_suffix(".json")


def build_corpus(
    out_path: str | Path,
    *,
    tinystories: Mapping[str, Any] | None = None,
    input_files: Sequence[str | Path] = (),
    document_mode: str = "line",
    generated: Mapping[str, Mapping[str, Any]] | None = None,
    workers: int = 1,
    max_line_chars: int = MAX_LINE_CHARS,
    lineage: Callable[[], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Gather documents from every source, tokenise them and write the corpus; return its JSON.

    ``tinystories``: keyword arguments of :func:`~picollm.data.sources.load_tinystories`
    (``mode``, ``n_train``, ``n_validation``, ``local_path``, ``seed``, ``hub_timeout``,
    ``cache_dir``), or None for no TinyStories. ``input_files``: text files, one source each named
    by the file name, read with ``document_mode`` (``line``/``block``). ``generated``: source
    name -> ``{"n_docs": int, "seed": int, "generator": str (default: the source name),
    "params": {...}}``. ``workers``: tokeniser processes (a
    :class:`~picollm.data.tokenize.TokenizerPool`, started before any source is read).
    ``lineage``: called once every source has been read (so the files it hashes exist); its
    record goes into the JSON (see ``picollm.pipeline.lineage.record``). Input files and generator
    settings are all checked before TinyStories is loaded and before anything is tokenised.
    """
    _check_keys("tinystories", tinystories or {}, TINYSTORIES_KEYS)
    generated = dict(generated or {})
    for name, spec in generated.items():
        _check_keys(f"generated[{name!r}]", spec, GENERATED_KEYS, required={"n_docs", "seed"})
    names = [Path(p).name for p in input_files] + list(generated)
    if tinystories is not None:
        names.append(TINYSTORIES_SOURCE)
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"source names must be unique; repeated: {duplicates}")

    with TokenizerPool(workers) as tokenizer:  # before the sources fill this process's memory
        documents = [input_file_documents(p, document_mode, max_line_chars) for p in input_files]
        documents += [_generated_documents(name, spec) for name, spec in generated.items()]
        tinystories_used = None
        if tinystories is not None:
            loaded = load_tinystories(**tinystories)
            documents = loaded.documents + documents
            tinystories_used = loaded.used
        return write_corpus_parquet(
            out_path, documents, tokenizer, tinystories_used, None if lineage is None else lineage()
        )


def write_corpus_parquet(
    out_path: str | Path,
    documents: Sequence[Documents],
    tokenizer: TokenizerPool | None = None,
    tinystories_used: str | None = None,
    lineage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Tokenise ``documents`` (with ``tokenizer``, else in this process alone) and write the
    corpus Parquet and its JSON (with ``lineage`` as is, when given), atomically."""
    out_path = Path(out_path)
    texts = [text for docs in documents for text in docs.texts]
    tokenized = tokenize_documents(texts) if tokenizer is None else tokenizer.tokenize(texts)
    n_tokens = np.diff(tokenized.offsets)
    sources = [docs.source for docs in documents for _ in docs.texts]
    splits = [docs.split for docs in documents for _ in docs.texts]
    logprobs = [lp for docs in documents for lp in (docs.logprobs or [None] * len(docs.texts))]
    content_hashes = [_hash63(tokenized.document(i).tobytes()) for i in range(len(texts))]
    doc_ids = _doc_ids(sources, splits, content_hashes)
    table = pa.Table.from_arrays(
        [
            pa.array(doc_ids, pa.int64()),
            pa.array(sources, pa.string()),
            pa.array(splits, pa.string()),
            pa.array(n_tokens, pa.int32()),
            pa.array(logprobs, pa.float64()),
            pa.array(content_hashes, pa.int64()),
            _token_lists(tokenized),
        ],
        schema=SCHEMA,
    )
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, compression="zstd")
    metadata = {
        "format": CORPUS_FORMAT,
        "parquet": out_path.name,
        "parquet_sha256": sha256_file(out_path),
        "tokenizer": ENCODING_NAME,
        "eot_id": EOT_ID,
        "documents": len(texts),
        "tokens": int(n_tokens.sum()),
        "tinystories_source": tinystories_used,
        "sources": _source_summaries(documents, n_tokens),
    }
    if lineage is not None:
        metadata["lineage"] = dict(lineage)
    write_json(corpus_metadata_path(out_path), metadata)
    return metadata


TINYSTORIES_DESCRIPTIONS = {
    "hub": "real TinyStories from the Hugging Face Hub",
    "local": "real TinyStories from local files",
    "excerpt": "real TinyStories from the excerpt shipped with picollm (the Hub was not used)",
    "generated": "SYNTHETIC stories of the 10-word story grammar, not real TinyStories",
}


def describe_tinystories(metadata: Mapping[str, Any]) -> str:
    """One line saying where a corpus's TinyStories came from and how many stories it holds."""
    used = metadata["tinystories_source"]
    splits = metadata["sources"][TINYSTORIES_SOURCE]["splits"]
    counts = ", ".join(f"{n:,} {split}" for split, n in splits.items())
    return f"TinyStories source: {used}: {TINYSTORIES_DESCRIPTIONS[used]} ({counts} stories)"


def _check_keys(
    what: str, given: Mapping[str, Any], allowed: Set[str], required: Set[str] = frozenset()
) -> None:
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(given).__name__}")
    if unknown := given.keys() - allowed:
        raise ValueError(f"{what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if missing := required - given.keys():
        raise ValueError(f"{what}: missing key(s) {sorted(missing)}")


def _generated_documents(name: str, spec: Mapping[str, Any]) -> Documents:
    generator = spec.get("generator", name)
    corpus = generate(generator, spec["n_docs"], spec["seed"], spec.get("params"))
    origin = {"generator": generator, "params": corpus.params, "seed": corpus.seed}
    return Documents(name, corpus.texts, None, corpus.logprobs, origin)


def _hash63(data: bytes) -> int:
    """A 63-bit (non-negative int64) BLAKE2b hash."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def _doc_ids(
    sources: Sequence[str], splits: Sequence[str | None], content_hashes: Sequence[int]
) -> list[int]:
    seen: Counter[tuple[str, str | None, int]] = Counter()
    doc_ids = []
    for key in zip(sources, splits, content_hashes, strict=True):
        occurrence = seen[key]
        seen[key] += 1
        source, split, content = key
        name = f"{source}\x00{split or ''}\x00".encode()
        doc_ids.append(
            _hash63(name + content.to_bytes(8, "little") + occurrence.to_bytes(8, "little"))
        )
    if len(set(doc_ids)) != len(doc_ids):  # 63-bit hashes: about n^2 / 2^64, never in practice
        raise RuntimeError("doc_id hash collision; please report it")
    return doc_ids


def _token_lists(tokenized: TokenizedDocuments) -> pa.ListArray:
    if tokenized.offsets[-1] >= 2**31:
        raise ValueError(
            f"a corpus holds at most 2**31 - 1 tokens, got {tokenized.offsets[-1]:,}; "
            "build smaller corpora"
        )
    offsets = pa.array(tokenized.offsets.astype(np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(tokenized.tokens, pa.uint16()))


def _source_summaries(documents: Sequence[Documents], n_tokens: np.ndarray) -> dict[str, Any]:
    """Per source: counts, hashes, provenance and (when every document's is known) entropy."""
    summaries: dict[str, Any] = {}
    start = 0
    for docs in documents:
        tokens = int(n_tokens[start : start + len(docs.texts)].sum())
        start += len(docs.texts)
        summary = summaries.setdefault(
            docs.source,
            {
                "documents": 0,
                "tokens": 0,
                "splits": {},
                "text_sha256": [],
                "origins": [],
                "nats": 0.0,
            },
        )
        summary["documents"] += len(docs.texts)
        summary["tokens"] += tokens
        summary["splits"][docs.split or "none"] = len(docs.texts)
        summary["text_sha256"].append(_text_sha256(docs.texts))
        summary["origins"].append(docs.origin)
        if summary["nats"] is not None and docs.logprobs is not None:
            summary["nats"] += -math.fsum(docs.logprobs)
        else:
            summary["nats"] = None
    for summary in summaries.values():
        known = summary["nats"] is not None and summary["tokens"] > 0
        summary["entropy_floor_nats_per_token"] = (
            summary["nats"] / summary["tokens"] if known else None
        )
    return summaries


def _text_sha256(texts: Sequence[str]) -> str:
    """SHA-256 of the texts, each followed by ``<|endoftext|>``, as UTF-8."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(EOT_TOKEN.encode())
    return digest.hexdigest()
