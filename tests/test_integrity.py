"""Stages refuse data files that differ from the sha256 their record states, naming the fix."""

import json

import numpy as np
import pytest

from picollm.cli import main
from picollm.integrity import IntegrityError, recorded_hashes, verify_files


def flip_one_bit(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_the_records_state_the_hash_of_every_file_they_describe(pipeline_data):
    processed = pipeline_data / "data/processed"
    corpus = recorded_hashes(json.loads((processed / "corpus.json").read_text()))
    assert list(corpus) == ["corpus.parquet"]
    split = recorded_hashes(json.loads((processed / "split/split.json").read_text()))
    assert {"train.tokens.npy", "test.docs.npy", "train.parquet"} <= set(split)
    assert verify_files(processed / "split/split.json", ["train.tokens.npy"]) == {
        "train.tokens.npy": split["train.tokens.npy"]
    }


def test_split_refuses_a_corpus_with_one_flipped_bit(project, capsys):
    corpus = project / "data/processed/corpus.parquet"
    flip_one_bit(corpus, corpus.stat().st_size // 2)
    argv = ["split", "--corpus", str(corpus)]
    assert main([*argv, "--summary", "data/processed/split/split.json"]) == 2
    error = capsys.readouterr().err
    assert "corpus.parquet is damaged or was replaced" in error
    assert "snakemake --forcerun tokenize" in error and "dvc repro --force tokenize" in error


def test_training_refuses_token_ids_overwritten_with_other_valid_ids(project, capsys):
    """Valid ids, same shape, a touched file: only the hash tells the data changed."""
    tokens_file = project / "data/processed/split/train.tokens.npy"
    tokens = np.load(tokens_file)
    np.save(tokens_file, np.roll(tokens, 1))
    argv = ["train", "--model", "lstm", "--split", "data/processed/split/split.json"]
    outputs = ["--weights", "w.safetensors", "--metrics", "m.json", "--run", "r.json"]
    assert main([*argv, *outputs, "--curve", "c.tsv", "--steps", "s.tsv"]) == 2
    error = capsys.readouterr().err
    assert "train.tokens.npy is damaged or was replaced" in error
    assert "snakemake --forcerun split" in error
    assert not (project / "w.safetensors").exists()


def test_a_missing_or_unrecorded_file_is_refused(project):
    record = project / "data/processed/split/split.json"
    (record.parent / "test.docs.npy").unlink()
    with pytest.raises(IntegrityError, match="test.docs.npy is missing; rebuild it"):
        verify_files(record, ["test.docs.npy"])
    with pytest.raises(IntegrityError, match="records no sha256 for extra.npy"):
        verify_files(record, ["extra.npy"])


def test_a_top_level_sha256_map_is_read_too():
    record = {"sha256": {"vocab.json": "ab"}, "splits": {"train": {"sha256": {"t.npy": "cd"}}}}
    assert recorded_hashes(record) == {"vocab.json": "ab", "t.npy": "cd"}
    assert recorded_hashes({"sha256": "not a map", "splits": []}) == {}
