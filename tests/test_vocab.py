"""The compact vocabulary: built from the training split only, exact shares, round trips, and the
models, loader and stages following the smaller table."""

import json
import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from picollm.data.corpus import write_corpus_parquet
from picollm.data.loader import BatchStream, TokenStore, eval_batches
from picollm.data.sources import Documents
from picollm.data.split import split_corpus
from picollm.models import build
from picollm.tokenizer import EOT_ID, VOCAB_SIZE, get_encoding
from picollm.vocab import UNKNOWN_MARKER, VOCAB_FILE, Vocabulary

STORIES = [
    "Once upon a time there was a cat. The cat liked milk.",
    "Tom had a red ball. He liked the ball. The ball was red.",
    "A dog ran to the park. The dog was happy.",
    "Lily saw a big tree. The tree was tall and green.",
    "The sun was hot. Tom and Lily played in the park.",
]
VALIDATION = ["Zebras quizzically juxtapose vexing xylophones.", "The cat ran to Tom."]


def naive_table(tokens, max_size, min_count):
    """The rule, written as a plain loop: frequent first, ties by id; EOT always kept."""
    counts = Counter(int(t) for t in tokens)
    ranked = sorted(counts, key=lambda token: (-counts[token], token))
    kept = [t for t in ranked if counts[t] >= min_count][: max_size - 1]
    if EOT_ID not in kept:
        kept = [*kept[: max_size - 2], EOT_ID]
    return kept


def encode_documents(texts):
    encoding = get_encoding()
    return np.array([t for text in texts for t in (*encoding.encode_ordinary(text), EOT_ID)])


@pytest.mark.parametrize(("max_size", "min_count"), [(4096, 1), (4096, 2), (12, 1), (5, 3), (3, 1)])
def test_the_table_follows_its_rule(max_size, min_count):
    tokens = encode_documents(STORIES)
    vocabulary = Vocabulary.build(tokens, max_size, min_count)
    assert vocabulary.gpt2_ids.tolist() == naive_table(tokens, max_size, min_count)
    assert vocabulary.size == len(vocabulary.gpt2_ids) + 1 <= max_size
    assert vocabulary.unk_id == vocabulary.size - 1
    assert vocabulary.gpt2_ids[vocabulary.eot_id] == EOT_ID


def test_ties_are_broken_by_gpt2_id():
    tokens = np.array([300, 200, 100, EOT_ID, 300, 200, 100, EOT_ID])  # all twice
    assert Vocabulary.build(tokens, 10, 1).gpt2_ids.tolist() == [100, 200, 300, EOT_ID]


def test_unknown_shares_are_exact():
    tokens = encode_documents(STORIES)
    vocabulary = Vocabulary.build(tokens, 4096, 2)
    kept = set(vocabulary.gpt2_ids.tolist())
    held_out = encode_documents(VALIDATION)
    for split in (tokens, held_out):
        expected = sum(int(t) not in kept for t in split) / len(split)
        assert vocabulary.unknown_share(split) == pytest.approx(expected, abs=0)
    assert Vocabulary.gpt2().unknown_share(held_out) == 0.0


def test_in_vocabulary_text_round_trips():
    vocabulary = Vocabulary.build(encode_documents(STORIES), 4096, 1)
    for text in STORIES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every token is known: no warning
            ids = vocabulary.encode_text(text)
        assert max(ids) < vocabulary.unk_id
        assert vocabulary.decode_text(ids) == text
    gpt2 = Vocabulary.gpt2()
    assert gpt2.encode_text(VALIDATION[0]) == get_encoding().encode_ordinary(VALIDATION[0])


def test_unknown_tokens_warn_by_name_and_print_as_a_marker():
    vocabulary = Vocabulary.build(encode_documents(STORIES), 4096, 1)
    with pytest.warns(UserWarning, match="Zebras|quizz") as caught:
        ids = vocabulary.encode_text("The cat saw Zebras.")
    assert "compact" in str(caught[0].message)
    assert vocabulary.unk_id in ids
    text = vocabulary.decode_text(ids)
    assert text.startswith("The cat saw") and text.endswith(".") and UNKNOWN_MARKER in text
    gpt2_ids = vocabulary.decode_gpt2(np.array(ids))
    assert (gpt2_ids[np.array(ids) == vocabulary.unk_id] == -1).all()


def test_save_and_load_keep_the_table(tmp_path):
    vocabulary = Vocabulary.build(encode_documents(STORIES), 20, 1)
    vocabulary.save(tmp_path / VOCAB_FILE)
    loaded = Vocabulary.load(tmp_path / VOCAB_FILE)
    assert np.array_equal(loaded.gpt2_ids, vocabulary.gpt2_ids) and loaded.rule == vocabulary.rule
    Vocabulary.gpt2().save(tmp_path / "gpt2.json")
    assert Vocabulary.load(tmp_path / "gpt2.json").size == VOCAB_SIZE


def test_bad_tables_and_rules_are_refused():
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(np.array([EOT_ID]), 2, 1)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(np.array([EOT_ID]), 10, 0)
    with pytest.raises(ValueError, match="end-of-text"):
        Vocabulary(np.array([1, 2]), {"kind": "compact"})


# ----------------------------------------------------------------------------- the split


def split_with(tmp_path, name, validation, rule):
    documents = [Documents("tinystories", STORIES, "train")]
    if validation:
        documents.append(Documents("tinystories", validation, "validation"))
    corpus = tmp_path / name / "corpus.parquet"
    write_corpus_parquet(corpus, documents)
    return split_corpus(corpus, 0.0, 0, "validation", tmp_path / name / "split", vocab_rule=rule)


RULE = {"vocab": "compact", "vocab_size": 64, "vocab_min_count": 2}


def test_the_vocabulary_is_a_function_of_the_training_split_only(tmp_path):
    """More test documents change neither the table nor the train share of unknown tokens."""
    small = split_with(tmp_path, "small", VALIDATION[1:], RULE)
    large = split_with(tmp_path, "large", VALIDATION * 3, RULE)
    assert small["vocab"]["sha256"] == large["vocab"]["sha256"]
    first, second = (tmp_path / n / "split" / VOCAB_FILE for n in ("small", "large"))
    assert first.read_bytes() == second.read_bytes()
    shares = [s["splits"]["train"]["unknown_token_share"] for s in (small, large)]
    assert shares[0] == shares[1]


def test_split_json_records_the_vocabulary_and_exact_shares(tmp_path):
    summary = split_with(tmp_path, "s", VALIDATION, RULE)
    vocabulary = Vocabulary.load(tmp_path / "s" / "split" / VOCAB_FILE)
    assert summary["vocab"]["name"] == vocabulary.name == f"compact-{vocabulary.size}"
    kept = set(vocabulary.gpt2_ids.tolist())
    for split, texts in (("train", STORIES), ("test", VALIDATION)):
        tokens = encode_documents(texts)
        expected = sum(int(t) not in kept for t in tokens) / len(tokens)
        assert summary["splits"][split]["unknown_token_share"] == pytest.approx(expected, abs=0)
    gpt2 = split_with(tmp_path, "g", VALIDATION, {"vocab": "gpt2"})
    assert gpt2["vocab"]["name"] == f"gpt2-{VOCAB_SIZE}"
    assert gpt2["splits"]["test"]["unknown_token_share"] == 0.0


def test_the_loader_serves_model_ids(tmp_path):
    split_with(tmp_path, "s", VALIDATION, RULE)
    split_dir = tmp_path / "s" / "split"
    vocabulary = Vocabulary.load(split_dir / VOCAB_FILE)
    store = TokenStore.open(split_dir, "train")
    raw = np.load(split_dir / "train.tokens.npy")
    assert store.eot_id == vocabulary.eot_id
    assert np.array_equal(store.tokens[np.arange(len(raw))], vocabulary.encode_gpt2(raw))
    for mode in ("packed", "padded", "starter_faithful"):
        batch = next(BatchStream(store, 8, 4, seed=0, mode=mode))
        assert int(batch.inputs.max()) < vocabulary.size
        counted = batch.targets[batch.targets >= 0]
        assert int(counted.max()) < vocabulary.size
    padded = eval_batches(store, 64, 4, 1, seed=0, mode="padded")[0]  # rows shorter than 64
    assert (padded.inputs[:, -1] == vocabulary.eot_id).all()


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "lstm", "embed_size": 16},
        {"type": "kgram_mlp", "kgram_k": 2, "embed_size": 8, "num_inner_mlp_layers": 1},
        {"type": "transformer", "d_model": 16, "n_heads": 2, "n_blocks": 1, "position": "rope"},
    ],
)
def test_every_model_follows_the_smaller_table(entry):
    vocabulary = Vocabulary.build(encode_documents(STORIES), 4096, 1)
    model = build({"vocab_size": vocabulary.size, "block_size": 8, **entry})
    tokens = torch.tensor([vocabulary.encode_text(STORIES[0])[:8]])
    assert model(tokens).shape == (1, tokens.shape[1], vocabulary.size)
    assert model.unembedding.out_features == vocabulary.size
    inputs = {"lstm": "embedding", "transformer": "token_embedding"}
    if entry["type"] in inputs:
        assert getattr(model, inputs[entry["type"]]).num_embeddings == vocabulary.size
    else:  # the k-gram's one-hot input has a slot per id, plus padding
        assert model.padding_index == vocabulary.size


def test_the_vocab_file_is_plain_json(tmp_path):
    Vocabulary.build(encode_documents(STORIES), 16, 1).save(tmp_path / VOCAB_FILE)
    record = json.loads((tmp_path / VOCAB_FILE).read_text())
    assert record["kind"] == "compact" and record["size"] == len(record["gpt2_ids"]) + 1
