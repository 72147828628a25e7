"""``picollm three-seqs``: write the course's 3seqs.txt, byte for byte."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from picollm.data.three_seqs import write_three_seqs


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="where to write 3seqs.txt")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    write_three_seqs(args.out)
    print(f"wrote {args.out}")
