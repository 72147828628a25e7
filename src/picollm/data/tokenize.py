"""GPT-2 tokenisation of many documents at once, each followed by ``<|endoftext|>``.

tiktoken encodes the text between special tokens independently, so encoding
``doc_1 + EOT + doc_2 + EOT + ...`` with ``<|endoftext|>`` allowed gives exactly
``encode_ordinary(doc_1) + [EOT_ID] + encode_ordinary(doc_2) + [EOT_ID] + ...``. We join
consecutive documents into coarse chunks of about ``chunk_chars`` characters and encode each chunk
with ``encode_to_numpy`` (no Python list of ints: 1.1-1.2x faster than ``encode_ordinary``), then
cut the result at the EOT ids. Per-document calls are slower: each pays a fixed overhead.
``num_threads > 1`` encodes chunks on a thread pool (tiktoken releases the GIL), but on the
project's 2-core machine two threads were slower than one (``benchmarks/bench_data.py``), hence
the default of 1. A chunk with a document whose text contains the literal string
``<|endoftext|>`` is encoded document by document with ``encode_ordinary``, so that string stays
ordinary text.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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


def tokenize_documents(
    texts: Sequence[str], num_threads: int = 1, chunk_chars: int = DEFAULT_CHUNK_CHARS
) -> TokenizedDocuments:
    """GPT-2 tokens of every text followed by ``<|endoftext|>`` (id 50256), in order."""
    if not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
    if not isinstance(chunk_chars, int) or chunk_chars < 1:
        raise ValueError(f"chunk_chars must be an int >= 1, got {chunk_chars!r}")
    chunks = _chunk(texts, chunk_chars)
    if num_threads == 1 or len(chunks) == 1:
        parts = [_encode_chunk(chunk) for chunk in chunks]
    else:
        with ThreadPoolExecutor(num_threads) as pool:
            parts = list(pool.map(_encode_chunk, chunks))
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
    ends = np.flatnonzero(tokens == EOT_ID) + 1
    if len(ends) != len(texts):  # ordinary encoding never emits EOT_ID, so this cannot happen
        raise AssertionError(f"expected {len(texts)} end-of-text tokens, found {len(ends)}")
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    return TokenizedDocuments(tokens=tokens, offsets=offsets)


def _chunk(texts: Sequence[str], chunk_chars: int) -> list[Sequence[str]]:
    """Consecutive runs of texts holding about ``chunk_chars`` characters each."""
    chunks, start, size = [], 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= chunk_chars:
            chunks.append(texts[start : i + 1])
            start, size = i + 1, 0
    if start < len(texts):
        chunks.append(texts[start:])
    return chunks


def _encode_chunk(texts: Sequence[str]) -> np.ndarray:
    encoding = get_encoding()
    joined = EOT_TOKEN.join(texts) + EOT_TOKEN
    if joined.count(EOT_TOKEN) == len(texts):  # no text holds the literal "<|endoftext|>"
        return encoding.encode_to_numpy(joined, allowed_special={EOT_TOKEN}).astype(np.uint16)
    ids = [t for text in texts for t in (*encoding.encode_ordinary(text), EOT_ID)]
    return np.array(ids, dtype=np.uint16)
