"""Tokenise -> Parquet -> split round trip, and the stability of ids and splits."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from picollm.data import split as split_module
from picollm.data.corpus import SCHEMA, build_corpus, corpus_metadata_path
from picollm.data.loader import TokenStore
from picollm.data.sources import InputFileError
from picollm.data.split import SPLIT_OUTPUTS, split_corpus
from picollm.data.synthetic import generate
from picollm.files import sha256_file
from picollm.tokenizer import EOT_ID, EOT_TOKEN, get_encoding

LINES = ["0 1 2 3 4 5", "0 2 4 6 8", "1 2 4 8 16"]


@pytest.fixture(scope="module")
def lines_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "seqs.txt"
    path.write_text("\n".join(LINES * 20) + "\n")
    return path


def tinystories(n_train=30, n_validation=10):
    return {"mode": "generated", "n_train": n_train, "n_validation": n_validation, "seed": 1}


GENERATED = {
    "counting": {"n_docs": 60, "seed": 0},
    "reverse": {"n_docs": 40, "seed": 1, "params": {"alphabet_size": 5}},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, lines_file):
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    build_corpus(path, tinystories=tinystories(), input_files=[lines_file], generated=GENERATED)
    return path


def expected_documents():
    """(source, split, text, logprob) of every document, in corpus order, built independently."""
    rows = []
    for split, n, seed in (("train", 30, 1), ("validation", 10, 1 + 2**32)):
        stories = generate("story_grammar", n, seed)
        rows += [
            ("tinystories", split, t, lp)
            for t, lp in zip(stories.texts, stories.logprobs, strict=True)
        ]
    rows += [("seqs.txt", None, line, None) for line in LINES * 20]
    for name, spec in GENERATED.items():
        docs = generate(name, spec["n_docs"], spec["seed"], spec.get("params"))
        rows += [(name, None, t, lp) for t, lp in zip(docs.texts, docs.logprobs, strict=True)]
    return rows


def test_corpus_rows_decode_to_the_documents(corpus):
    table = pq.read_table(corpus)
    assert table.schema.remove_metadata() == SCHEMA
    rows = table.to_pylist()
    expected = expected_documents()
    assert len(rows) == len(expected)
    encoding = get_encoding()
    for row, (source, split, text, logprob) in zip(rows, expected, strict=True):
        assert (row["source"], row["split"]) == (source, split)
        assert row["tokens"][-1] == EOT_ID and EOT_ID not in row["tokens"][:-1]
        assert encoding.decode(row["tokens"][:-1]) == text
        assert row["n_tokens"] == len(row["tokens"])
        assert row["logprob"] == logprob
    assert len({row["doc_id"] for row in rows}) == len(rows)
    repeats = [row["content_hash"] for row in rows if row["source"] == "seqs.txt"]
    assert len(set(repeats)) == 3  # equal documents, equal content hashes


def test_corpus_metadata(corpus, lines_file):
    meta = json.loads(corpus_metadata_path(corpus).read_text())
    table = pq.read_table(corpus).to_pandas()
    assert meta["parquet_sha256"] == sha256_file(corpus)
    assert meta["tinystories_source"] == "generated"
    assert (meta["documents"], meta["tokens"]) == (len(table), table["n_tokens"].sum())
    assert list(meta["sources"]) == ["tinystories", "seqs.txt", "counting", "reverse"]
    for name, source in meta["sources"].items():
        rows = table[table["source"] == name]
        assert (source["documents"], source["tokens"]) == (len(rows), rows["n_tokens"].sum())
        if name == "seqs.txt":
            assert source["entropy_floor_nats_per_token"] is None
            assert source["origins"][0]["sha256"] == sha256_file(lines_file)
        else:
            nats = -math.fsum(rows["logprob"])
            assert source["nats"] == pytest.approx(nats)
            assert source["entropy_floor_nats_per_token"] == pytest.approx(
                nats / len(np.concatenate(rows["tokens"].to_numpy()))
            )
    assert meta["sources"]["tinystories"]["splits"] == {"train": 30, "validation": 10}


def test_doc_ids_are_stable_when_sources_change(tmp_path, corpus, lines_file):
    ids = pq.read_table(corpus, columns=["doc_id", "source"]).to_pandas()
    other = tmp_path / "other.parquet"
    build_corpus(
        other,
        tinystories=tinystories(n_train=50),  # more stories
        input_files=[lines_file],
        generated={**GENERATED, "modular": {"n_docs": 20, "seed": 0}},  # one more source
    )
    more = pq.read_table(other, columns=["doc_id", "source"]).to_pandas()
    assert set(ids["doc_id"]) <= set(more["doc_id"])


def test_build_corpus_rejects_bad_settings(tmp_path, lines_file):
    with pytest.raises(ValueError, match="repeated"):
        build_corpus(tmp_path / "c.parquet", input_files=[lines_file, lines_file])
    with pytest.raises(ValueError, match=r"generated\['x'\]: missing key"):
        build_corpus(tmp_path / "c.parquet", generated={"x": {"generator": "counting"}})
    with pytest.raises(ValueError, match="unknown key"):
        build_corpus(tmp_path / "c.parquet", tinystories={"mode": "generated", "n": 5})


# ----------------------------------------------------------------------------- split


def split_ids(out_dir):
    return {
        s: set(pq.read_table(out_dir / f"{s}.parquet", columns=["doc_id"])["doc_id"].to_pylist())
        for s in ("train", "test")
    }


def test_split_is_disjoint_covers_everything_and_is_deterministic(tmp_path, corpus):
    summary = split_corpus(corpus, 0.25, 7, "holdout", tmp_path / "a")
    split_corpus(corpus, 0.25, 7, "holdout", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(SPLIT_OUTPUTS)
    for name in SPLIT_OUTPUTS[:-1]:
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name)
    table = pq.read_table(corpus).to_pandas()
    ids = split_ids(tmp_path / "a")
    validation = set(table[table["split"] == "validation"]["doc_id"])
    assert not ids["train"] & ids["test"]
    assert ids["train"] | ids["test"] | validation == set(table["doc_id"])
    assert summary["left_out_documents"] == len(validation) == 10
    assert 0.1 < len(ids["test"]) / (len(ids["test"]) + len(ids["train"])) < 0.4
    assert summary["test_documents_also_in_train"] > 0  # the repeated lines of seqs.txt
    assert split_ids(tmp_path / "a") != split_ids(split_corpus_dir(corpus, tmp_path / "c", 8))


def split_corpus_dir(corpus, out_dir, seed):
    split_corpus(corpus, 0.25, seed, "holdout", out_dir)
    return out_dir


def test_split_is_stable_when_an_unrelated_source_is_added(tmp_path, corpus, lines_file):
    bigger = tmp_path / "bigger.parquet"
    build_corpus(
        bigger,
        tinystories=tinystories(n_train=45),
        input_files=[lines_file],
        generated={**GENERATED, "copy": {"n_docs": 30, "seed": 3}},
    )
    small = split_ids(split_corpus_dir(corpus, tmp_path / "small", 5))
    large = split_ids(split_corpus_dir(bigger, tmp_path / "large", 5))
    assert small["test"] <= large["test"] and small["train"] <= large["train"]


def test_tinystories_validation_rule(tmp_path, corpus):
    summary = split_corpus(corpus, 0.25, 0, "validation", tmp_path)
    test = pq.read_table(tmp_path / "test.parquet").to_pandas()
    train = pq.read_table(tmp_path / "train.parquet").to_pandas()
    assert set(test[test["source"] == "tinystories"]["split"]) == {"validation"}
    assert (train["source"] == "tinystories").sum() == 30
    assert summary["splits"]["test"]["per_source"]["tinystories"]["documents"] == 10
    assert summary["left_out_documents"] == 0


def test_validation_rule_needs_validation_stories(tmp_path):
    path = tmp_path / "c.parquet"
    build_corpus(path, tinystories=tinystories(n_validation=0))
    with pytest.raises(ValueError, match="no TinyStories validation"):
        split_corpus(path, 0.1, 0, "validation", tmp_path / "s")


def test_split_arguments_are_checked(tmp_path, corpus):
    for fraction in (1.0, -0.1):
        with pytest.raises(ValueError, match="test_fraction"):
            split_corpus(corpus, fraction, 0, "holdout", tmp_path)
    with pytest.raises(ValueError, match="tinystories_test"):
        split_corpus(corpus, 0.1, 0, "official", tmp_path)
    with pytest.raises(ValueError, match="seed"):
        split_corpus(corpus, 0.1, -1, "holdout", tmp_path)


def test_fast_format_matches_the_parquet(tmp_path, corpus):
    summary = split_corpus(corpus, 0.3, 1, "holdout", tmp_path)
    for split in ("train", "test"):
        rows = pq.read_table(tmp_path / f"{split}.parquet").to_pylist()
        store = TokenStore.open(tmp_path, split)
        assert store.sources == summary["sources"]
        assert store.n_documents == len(rows) == summary["splits"][split]["documents"]
        assert store.n_tokens == summary["splits"][split]["tokens"]
        assert isinstance(store.tokens, np.memmap) and store.tokens.dtype == np.uint16
        for i, row in enumerate(rows):
            start, length = store.doc_starts[i], store.doc_lengths[i]
            assert store.tokens[start : start + length].tolist() == row["tokens"]
            assert store.sources[store.doc_sources[i]] == row["source"]
        assert store.doc_starts[-1] + store.doc_lengths[-1] == store.n_tokens


def test_endoftext_in_text_stays_ordinary(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text(f"before {EOT_TOKEN} after\nplain\n")
    build_corpus(tmp_path / "c.parquet", input_files=[path])
    rows = pq.read_table(tmp_path / "c.parquet").to_pylist()
    assert [row["tokens"].count(EOT_ID) for row in rows] == [1, 1]
    assert get_encoding().decode(rows[0]["tokens"][:-1]) == f"before {EOT_TOKEN} after"


def test_streaming_in_small_batches_writes_the_same_files(tmp_path, corpus, monkeypatch):
    split_corpus(corpus, 0.3, 2, "holdout", tmp_path / "one_batch")
    monkeypatch.setattr(split_module, "_BATCH_ROWS", 7)  # many batches, most with both splits
    split_corpus(corpus, 0.3, 2, "holdout", tmp_path / "many_batches")
    for name in SPLIT_OUTPUTS[:-1]:
        one, many = tmp_path / "one_batch" / name, tmp_path / "many_batches" / name
        if name.endswith(".npy"):
            assert np.array_equal(np.load(one), np.load(many))
        elif name.endswith(".parquet"):
            assert pq.read_table(one).equals(pq.read_table(many))
        else:
            assert one.read_bytes() == many.read_bytes()


def test_split_records_the_entropy_floor_only_when_every_document_has_one(tmp_path, lines_file):
    import pyarrow.parquet as pq

    from picollm.data.split import split_corpus

    known = tmp_path / "known.parquet"
    build_corpus(known, generated=GENERATED)
    summary = split_corpus(known, 0.3, 0, "validation", tmp_path / "known", lineage={"stage": "x"})
    assert json.loads((tmp_path / "known" / "split.json").read_text())["lineage"] == {"stage": "x"}
    for name in ("train", "test"):
        table = pq.read_table(tmp_path / "known" / f"{name}.parquet").to_pandas()
        expected = -table["logprob"].sum() / table["n_tokens"].sum()
        floor = summary["splits"][name]["entropy_floor_nats_per_token"]
        assert floor == pytest.approx(expected, rel=1e-12) and floor > 0

    mixed = tmp_path / "mixed.parquet"
    build_corpus(mixed, input_files=[lines_file], generated=GENERATED)
    summary = split_corpus(mixed, 0.3, 0, "validation", tmp_path / "mixed")
    assert summary["splits"]["train"]["entropy_floor_nats_per_token"] is None


def test_lineage_is_written_with_the_metadata_once_the_sources_are_read(tmp_path, lines_file):
    def must_not_run():
        raise AssertionError("lineage was asked for before the input files were checked")

    with pytest.raises(InputFileError, match="missing.txt"):
        build_corpus(
            tmp_path / "x.parquet", input_files=[tmp_path / "missing.txt"], lineage=must_not_run
        )
    out = tmp_path / "c.parquet"
    summary = build_corpus(out, input_files=[lines_file], lineage=lambda: {"stage": "tokenize"})
    assert summary["lineage"] == {"stage": "tokenize"}
    assert json.loads(corpus_metadata_path(out).read_text())["lineage"] == {"stage": "tokenize"}
