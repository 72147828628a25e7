"""Synthetic corpora whose generating process, and so whose entropy, is known exactly.

Every generator draws one document with a :class:`~picollm.data.choices.Chooser`, which sums the
log-probability of each random choice. Each generator's text determines its choice path (argued
in its docstring, checked in the tests by enumerating tiny configurations), so that sum is
``log p(document)``. GPT-2 tokenisation is deterministic, so ``p(token sequence) = p(text)`` and

    entropy floor (nats / token) = sum over documents of -log p(doc)
                                   / total GPT-2 tokens, counting one <|endoftext|> per document,

the loss a perfect model of the process reaches on that corpus. Documents never contain a line
break: a written corpus has one document per line.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from picollm.data.choices import Chooser
from picollm.data.story_grammar import LEXICON_SIZE, story_document
from picollm.data.tokenize import tokenize_documents
from picollm.files import write_json, write_text

LETTERS = "abcdefghijklmnopqrstuvwxyz"
KEYS = LETTERS.upper()
OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


def counting_document(
    chooser: Chooser, *, max_start: int, max_step: int, min_terms: int, max_terms: int
) -> str:
    """An arithmetic progression, e.g. ``"5 8 11 14 17"``.

    Draws start ~ U{0..max_start}, step ~ U{1..max_step} and length n ~ U{min_terms..max_terms},
    writes the n numbers start, start + step, ... separated by spaces. With n >= 2 the text gives
    back start (first number), step (difference) and n (count), so
    log p = -log(max_start + 1) - log(max_step) - log(max_terms - min_terms + 1), for every doc.
    """
    start = chooser.choice(range(max_start + 1))
    step = chooser.choice(range(1, max_step + 1))
    n_terms = chooser.choice(range(min_terms, max_terms + 1))
    return " ".join(str(start + i * step) for i in range(n_terms))


def sequence_task_document(
    chooser: Chooser, *, reverse: bool, alphabet_size: int, min_len: int, max_len: int
) -> str:
    """Letters, ``|``, then the same letters copied or reversed: ``"a b c | c b a"``.

    Draws length L ~ U{min_len..max_len}, then L letters iid uniform over the first
    ``alphabet_size`` of a..z. The answer after ``|`` is determined, and the text gives back L and
    the letters, so log p = -log(max_len - min_len + 1) - L log(alphabet_size).
    """
    length = chooser.choice(range(min_len, max_len + 1))
    letters = [chooser.choice(LETTERS[:alphabet_size]) for _ in range(length)]
    answer = letters[::-1] if reverse else letters
    return f"{' '.join(letters)} | {' '.join(answer)}"


def modular_document(chooser: Chooser, *, modulus: int, ops: list[str]) -> str:
    """One equation ``"a op b mod m = c"``, e.g. ``"17 + 25 mod 31 = 11"``.

    Draws a ~ U{0..m-1}, op ~ U(ops), b ~ U{0..m-1}; c = (a op b) mod m is determined. The text
    gives back a, op and b, so log p = -2 log(m) - log(len(ops)), for every document.
    """
    a = chooser.choice(range(modulus))
    op = chooser.choice(ops)
    b = chooser.choice(range(modulus))
    return f"{a} {op} {b} mod {modulus} = {OPERATIONS[op](a, b) % modulus}"


def recall_document(chooser: Chooser, *, n_pairs: int, n_keys: int, n_values: int) -> str:
    """Key-value pairs, then a query: ``"C 7 A 3 F 1 | A -> 3"`` (associative recall/induction).

    Draws n = ``n_pairs`` distinct keys in order without replacement from the first ``n_keys``
    capital letters, each followed by a value ~ U{0..n_values-1}, then the queried pair ~ U over
    the n pairs; its value after ``->`` is determined. The text gives back every draw, so
    log p = -sum_{i<n} log(n_keys - i) - n log(n_values) - log(n).
    """
    remaining = list(KEYS[:n_keys])
    pairs = []
    for _ in range(n_pairs):
        key = chooser.choice(remaining)
        remaining.remove(key)
        pairs.append((key, chooser.choice(range(n_values))))
    key, value = chooser.choice(pairs)
    return " ".join(f"{k} {v}" for k, v in pairs) + f" | {key} -> {value}"


@dataclass(frozen=True)
class Generator:
    """A generating process: ``document(chooser, **params)`` and its parameters."""

    document: Callable[..., str]
    defaults: Mapping[str, Any]
    validate: Callable[[dict[str, Any]], None]  # raises ValueError naming the bad parameter


def _check_int(params: Mapping[str, Any], name: str, low: int, high: int) -> None:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"parameter {name!r} must be an int in [{low}, {high}], got {value!r}")


def _check_range(params: Mapping[str, Any], low: str, high: str) -> None:
    if params[low] > params[high]:
        raise ValueError(f"parameter {low!r} ({params[low]}) must be <= {high!r} ({params[high]})")


def _validate_counting(params: dict[str, Any]) -> None:
    _check_int(params, "max_start", 0, 10**9)
    _check_int(params, "max_step", 1, 10**9)
    _check_int(params, "min_terms", 2, 10_000)  # two terms reveal the step
    _check_int(params, "max_terms", 2, 10_000)
    _check_range(params, "min_terms", "max_terms")


def _validate_sequence_task(params: dict[str, Any]) -> None:
    _check_int(params, "alphabet_size", 1, len(LETTERS))
    _check_int(params, "min_len", 1, 10_000)
    _check_int(params, "max_len", 1, 10_000)
    _check_range(params, "min_len", "max_len")


def _validate_modular(params: dict[str, Any]) -> None:
    _check_int(params, "modulus", 2, 10**6)
    ops = params["ops"]
    if (
        not isinstance(ops, list)
        or not ops
        or len(set(ops)) != len(ops)
        or not set(ops) <= OPERATIONS.keys()
    ):
        raise ValueError(
            f"parameter 'ops' must be a non-empty list of distinct operators from "
            f"{sorted(OPERATIONS)}, got {ops!r}"
        )


def _validate_recall(params: dict[str, Any]) -> None:
    _check_int(params, "n_keys", 1, len(KEYS))
    _check_int(params, "n_pairs", 1, params["n_keys"])
    _check_int(params, "n_values", 1, 10)


def _validate_story(params: dict[str, Any]) -> None:
    _check_int(params, "lexicon_size", 1, LEXICON_SIZE)


_SEQUENCE_DEFAULTS = {"alphabet_size": 26, "min_len": 3, "max_len": 10}

GENERATORS: dict[str, Generator] = {
    "counting": Generator(
        counting_document,
        {"max_start": 99, "max_step": 9, "min_terms": 4, "max_terms": 16},
        _validate_counting,
    ),
    "copy": Generator(
        partial(sequence_task_document, reverse=False), _SEQUENCE_DEFAULTS, _validate_sequence_task
    ),
    "reverse": Generator(
        partial(sequence_task_document, reverse=True), _SEQUENCE_DEFAULTS, _validate_sequence_task
    ),
    "modular": Generator(modular_document, {"modulus": 97, "ops": ["+"]}, _validate_modular),
    "recall": Generator(
        recall_document, {"n_pairs": 6, "n_keys": 26, "n_values": 10}, _validate_recall
    ),
    "story_grammar": Generator(story_document, {"lexicon_size": LEXICON_SIZE}, _validate_story),
}


@dataclass(frozen=True)
class GeneratedCorpus:
    """Documents drawn from one generator, with the natural log-probability of each."""

    generator: str
    params: dict[str, Any]  # every parameter, defaults filled in
    seed: int
    texts: list[str] = field(repr=False)
    logprobs: list[float] = field(repr=False)

    @property
    def nats(self) -> float:
        """Total information content, the sum of -log p(doc) over the documents."""
        return -math.fsum(self.logprobs)


def resolve_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator's defaults updated with ``params``, validated."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {sorted(GENERATORS)}")
    generator = GENERATORS[name]
    params = dict(params or {})
    unknown = params.keys() - generator.defaults.keys()
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for generator {name!r}; "
            f"allowed: {sorted(generator.defaults)}"
        )
    resolved = {**generator.defaults, **params}
    generator.validate(resolved)
    return resolved


def generate(
    name: str, n_docs: int, seed: int, params: Mapping[str, Any] | None = None
) -> GeneratedCorpus:
    """Draw ``n_docs`` documents from generator ``name`` with a ``random.Random(seed)`` stream.

    Documents are drawn one after another from one stream, so the first k documents do not
    depend on ``n_docs``.
    """
    resolved = resolve_params(name, params)
    if isinstance(n_docs, bool) or not isinstance(n_docs, int) or n_docs < 0:
        raise ValueError(f"n_docs must be an int >= 0, got {n_docs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    document = GENERATORS[name].document
    rng = random.Random(seed)
    texts, logprobs = [], []
    for _ in range(n_docs):
        chooser = Chooser(rng)
        texts.append(document(chooser, **resolved))
        logprobs.append(chooser.logprob)
    return GeneratedCorpus(name, resolved, seed, texts, logprobs)


def sidecar_path(path: str | Path) -> Path:
    """Where :func:`write_corpus` puts the JSON description of a corpus file: ``<path>.json``."""
    return Path(f"{path}.json")


def write_corpus(
    name: str, path: str | Path, n_docs: int, seed: int, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write a generated corpus, one document per line, and its JSON sidecar; return the sidecar.

    The sidecar holds the generator, its parameters, the seed, the per-document log-probabilities,
    their total in nats, nats per document, the GPT-2 token count (one ``<|endoftext|>`` per
    document included) and the entropy floor in nats per token.
    """
    corpus = generate(name, n_docs, seed, params)
    n_tokens = len(tokenize_documents(corpus.texts).tokens)
    sidecar = {
        "generator": corpus.generator,
        "params": corpus.params,
        "seed": corpus.seed,
        "n_docs": n_docs,
        "tokens": n_tokens,
        "nats": corpus.nats,
        "nats_per_doc": corpus.nats / n_docs if n_docs else None,
        "nats_per_token": corpus.nats / n_tokens if n_tokens else None,
        "logprobs": corpus.logprobs,
    }
    write_text(path, "".join(text + "\n" for text in corpus.texts))
    write_json(sidecar_path(path), sidecar)
    return sidecar
