"""Sources: text files (checked before tokenising) and TinyStories from local files or fallback.

No test may touch the network: every socket connection in this module raises.
"""

import json
import socket
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from picollm.data import corpus
from picollm.data.excerpt import build_excerpt
from picollm.data.sources import (
    HubUnavailableError,
    InputFileError,
    excerpt_dir,
    load_tinystories,
    read_input_file,
)
from picollm.data.synthetic import generate
from picollm.data.tokenize import tokenize_documents
from picollm.errors import UserError
from picollm.tokenizer import EOT_ID, get_encoding

SAMPLE = Path(__file__).parents[2] / "shared/data/tinystories/tinystories_sample.txt"
needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"{SAMPLE} not present")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


# ----------------------------------------------------------------------------- text files


def test_line_mode_is_the_starters(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("  first line \n\n\t\nsecond\r\n<|endoftext|>\nthird")
    assert read_input_file(path) == ["first line", "second", "third"]


def test_block_mode_splits_on_blank_and_endoftext_lines(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("a1\na2\n\n\nb1\n<|endoftext|>\nc1\n  c2  \n<|endoftext|>\n\n")
    assert read_input_file(path, document_mode="block") == ["a1\na2", "b1", "c1\n  c2"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"ok\nbad\x00byte\n", r"NUL byte at line 2 \(byte offset 6\)"),
        (b"ok\nfine\ncaf\xe9\n", r"not valid UTF-8: line 3, byte offset 11"),
        (b"short\n" + b"x" * 11 + b"\n", "line 2 is longer than 10 characters"),
        (b" \n\n\t\n", "contains no documents"),
    ],
)
def test_bad_input_files_name_the_file_and_line(tmp_path, content, match):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputFileError, match=match) as error:
        read_input_file(path, max_line_chars=10)
    assert str(path) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_bad_document_mode():
    with pytest.raises(ValueError, match="document_mode"):
        read_input_file("x.txt", document_mode="paragraph")


def test_bad_file_fails_before_tokenising_or_loading_stories(tmp_path, monkeypatch):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("fine\n")
    bad.write_bytes(b"\xff\xfe")

    def must_not_run(*args, **kwargs):
        raise AssertionError("called before the input files were checked")

    monkeypatch.setattr(corpus, "tokenize_documents", must_not_run)
    monkeypatch.setattr(corpus, "load_tinystories", must_not_run)
    with pytest.raises(InputFileError, match="bad.txt.*line 1"):
        corpus.build_corpus(
            tmp_path / "c.parquet",
            tinystories={"mode": "generated", "n_train": 3},
            input_files=[good, bad],
        )


# ----------------------------------------------------------------------------- TinyStories


STORIES = ["Once there was a cat.\nIt was happy.", "Tom had a red ball.", "The end came."]


def write_txt(path, stories, tail=""):
    path.write_text("".join(f"{story}\n<|endoftext|>\n" for story in stories) + tail)
    return path


def test_local_txt_file_drops_the_cut_off_tail(tmp_path):
    path = write_txt(tmp_path / "train.txt", STORIES, tail="Half a sto")
    with pytest.warns(RuntimeWarning, match="dropped 10 characters after the last"):
        loaded = load_tinystories("local", n_train=None, local_path=path, cache_dir=tmp_path)
    assert loaded.used == "local"
    [train] = loaded.documents
    assert (train.source, train.split, train.texts) == ("tinystories", "train", STORIES)
    assert train.origin["files"][0]["path"] == str(path)


def test_first_n_stories_and_auto_uses_a_given_path(tmp_path):
    path = write_txt(tmp_path / "train.txt", STORIES, tail="cut")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the tail is never reached, so no warning
        loaded = load_tinystories("auto", n_train=2, local_path=path, cache_dir=tmp_path)
    assert loaded.used == "local"
    assert loaded.documents[0].texts == STORIES[:2]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_local_records_with_a_text_field(tmp_path, suffix):
    path = tmp_path / f"stories{suffix}"
    rows = [{"text": f"  {story} ", "id": i} for i, story in enumerate(STORIES)]
    if suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        path.write_text("\n".join(json.dumps(row) for row in rows))
    loaded = load_tinystories("local", n_train=None, local_path=path, cache_dir=tmp_path)
    assert loaded.documents[0].texts == STORIES


def test_local_folder_with_train_and_validation_files(tmp_path):
    write_txt(tmp_path / "TinyStories-train.txt", STORIES[:2])
    pd.DataFrame({"text": ["More text."]}).to_parquet(tmp_path / "TinyStories-train2.parquet")
    write_txt(tmp_path / "TinyStories-valid.txt", ["A valid story."])
    (tmp_path / "README.md").write_text("not a story file")
    loaded = load_tinystories(
        "local", n_train=None, n_validation=5, local_path=tmp_path, cache_dir=tmp_path / "cache"
    )
    train, validation = loaded.documents
    assert train.texts == [*STORIES[:2], "More text."]
    assert (validation.split, validation.texts) == ("validation", ["A valid story."])


def test_local_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_tinystories("local", local_path=tmp_path / "missing")
    with pytest.raises(ValueError, match="needs a local_path"):
        load_tinystories("local")
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(UserError, match="no file ending in"):
        load_tinystories("local", local_path=tmp_path)
    path = write_txt(tmp_path / "train.txt", STORIES)
    with pytest.raises(UserError, match="no validation file.*max_validation_stories: 0"):
        load_tinystories("local", n_validation=1, local_path=path, cache_dir=tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"story": "no text field"}\n')
    with pytest.raises(ValueError, match="'text' field"):
        load_tinystories("local", local_path=bad, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="mode must be one of"):
        load_tinystories("cloud")
    with pytest.raises(ValueError, match="only read in modes"):
        load_tinystories("hub", local_path=path)


def test_auto_offline_falls_back_to_the_shipped_excerpt(offline, tmp_path):
    with pytest.warns(RuntimeWarning, match="falling back to the excerpt shipped with picollm"):
        loaded = load_tinystories("auto", n_train=20, n_validation=5, cache_dir=tmp_path)
    assert loaded.used == "excerpt"
    train, validation = loaded.documents
    assert (train.source, train.split, validation.split) == ("tinystories", "train", "validation")
    assert (len(train.texts), len(validation.texts)) == (20, 5)
    assert train.texts == read_excerpt("train")[:20]
    assert validation.texts == read_excerpt("validation")[:5]
    assert train.logprobs is None  # real text: no known entropy
    assert set(train.origin["files"]) == {"train.parquet", "validation.parquet"}


def test_the_excerpt_is_small_real_text_with_its_licence():
    folder = excerpt_dir()
    stored = sum(f.stat().st_size for f in folder.iterdir())
    assert stored <= 1 << 20  # at most 1 MiB as stored
    assert "CDLA-Sharing-1.0" in (folder / "README.md").read_text()
    assert (
        "Community Data License Agreement - Sharing - Version 1.0"
        in (folder / "LICENSE.txt").read_text()
    )
    train, validation = read_excerpt("train"), read_excerpt("validation")
    assert (len(train), len(validation)) == (2084, 232)
    assert not set(train) & set(validation)
    assert train[0].startswith("One day, a little girl named Lily found a needle in her room.")


def test_generated_mode_is_the_story_grammar():
    loaded = load_tinystories("generated", n_train=20, n_validation=5, seed=4)
    assert loaded.used == "generated"
    train, validation = loaded.documents
    expected = generate("story_grammar", 20, seed=4)
    assert train.texts == expected.texts and train.logprobs == expected.logprobs
    assert validation.texts == generate("story_grammar", 5, seed=4 + 2**32).texts


def read_excerpt(split):
    return pq.read_table(excerpt_dir() / f"{split}.parquet").column("text").to_pylist()


def test_hub_offline_is_an_error(offline):
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE"):
        load_tinystories("hub", n_train=5)


def test_unreachable_hub_fails_fast(monkeypatch):
    """No offline flag, but no network either (the fixture): the Hub probe fails."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(HubUnavailableError, match="cannot reach the Hub"):
        load_tinystories("hub", n_train=5, hub_timeout=2)
    with pytest.warns(RuntimeWarning, match="cannot reach the Hub.*falling back"):
        loaded = load_tinystories("auto", n_train=5, hub_timeout=2)
    assert loaded.used == "excerpt"


def test_generated_mode_needs_a_count():
    with pytest.raises(ValueError, match="need a number of train stories"):
        load_tinystories("generated", n_train=None)


@needs_sample
def test_the_shipped_excerpt_is_rebuilt_from_the_shared_sample(tmp_path):
    with pytest.warns(RuntimeWarning, match="unterminated story"):
        counts = build_excerpt(SAMPLE, tmp_path)
    assert counts == {"train": 2084, "validation": 232}
    for split in ("train", "validation"):
        rebuilt = pq.read_table(tmp_path / f"{split}.parquet").column("text").to_pylist()
        assert rebuilt == read_excerpt(split)


def test_excerpt_mode_reads_the_excerpt_even_when_the_hub_is_reachable(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "picollm.data.sources._hub_tinystories", lambda *a: pytest.fail("asked the Hub")
    )
    loaded = load_tinystories("excerpt", n_train=3, n_validation=None, cache_dir=tmp_path)
    assert loaded.used == "excerpt"
    assert [len(d.texts) for d in loaded.documents] == [3, 232]


@needs_sample
def test_the_shared_sample_round_trips(tmp_path):
    with pytest.warns(RuntimeWarning, match="unterminated story"):
        loaded = load_tinystories("local", n_train=None, local_path=SAMPLE, cache_dir=tmp_path)
    stories = loaded.documents[0].texts
    assert len(stories) == 2316
    assert stories[0].startswith("One day, a little girl named Lily found a needle in her room.")
    tokenized = tokenize_documents(stories, workers=2)
    encoding = get_encoding()
    for i, story in enumerate(stories):
        tokens = tokenized.document(i).tolist()
        assert tokens == [*encoding.encode_ordinary(story), EOT_ID]
        assert encoding.decode(tokens[:-1]) == story
