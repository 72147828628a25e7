"""The stories the data benchmarks read: the shared TinyStories sample, else the shipped excerpt."""

from __future__ import annotations

import warnings
from pathlib import Path

from picollm.data.sources import load_tinystories

SAMPLE = Path(__file__).parents[2] / "shared/data/tinystories/tinystories_sample.txt"


def benchmark_stories(cache_dir: Path) -> tuple[list[str], str]:
    """The TinyStories sample in ``../shared`` when present, else the excerpt shipped with picollm
    (the same stories, less the 232 held out); and a description of which."""
    if SAMPLE.is_file():
        with warnings.catch_warnings():  # the sample's cut-off last story is dropped, as expected
            warnings.simplefilter("ignore", RuntimeWarning)
            loaded = load_tinystories("local", n_train=None, local_path=SAMPLE, cache_dir=cache_dir)
        return loaded.documents[0].texts, f"TinyStories sample ({SAMPLE.name})"
    loaded = load_tinystories("excerpt", n_train=None, n_validation=0, cache_dir=cache_dir)
    return loaded.documents[0].texts, "the TinyStories excerpt shipped with picollm"
