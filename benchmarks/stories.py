"""The stories the data benchmarks read: the shared TinyStories sample, else generated ones."""

from __future__ import annotations

import warnings
from pathlib import Path

from picollm.data.sources import load_tinystories
from picollm.data.synthetic import generate

SAMPLE = Path(__file__).parents[2] / "shared/data/tinystories/tinystories_sample.txt"


def benchmark_stories(cache_dir: Path) -> tuple[list[str], str]:
    """The TinyStories sample in ``../shared`` when present, else 5,000 story-grammar stories
    (about the same size); and a description of which."""
    if SAMPLE.is_file():
        with warnings.catch_warnings():  # the sample's cut-off last story is dropped, as expected
            warnings.simplefilter("ignore", RuntimeWarning)
            loaded = load_tinystories("local", n_train=None, local_path=SAMPLE, cache_dir=cache_dir)
        return loaded.documents[0].texts, f"TinyStories sample ({SAMPLE.name})"
    return generate("story_grammar", 5_000, seed=0).texts, "5,000 story-grammar stories"
