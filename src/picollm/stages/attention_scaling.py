"""``picollm attention-scaling``: time and memory of each attention op against sequence length."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from picollm.attention_scaling import scaling_points
from picollm.files import atomic_path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the TSV of measurements")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    study = params["attention_scaling"]
    points = scaling_points(
        study["lengths"],
        d_model=study["d_model"],
        n_heads=study["n_heads"],
        methods=study["methods"],
        repeats=study["repeats"],
        time_cap_s=study["time_cap_s"],
        threads=study["threads"],
    )
    with atomic_path(args.out) as tmp:
        pd.DataFrame(points).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    print(f"wrote {args.out}: {len(points)} points")
