"""``picollm split``: the deterministic train/test split by document, plus the fast token arrays."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.data.corpus import corpus_metadata_path
from picollm.data.split import split_corpus
from picollm.integrity import verify_files
from picollm.pipeline import lineage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="the corpus Parquet (its sha256 is checked against the corpus.json beside it)",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        required=True,
        help="split.json to write; the split's other files go beside it",
    )


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    verify_files(corpus_metadata_path(args.corpus), [args.corpus.name])  # before any work
    split = params["split"]
    summary = split_corpus(
        args.corpus,
        test_fraction=split["test_fraction"],
        seed=split["seed"],
        tinystories_test=split["tinystories_test"],
        out_dir=args.summary.parent,
        lineage=lineage.record("split", [args.corpus], params),
        vocab_rule=params["data"],
    )
    counts = {split: summary["splits"][split]["documents"] for split in ("train", "test")}
    unknown = {s: f"{summary['splits'][s]['unknown_token_share']:.2%}" for s in ("train", "test")}
    print(
        f"wrote {args.summary.parent}: documents per split {counts}; vocabulary "
        f"{summary['vocab']['name']}, tokens outside it {unknown}"
    )
