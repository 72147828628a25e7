"""Loader: batch shapes and targets, padding rules per mode, resumption, source weights, eval sets."""

import json

import numpy as np
import pytest
import torch

from picollm.data.loader import IGNORE_INDEX, Batch, BatchStream, TokenStore, eval_batches
from picollm.tokenizer import EOT_ID


def make_store(lengths=(5, 9, 3, 14, 7, 2, 11), sources=None):
    """Documents of distinct tokens (so a row tells where it came from), each ending with EOT."""
    documents, next_token = [], 1
    for length in lengths:
        documents.append([*range(next_token, next_token + length - 1), EOT_ID])
        next_token += length - 1
    return TokenStore.from_documents(documents, sources)


def two_source_store():
    """Source "a" owns tokens below 1000, "b" tokens from 1000; documents interleave."""
    documents, names = [], []
    for i in range(40):
        base = 1 if i % 2 == 0 else 1000
        documents.append([*range(base + 10 * i, base + 10 * i + 6), EOT_ID])
        names.append("a" if i % 2 == 0 else "b")
    return TokenStore.from_documents(documents, names)


def assert_shifted(batch: Batch, block_size: int, batch_size: int):
    assert batch.inputs.shape == batch.targets.shape == (batch_size, block_size)
    assert batch.inputs.dtype == batch.targets.dtype == torch.int64


def window_starts(store, block_size):
    """Every window of block_size + 1 consecutive tokens, as a tuple, mapped to its start."""
    flat = store.tokens.tolist()
    return {tuple(flat[s : s + block_size + 1]): s for s in range(store.n_tokens - block_size)}


def test_packed_rows_are_windows_of_the_stream():
    store = make_store()
    windows = window_starts(store, 8)
    assert len(windows) == store.n_tokens - 8  # the windows of this store are all distinct
    stream = BatchStream(store, block_size=8, batch_size=6, seed=0)
    for _ in range(5):
        batch = next(stream)
        assert_shifted(batch, 8, 6)
        assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
        for inputs, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
            assert (*inputs, targets[-1]) in windows


def test_packed_windows_cover_every_start():
    store = make_store()
    windows = window_starts(store, 4)
    stream = BatchStream(store, block_size=4, batch_size=64, seed=1)
    seen = set()
    for _ in range(20):
        batch = next(stream)
        rows = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1).tolist()
        seen |= {windows[tuple(row)] for row in rows}
    assert seen == set(range(store.n_tokens - 4))  # uniform over all N - block_size starts


def test_padded_mode_never_counts_padding():
    store = make_store()
    block = 8
    stream = BatchStream(store, block_size=block, batch_size=16, seed=2, mode="padded")
    for _ in range(5):
        batch = next(stream)
        assert_shifted(batch, block, 16)
        for inputs, targets in zip(batch.inputs.tolist(), batch.targets.tolist(), strict=True):
            doc = next(
                i
                for i in range(store.n_documents)
                if store.tokens[store.doc_starts[i]] == inputs[0]
            )
            tokens = store.tokens[
                store.doc_starts[doc] : store.doc_starts[doc] + store.doc_lengths[doc]
            ]
            real = min(len(tokens), block + 1) - 1
            assert inputs[:real] == tokens[:real].tolist()
            assert targets[:real] == tokens[1 : real + 1].tolist()
            assert targets[real:] == [IGNORE_INDEX] * (block - real)
            assert inputs[real:] == [EOT_ID] * (block - real)


def test_starter_mode_pads_with_zero_and_counts_it():
    store = make_store(lengths=(3, 6, 4))  # texts of 2, 5 and 3 tokens
    stream = BatchStream(store, block_size=8, batch_size=32, seed=3, mode="starter_faithful")
    batch = next(stream)
    assert_shifted(batch, 8, 32)
    longest = 5  # the longest text; the starter adds no end-of-text token
    assert (batch.inputs == EOT_ID).sum() == 0
    assert (batch.targets[:, longest - 1 :] == IGNORE_INDEX).all()
    scored = batch.targets[:, : longest - 1]
    assert (scored != IGNORE_INDEX).all()
    short_rows = batch.inputs[:, 1] == store.tokens[1]  # rows of the 2-token text
    assert short_rows.any()
    assert (scored[short_rows][:, 1:] == 0).all()  # padding id 0 is a target
    assert torch.equal(batch.inputs[:, 1:longest], scored)


def test_starter_mode_truncates_to_block_size():
    store = make_store(lengths=(30,))
    batch = next(BatchStream(store, block_size=8, batch_size=2, seed=0, mode="starter_faithful"))
    assert batch.inputs[0].tolist() == store.tokens[:8].tolist()
    assert batch.targets[0].tolist() == [*store.tokens[1:8].tolist(), IGNORE_INDEX]


@pytest.mark.parametrize("mode", ["packed", "padded", "starter_faithful"])
def test_resume_gives_identical_batches(mode):
    store = two_source_store()
    weights = {"a": 0.3, "b": 0.7}
    stream = BatchStream(store, 6, 4, seed=11, mode=mode, source_weights=weights)
    for _ in range(5):
        next(stream)
    state = json.loads(json.dumps(stream.state_dict()))
    expected = [next(stream) for _ in range(3)]
    resumed = BatchStream(store, 6, 4, seed=11, mode=mode, source_weights=weights)
    resumed.load_state_dict(state)
    for got, want in zip((next(resumed) for _ in range(3)), expected, strict=True):
        assert torch.equal(got.inputs, want.inputs) and torch.equal(got.targets, want.targets)


def test_seed_determines_the_stream():
    store = make_store()
    a, b, c = (BatchStream(store, 5, 4, seed=s) for s in (0, 0, 1))
    first = [next(a).inputs for _ in range(3)]
    assert all(torch.equal(x, next(b).inputs) for x in first)
    assert not all(torch.equal(x, next(c).inputs) for x in first)


def test_load_state_dict_rejects_other_settings():
    store = make_store()
    state = BatchStream(store, 5, 4, seed=0).state_dict()
    with pytest.raises(ValueError, match="seed"):
        BatchStream(store, 5, 4, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="block_size"):
        BatchStream(store, 6, 4, seed=0).load_state_dict(state)


@pytest.mark.parametrize("mode", ["packed", "padded", "starter_faithful"])
def test_source_weights_are_respected(mode):
    store = two_source_store()
    stream = BatchStream(store, 4, 50, seed=5, mode=mode, source_weights={"a": 1, "b": 3})
    rows = torch.cat([next(stream).inputs for _ in range(40)])  # 2,000 rows
    from_a = (rows < 1000) | (rows == EOT_ID)
    pure = from_a.all(dim=1) | ~(from_a & (rows != EOT_ID)).any(dim=1)
    assert pure.all()  # a weighted row never mixes sources
    share_a = ((rows < 1000) & (rows != EOT_ID)).any(dim=1).float().mean().item()
    assert share_a == pytest.approx(0.25, abs=0.03)  # sd of the share is about 0.01


@pytest.mark.parametrize("mode", ["packed", "padded", "starter_faithful"])
def test_weight_zero_is_never_drawn(mode):
    store = two_source_store()
    stream = BatchStream(store, 4, 64, seed=6, mode=mode, source_weights={"a": 0.0, "b": 1.0})
    rows = torch.cat([next(stream).inputs for _ in range(10)])
    assert ((rows >= 1000) | (rows == EOT_ID) | (rows == 0)).all()
    stream = BatchStream(store, 4, 64, seed=6, mode=mode, source_weights={"a": 1.0})
    rows = torch.cat([next(stream).inputs for _ in range(10)])
    assert ((rows < 1000) | (rows == EOT_ID)).all()  # sources left out are never drawn


def test_bad_settings_are_named():
    store = two_source_store()
    with pytest.raises(ValueError, match="unknown sources"):
        BatchStream(store, 4, 2, 0, source_weights={"c": 1.0})
    with pytest.raises(ValueError, match=r"source_weights\['a'\]"):
        BatchStream(store, 4, 2, 0, source_weights={"a": -1.0, "b": 1.0})
    with pytest.raises(ValueError, match="positive finite sum"):
        BatchStream(store, 4, 2, 0, source_weights={"a": 0.0, "b": 0.0})
    with pytest.raises(ValueError, match="window of 8 tokens"):
        BatchStream(store, 7, 2, 0, source_weights={"a": 1.0})  # runs of a are 7 tokens
    with pytest.raises(ValueError, match="mode"):
        BatchStream(store, 4, 2, 0, mode="shuffled")
    with pytest.raises(ValueError, match="block_size"):
        BatchStream(store, 0, 2, 0)
    with pytest.raises(ValueError, match="seed"):
        BatchStream(store, 4, 2, -3)


def test_eval_batches_tile_the_stream_and_are_reproducible():
    store = make_store()
    block = 6
    batches = eval_batches(store, block, batch_size=4, n_batches=100, seed=0)
    again = eval_batches(store, block, batch_size=4, n_batches=100, seed=0)
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, again, strict=True))
    inputs = torch.cat([b.inputs for b in batches])
    n_windows = (store.n_tokens - 1) // block
    assert len(inputs) == n_windows  # all windows: the whole split is evaluated once
    flat = torch.from_numpy(store.tokens.astype(np.int64))
    assert torch.equal(inputs.flatten(), flat[: n_windows * block])
    few = eval_batches(store, block, batch_size=2, n_batches=2, seed=1)
    assert [b.inputs.shape[0] for b in few] == [2, 2]


def test_eval_batches_need_something_to_evaluate():
    with pytest.raises(ValueError, match="no window of 17 tokens"):
        eval_batches(make_store(lengths=(5, 6)), 16, batch_size=2, n_batches=1, seed=0)
    with pytest.raises(ValueError, match="no document"):
        eval_batches(make_store(lengths=()), 4, batch_size=2, n_batches=1, seed=0, mode="padded")


def test_eval_batches_padded_uses_each_document_once():
    store = make_store()
    batches = eval_batches(store, 8, batch_size=3, n_batches=10, seed=0, mode="padded")
    firsts = sorted(int(b.inputs[i, 0]) for b in batches for i in range(len(b.inputs)))
    assert firsts == sorted(int(store.tokens[s]) for s in store.doc_starts)


def naive_eval_windows(store, block):
    """Oracle: walk the documents one by one, cutting each gap-free stretch into windows."""
    runs = []
    for start, length in zip(store.doc_starts.tolist(), store.doc_lengths.tolist(), strict=True):
        if not runs or start != runs[-1][-1] + 1:
            runs.append([])
        runs[-1] += range(start, start + length)
    return [
        [int(store.tokens[i]) for i in run[j * block : j * block + block + 1]]
        for run in runs
        for j in range((len(run) - 1) // block)
    ]


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.2])
def test_eval_windows_of_a_fraction_lie_inside_its_documents(fraction):
    """A first_fraction store (the data ladder) is evaluated on its own documents, never on the
    rest of the split: its train loss is the loss on what it trained on."""
    store = two_source_store().first_fraction(fraction)
    block = 4
    batches = eval_batches(store, block, batch_size=3, n_batches=1000, seed=0)
    rows = torch.cat([torch.cat([b.inputs, b.targets[:, -1:]], dim=1) for b in batches])
    assert sorted(rows.tolist()) == sorted(naive_eval_windows(store, block))
    assert store.n_tokens == int(store.doc_lengths.sum())
