"""Build the TinyStories excerpt shipped inside the package (real stories when the Hub is out of
reach; :func:`picollm.data.sources.excerpt_dir` finds it).

The excerpt is every complete story of a 2 MiB sample of TinyStories' train split (Eldan & Li,
2023, arXiv 2305.07759; CDLA-Sharing-1.0, see ``tinystories_excerpt/LICENSE.txt``). The last
``VALIDATION_SHARE`` of its stories are held out as its validation split, since the sample holds no
official validation stories. Both splits are Parquet files with a ``text`` column, laid out as a
Hugging Face dataset folder (``train.parquet``, ``validation.parquet``), so
``datasets.load_dataset(excerpt_dir(), split=...)`` reads it through the same call as the Hub.

``python -m picollm.data.excerpt SAMPLE.txt OUT_DIR`` rebuilds it from the sample file.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from picollm.data.sources import load_tinystories
from picollm.files import atomic_path

VALIDATION_SHARE = 0.1
SPLIT_FILES = {"train": "train.parquet", "validation": "validation.parquet"}


def build_excerpt(sample: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write the excerpt's two Parquet files from a TinyStories ``.txt`` sample; return the
    number of stories per split. Text after the last ``<|endoftext|>`` line (a cut-off story) is
    dropped, as when the sample is read as a local TinyStories file."""
    out_dir = Path(out_dir)
    read = load_tinystories("local", n_train=None, n_validation=0, local_path=sample)
    stories = read.documents[0].texts
    n_validation = math.ceil(VALIDATION_SHARE * len(stories))
    splits = {"train": stories[:-n_validation], "validation": stories[-n_validation:]}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, texts in splits.items():
        with atomic_path(out_dir / SPLIT_FILES[split]) as tmp:
            pq.write_table(pa.table({"text": texts}), tmp, compression="zstd", compression_level=19)
    return {split: len(texts) for split, texts in splits.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sample", type=Path, help="a TinyStories .txt file (<|endoftext|> lines)")
    parser.add_argument("out_dir", type=Path, help="the folder to write the Parquet files to")
    args = parser.parse_args(argv)
    print(build_excerpt(args.sample, args.out_dir))


if __name__ == "__main__":
    main()
