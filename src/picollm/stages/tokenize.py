"""``picollm tokenize``: gather every source, tokenise with GPT-2 BPE, write the corpus Parquet."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from picollm.data.corpus import build_corpus, corpus_metadata_path, describe_tinystories
from picollm.data.tokenize import usable_cpus
from picollm.errors import UserError
from picollm.pipeline import lineage
from picollm.stages import announce


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the corpus Parquet to write")
    parser.add_argument("--metadata", type=Path, required=True, help="its JSON description")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="tokeniser processes, at most the CPUs this process may use (default: all of them)",
    )


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    # `datasets` imports torch when it can (1-2 s), only to share an epoch counter with DataLoader
    # workers; this stage has no use for torch, and its tokeniser processes fork faster without it.
    os.environ.setdefault("USE_TORCH", "0")

    if corpus_metadata_path(args.out) != args.metadata:
        raise UserError(f"--metadata must be {corpus_metadata_path(args.out)} (beside --out)")
    data = params["data"]
    inputs = [*data["input_files"], *_local_files(data)]
    summary = build_corpus(
        args.out,
        tinystories=_tinystories(data) if data["tinystories_weight"] > 0 else None,
        input_files=data["input_files"],
        document_mode=data["document_mode"],
        generated=data["generated"],
        workers=min(args.workers or usable_cpus(), usable_cpus()),
        lineage=lambda: lineage.record("tokenize", inputs, params, outputs=[str(args.out)]),
    )
    print(f"wrote {args.out}: {summary['documents']} documents, {summary['tokens']} tokens")
    if summary["tinystories_source"] is not None:
        announce(f"picollm tokenize: {describe_tinystories(summary)}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return number


def _local_files(data: dict[str, Any]) -> list[str]:
    """The local TinyStories file, when one was read (folders are hashed by the corpus JSON)."""
    path = data["tinystories"]["path"]
    used = data["tinystories_weight"] > 0 and path is not None and Path(path).is_file()
    return [path] if used else []


def _tinystories(data: dict[str, Any]) -> dict[str, Any]:
    """The loader's arguments from the ``data.tinystories`` params."""
    spec = data["tinystories"]
    return {
        "mode": spec["source"],
        "local_path": spec["path"],
        "n_train": spec["max_stories"],
        "n_validation": spec["max_validation_stories"],
        "seed": spec["seed"],
        "hub_timeout": spec["hub_timeout"],
    }
