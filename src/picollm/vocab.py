"""The model's token table: GPT-2's 50,257 ids, or a compact table of the ids that occur.

Text in and out is always GPT-2 BPE; a :class:`Vocabulary` maps GPT-2 ids to the ids a model
sees ("model ids") and back. Two kinds:

* ``gpt2``: the identity; the model's output layer has all 50,257 rows.
* ``compact``: built from the training split only (:meth:`Vocabulary.build`). GPT-2 ids are
  ordered by their count in the training tokens, most frequent first (ties by GPT-2 id); those seen
  at least ``min_count`` times are kept, at most ``max_size - 1`` of them, and end-of-text is always
  kept. Model id ``i < size - 1`` is GPT-2 id ``gpt2_ids[i]``; the last model id, ``size - 1``, is
  the unknown id, which stands for every other GPT-2 id and decodes to :data:`UNKNOWN_MARKER`.
  The TinyStories paper trained its small models on the most common 10K tokens for the same
  reason (Eldan & Li, 2023, arXiv 2305.07759): the output layer over tokens that never occur is
  most of a small model's compute.

Losses over compact ids count a token outside the table as one class, so they are not comparable
with ``gpt2`` losses; :meth:`Vocabulary.unknown_share` says how much of a split that concerns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from picollm.files import read_json, write_json
from picollm.tokenizer import EOT_ID, VOCAB_SIZE, get_encoding

KINDS = ("compact", "gpt2")
UNKNOWN_MARKER = "\N{REPLACEMENT CHARACTER}"
VOCAB_FILE = "vocab.json"


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """A map between GPT-2 ids and model ids (see the module doc)."""

    gpt2_ids: np.ndarray | None  # (size - 1,) int64 GPT-2 id of each known model id; None: gpt2
    rule: dict[str, Any]  # how it was built: {"kind", "max_size", "min_count"}

    def __post_init__(self) -> None:
        if self.gpt2_ids is None:
            return
        ids = self.gpt2_ids
        if ids.ndim != 1 or not len(ids) or ids.min() < 0 or ids.max() >= VOCAB_SIZE:
            raise ValueError("gpt2_ids must be a non-empty 1-D array of GPT-2 ids")
        if len(np.unique(ids)) != len(ids) or EOT_ID not in ids:
            raise ValueError("gpt2_ids must be distinct and hold end-of-text")

    # ------------------------------------------------------------------ construction

    @classmethod
    def gpt2(cls) -> Vocabulary:
        """GPT-2's full table (model ids are GPT-2 ids)."""
        return cls(None, {"kind": "gpt2"})

    @classmethod
    def build(cls, train_tokens: np.ndarray, max_size: int, min_count: int) -> Vocabulary:
        """The compact table of ``train_tokens`` (GPT-2 ids of the training split only)."""
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3:
            raise ValueError(f"max_size must be an int >= 3, got {max_size!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        counts = np.bincount(np.asarray(train_tokens, dtype=np.int64), minlength=VOCAB_SIZE)
        order = np.lexsort((np.arange(VOCAB_SIZE), -counts))  # by count down, then by id
        kept = order[counts[order] >= min_count][: max_size - 1]
        if EOT_ID not in kept:  # documents always end with it: it must be predictable
            kept = np.append(kept[: max_size - 2], EOT_ID)
        rule = {"kind": "compact", "max_size": max_size, "min_count": min_count}
        return cls(kept.astype(np.int64), rule)

    @classmethod
    def for_params(cls, data: dict[str, Any], train_tokens: np.ndarray) -> Vocabulary:
        """The vocabulary the ``data.vocab*`` params ask for."""
        if data["vocab"] == "gpt2":
            return cls.gpt2()
        return cls.build(train_tokens, data["vocab_size"], data["vocab_min_count"])

    # ------------------------------------------------------------------ properties

    @property
    def kind(self) -> str:
        return self.rule["kind"]

    @property
    def size(self) -> int:
        """The number of model ids: a model's ``vocab_size``."""
        return VOCAB_SIZE if self.gpt2_ids is None else len(self.gpt2_ids) + 1

    @property
    def unk_id(self) -> int | None:
        """The model id of every GPT-2 token outside the table (None for ``gpt2``)."""
        return None if self.gpt2_ids is None else self.size - 1

    @property
    def eot_id(self) -> int:
        """The model id of end-of-text."""
        if self.gpt2_ids is None:
            return EOT_ID
        return int(np.flatnonzero(self.gpt2_ids == EOT_ID)[0])

    @property
    def name(self) -> str:
        """A short label for figures and metrics, e.g. ``compact-4096`` or ``gpt2-50257``."""
        return f"{self.kind}-{self.size}"

    # ------------------------------------------------------------------ mapping

    def encode_gpt2(self, ids: np.ndarray) -> np.ndarray:
        """GPT-2 ids (any shape) -> model ids (same shape, int64)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.gpt2_ids is None:
            return ids
        return self._to_model[ids]

    def decode_gpt2(self, ids: np.ndarray) -> np.ndarray:
        """Model ids (any shape) -> GPT-2 ids (int64); the unknown id becomes -1."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.gpt2_ids is None:
            return ids
        return np.append(self.gpt2_ids, -1)[ids]

    def encode_text(self, text: str) -> list[int]:
        """Model ids of ``text`` (GPT-2 BPE, no end-of-text); warns, naming them, if some of its
        tokens are outside the table (they become the unknown id)."""
        gpt2_ids = get_encoding().encode_ordinary(text)
        ids = self.encode_gpt2(np.array(gpt2_ids, dtype=np.int64))
        if self.unk_id is not None and (ids == self.unk_id).any():
            outside = np.array(gpt2_ids)[ids == self.unk_id]
            missing = sorted({get_encoding().decode([token]) for token in outside.tolist()})
            warnings.warn(
                f"{text!r}: tokens outside the {self.name} vocabulary become the unknown id: "
                + ", ".join(map(repr, missing)),
                UserWarning,
                stacklevel=2,
            )
        return ids.tolist()

    def decode_text(self, ids: Sequence[int]) -> str:
        """The text of model ids; each unknown id prints as :data:`UNKNOWN_MARKER`."""
        gpt2_ids = self.decode_gpt2(np.asarray(ids, dtype=np.int64)).tolist()
        decode = get_encoding().decode
        pieces, run = [], []
        for token in gpt2_ids:
            if token >= 0:
                run.append(token)
            else:
                pieces += [decode(run), UNKNOWN_MARKER]
                run = []
        pieces.append(decode(run))
        return "".join(pieces)

    def unknown_share(self, gpt2_tokens: np.ndarray) -> float:
        """The share of ``gpt2_tokens`` outside the table (0 for ``gpt2``, NaN if empty)."""
        if not len(gpt2_tokens):
            return float("nan")
        if self.gpt2_ids is None:
            return 0.0
        return float((self.encode_gpt2(gpt2_tokens) == self.unk_id).mean())

    @cached_property
    def _to_model(self) -> np.ndarray:
        """(VOCAB_SIZE,) int64: the model id of every GPT-2 id."""
        table = np.full(VOCAB_SIZE, self.size - 1, dtype=np.int64)
        table[self.gpt2_ids] = np.arange(len(self.gpt2_ids))
        return table

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.rule,
            "size": self.size,
            "eot_id": self.eot_id,
            "unk_id": self.unk_id,
            "gpt2_ids": None if self.gpt2_ids is None else self.gpt2_ids.tolist(),
        }

    def save(self, path: str | Path) -> None:
        """Write the table as JSON (atomically)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a table written by :meth:`save`."""
        record = read_json(path)
        rule = {key: record[key] for key in ("kind", "max_size", "min_count") if key in record}
        ids = record["gpt2_ids"]
        return cls(None if ids is None else np.asarray(ids, dtype=np.int64), rule)
