"""``picollm sample-sweep``: the pipeline's p sweep of a trained model's samples.

For every p in ``sampling.top_p`` (and greedy decoding), it draws ``samples_per_prompt``
continuations of every prompt, writes them to a JSONL file and writes their diversity (distinct-n,
repetition), quality (mean per-token log-probability under the model) and copy rate (the share
of their n-grams found verbatim in the text the model trained on, and in the test split as the
control: ``memorisation``) to a JSON table.
To sample a model by hand, use ``picollm sample RUN_DIR`` (``picollm.sample_command``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from picollm.data.loader import TokenStore
from picollm.errors import UserError
from picollm.files import atomic_path, read_json, write_json
from picollm.generation import generate
from picollm.integrity import verify_files
from picollm.memorisation import DEFAULT_N, copy_rates
from picollm.pipeline import lineage
from picollm.stages import add_trained_model_options
from picollm.text_metrics import diversity_summary
from picollm.training import load_trained_model
from picollm.vocab import VOCAB_FILE, Vocabulary

GREEDY = "greedy"
COPY_REFERENCE_FILES = [f"{s}.{kind}.npy" for s in ("train", "test") for kind in ("tokens", "docs")]
"""The split's files the copy rates read (beside split.json, checked against its hashes)."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_trained_model_options(parser)
    parser.add_argument(
        "--split", type=Path, required=True, help="split.json: the texts copy rates compare with"
    )
    parser.add_argument("--samples", type=Path, required=True, help="JSONL file for the samples")
    parser.add_argument("--summary", type=Path, required=True, help="JSON file for diversity per p")
    parser.add_argument(
        "--table",
        type=Path,
        required=True,
        help="TSV of the first sample of each prompt at each p (for the report)",
    )


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    settings = params["sampling"]
    prompts = _as_list(settings["prompt"])
    sweep = [GREEDY] * settings["greedy"] + settings["top_p"]

    model = load_trained_model(args.weights, args.run)
    vocabulary = Vocabulary.load(args.weights.parent / VOCAB_FILE)
    encoded = [vocabulary.encode_text(prompt) for prompt in prompts]
    if not all(encoded):
        raise UserError("sampling.prompt: every prompt needs at least one token")
    repeated = [tokens for tokens in encoded for _ in range(settings["samples_per_prompt"])]
    trained_on, test = _copy_references(args.split, read_json(args.run)["data_fraction"])

    rows, records = [], []
    for p in sweep:
        generation = generate(
            model,
            repeated,
            settings["max_new_tokens"],
            temperature=settings["temperature"],
            top_k=settings["top_k"],
            top_p=None if p == GREEDY else p,
            greedy=p == GREEDY,
            seed=settings["seed"],
            stop_token=vocabulary.eot_id if settings["stop_at_eot"] else None,
        )
        continuations = [np.asarray(tokens) for tokens in generation.tokens]
        rows.append(
            {
                "p": p,
                **diversity_summary(generation.tokens, generation.logprobs),
                "copy_rate": {
                    **_defined(copy_rates(continuations, trained_on, test)),
                    "n": DEFAULT_N,
                },
            }
        )
        for index, (tokens, logprobs) in enumerate(
            zip(generation.tokens, generation.logprobs, strict=True)
        ):
            prompt = prompts[index // settings["samples_per_prompt"]]
            records.append(
                {
                    "model": args.model,
                    "p": p,
                    "seed": settings["seed"],
                    "sample": index,
                    "prompt": prompt,
                    "text": vocabulary.decode_text(tokens),
                    "tokens": tokens,
                    "logprobs": [round(x, 6) for x in logprobs],
                }
            )

    with atomic_path(args.samples) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    _write_table(records, settings["samples_per_prompt"], args.table)
    write_json(
        args.summary,
        {
            "model": args.model,
            "vocab": vocabulary.name,
            "by_p": rows,
            "lineage": lineage.record(
                "sample",
                [
                    args.weights,
                    args.run,
                    args.weights.parent / VOCAB_FILE,
                    args.split,
                    *(args.split.parent / name for name in COPY_REFERENCE_FILES),
                ],
                params,
            ),
        },
    )


def _write_table(records: list[dict[str, Any]], per_prompt: int, target: Path) -> None:
    """The first sample of each prompt at each p, as a readable TSV."""

    rows = [
        {"p": r["p"], "prompt": r["prompt"], "continuation": r["text"].replace("\n", " ")}
        for r in records
        if r["sample"] % per_prompt == 0
    ]
    with atomic_path(target) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)


def _defined(rates: dict[str, float]) -> dict[str, float | None]:
    """The rates with NaN (no sample long enough to hold one n-gram) as None, for JSON."""
    return {name: None if math.isnan(rate) else rate for name, rate in rates.items()}


def _copy_references(split: Path, data_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Model ids of the text a run trained on (its ``data_fraction`` of the train split, each
    contiguous stretch in turn) and of the whole test split."""
    verify_files(split, COPY_REFERENCE_FILES)
    train = TokenStore.open(split.parent, "train").first_fraction(data_fraction)
    test = TokenStore.open(split.parent, "test")
    return tuple(
        np.concatenate(
            [np.asarray(store.tokens[start:end]) for start, end in zip(*store.runs(), strict=True)]
        )
        for store in (train, test)
    )


def _as_list(prompt: str | list[str]) -> list[str]:
    return [prompt] if isinstance(prompt, str) else list(prompt)
