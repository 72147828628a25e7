"""Generators: documented formats, determinism, and exact log-probabilities.

The oracle enumerates every choice path of a tiny configuration with a scripted chooser: the
probabilities must sum to one, no two paths may give the same text, and the log-probability
``generate`` reports for a sampled document must equal log p(text) found by enumeration.
"""

import json
import math
import random
import re

import pytest

from picollm.data.choices import Chooser
from picollm.data.story_grammar import LEXICON, LEXICON_SIZE
from picollm.data.synthetic import GENERATORS, generate, resolve_params, write_corpus
from picollm.tokenizer import get_encoding


class ScriptedChooser:
    """Takes the choice indices in ``script`` (then 0s); records the path and its probability."""

    def __init__(self, script):
        self.script = script
        self.path, self.branching = [], []
        self.probability = 1.0

    def choice(self, options, weights=None):
        depth = len(self.path)
        index = self.script[depth] if depth < len(self.script) else 0
        self.path.append(index)
        self.branching.append(len(options))
        self.probability *= weights[index] / sum(weights) if weights else 1 / len(options)
        return options[index]


def enumerate_paths(name, params, limit=20_000):
    """(text, probability) of every choice path of a generator, by depth-first search."""
    document, params = GENERATORS[name].document, resolve_params(name, params)
    stack, paths = [[]], []
    while stack:
        chooser = ScriptedChooser(stack.pop())
        paths.append((document(chooser, **params), chooser.probability))
        assert len(paths) <= limit, "configuration too large to enumerate"
        for depth in range(len(chooser.script), len(chooser.path)):
            stack.extend(chooser.path[:depth] + [j] for j in range(1, chooser.branching[depth]))
    return paths


TINY = {
    "counting": {"max_start": 2, "max_step": 2, "min_terms": 2, "max_terms": 3},
    "copy": {"alphabet_size": 2, "min_len": 1, "max_len": 3},
    "reverse": {"alphabet_size": 3, "min_len": 2, "max_len": 3},
    "modular": {"modulus": 3, "ops": ["+", "-", "*"]},
    "recall": {"n_pairs": 2, "n_keys": 3, "n_values": 2},
    "story_grammar": {"lexicon_size": 1},
}
# counting 3*2*2; copy 2+4+8; reverse 9+27; modular 3*3*3; recall 3*2*2*2*2; stories at one word
# per category: gender 2 * opening 3 * toy sentence 2 * plot paths (16+4+2+4) * ending 4
N_PATHS = {"counting": 12, "copy": 14, "reverse": 36, "modular": 27, "recall": 48}
N_PATHS["story_grammar"] = 2 * 3 * 2 * (16 + 4 + 2 + 4) * 4


def test_every_generator_has_a_tiny_configuration():
    assert set(TINY) == set(GENERATORS)


@pytest.mark.parametrize("name", sorted(TINY))
def test_enumeration_sums_to_one_and_texts_are_distinct(name):
    paths = enumerate_paths(name, TINY[name])
    texts = [text for text, _ in paths]
    assert len(set(texts)) == len(texts), "two choice paths give the same text"
    assert math.fsum(p for _, p in paths) == pytest.approx(1.0, abs=1e-12)
    assert len(paths) == N_PATHS[name]


@pytest.mark.parametrize("name", sorted(TINY))
def test_logprob_of_samples_matches_enumeration(name):
    probability = dict(enumerate_paths(name, TINY[name]))
    corpus = generate(name, 200, seed=3, params=TINY[name])
    for text, logprob in zip(corpus.texts, corpus.logprobs, strict=True):
        assert logprob == pytest.approx(math.log(probability[text]), abs=1e-9)
    assert corpus.nats == pytest.approx(-sum(corpus.logprobs))


def test_story_paths_never_collide_with_a_larger_lexicon():
    """At lexicon size 2 stories repeat often; equal texts must come from equal choice paths."""

    class RecordingChooser(Chooser):
        def choice(self, options, weights=None):
            value = super().choice(options, weights)
            self.path.append(list(options).index(value))
            return value

    document = GENERATORS["story_grammar"].document
    rng, paths_of = random.Random(0), {}
    for _ in range(3000):
        chooser = RecordingChooser(rng)
        chooser.path = []
        text = document(chooser, lexicon_size=2)
        paths_of.setdefault(text, set()).add(tuple(chooser.path))
    assert len(paths_of) < 3000  # repeats happened, so the check had something to check
    assert all(len(paths) == 1 for paths in paths_of.values())


def test_lexicon_words_are_single_distinct_words_in_one_category_each():
    words = [word for category in LEXICON.values() for word in category]
    assert all(len(category) == LEXICON_SIZE for category in LEXICON.values())
    assert all(re.fullmatch(r"[A-Za-z]+", word) for word in words)
    assert len(set(words)) == len(words)


def test_closed_form_log_probabilities():
    counting = generate("counting", 20, seed=1)
    assert counting.logprobs == [pytest.approx(-math.log(100) - math.log(9) - math.log(13))] * 20
    modular = generate("modular", 20, seed=1, params={"modulus": 31, "ops": ["+", "*"]})
    assert modular.logprobs == [pytest.approx(-2 * math.log(31) - math.log(2))] * 20
    recall = generate("recall", 20, seed=1, params={"n_pairs": 3, "n_keys": 5, "n_values": 4})
    expected = -math.log(5 * 4 * 3) - 3 * math.log(4) - math.log(3)
    assert recall.logprobs == [pytest.approx(expected)] * 20
    copy = generate("copy", 50, seed=1, params={"alphabet_size": 4, "min_len": 2, "max_len": 5})
    for text, logprob in zip(copy.texts, copy.logprobs, strict=True):
        length = len(text.split(" | ")[0].split())
        assert logprob == pytest.approx(-math.log(4) - length * math.log(4))


def test_documented_formats():
    for text in generate("counting", 50, seed=2).texts:
        numbers = [int(x) for x in text.split(" ")]
        steps = {b - a for a, b in zip(numbers, numbers[1:], strict=False)}
        assert 4 <= len(numbers) <= 16 and 0 <= numbers[0] <= 99 and len(steps) == 1
        assert 1 <= steps.pop() <= 9
    for name, flip in (("copy", False), ("reverse", True)):
        for text in generate(name, 50, seed=2).texts:
            left, right = text.split(" | ")
            assert re.fullmatch(r"[a-z]( [a-z]){2,9}", left)
            assert right.split() == (left.split()[::-1] if flip else left.split())
    params = {"modulus": 13, "ops": ["+", "-", "*"]}
    for text in generate("modular", 100, seed=2, params=params).texts:
        a, op, b, mod, m, eq, c = text.split(" ")
        assert (mod, m, eq) == ("mod", "13", "=") and 0 <= int(a) < 13 and 0 <= int(b) < 13
        assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] % 13
    for text in generate("recall", 50, seed=2).texts:
        pairs, query = text.split(" | ")
        items = pairs.split(" ")
        keys, values = items[0::2], items[1::2]
        key, arrow, value = query.split(" ")
        assert len(keys) == 6 == len(set(keys)) and arrow == "->"
        assert values[keys.index(key)] == value
    for text in generate("story_grammar", 50, seed=2).texts:
        assert "\n" not in text and text.endswith((".", '"'))
        assert re.match(r"(Once upon a time, there was a|There once was a|[A-Z][a-z]+ was a)", text)


def test_deterministic_for_a_seed_and_prefix_stable():
    for name in GENERATORS:
        first = generate(name, 30, seed=7)
        assert first.texts == generate(name, 30, seed=7).texts
        assert first.logprobs == generate(name, 30, seed=7).logprobs
        assert generate(name, 10, seed=7).texts == first.texts[:10]
        assert first.texts != generate(name, 30, seed=8).texts


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="unknown generator 'nope'"):
        generate("nope", 1, 0)
    with pytest.raises(ValueError, match="unknown parameter"):
        generate("counting", 1, 0, {"max_stop": 3})
    with pytest.raises(ValueError, match="'min_terms'"):
        generate("counting", 1, 0, {"min_terms": 1})
    with pytest.raises(ValueError, match="'min_len'.*'max_len'"):
        generate("copy", 1, 0, {"min_len": 5, "max_len": 4})
    with pytest.raises(ValueError, match="'ops'"):
        generate("modular", 1, 0, {"ops": ["/"]})
    with pytest.raises(ValueError, match="'n_pairs'"):
        generate("recall", 1, 0, {"n_pairs": 5, "n_keys": 4})
    with pytest.raises(ValueError, match="'lexicon_size'"):
        generate("story_grammar", 1, 0, {"lexicon_size": 11})
    with pytest.raises(ValueError, match="n_docs"):
        generate("counting", -1, 0)


def test_write_corpus_writes_lines_and_sidecar(tmp_path):
    path = tmp_path / "stories.txt"
    sidecar = write_corpus("story_grammar", path, n_docs=40, seed=5, params={"lexicon_size": 3})
    corpus = generate("story_grammar", 40, seed=5, params={"lexicon_size": 3})
    assert path.read_text().split("\n") == [*corpus.texts, ""]
    on_disk = json.loads((tmp_path / "stories.txt.json").read_text())
    assert on_disk == sidecar
    encoding = get_encoding()
    tokens = sum(len(encoding.encode_ordinary(text)) + 1 for text in corpus.texts)
    assert sidecar["generator"] == "story_grammar" and sidecar["seed"] == 5
    assert sidecar["params"] == {"lexicon_size": 3}
    assert sidecar["logprobs"] == corpus.logprobs and sidecar["tokens"] == tokens
    assert sidecar["nats"] == pytest.approx(-sum(corpus.logprobs))
    assert sidecar["nats_per_doc"] == pytest.approx(sidecar["nats"] / 40)
    assert sidecar["nats_per_token"] == pytest.approx(sidecar["nats"] / tokens)
