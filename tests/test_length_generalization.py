"""Loss by position beyond the training length, against a loop over windows and positions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from picollm.length_generalization import PositionLosses, binned, loss_by_position
from picollm.models import build

VOCAB, BLOCK = 13, 8


def transformer(position: str):
    torch.manual_seed(0)
    return build(
        {"type": "transformer", "vocab_size": VOCAB, "block_size": BLOCK, "d_model": 16,
         "n_heads": 2, "n_blocks": 2, "position": position}
    ).eval()  # fmt: skip


def stream(n: int = 400) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, size=n)


def naive(model, tokens, length, n_windows, upto):
    """Per window and position, -log p(next token), one window and one position at a time."""
    table = np.zeros((n_windows, upto))
    with torch.no_grad():
        for w in range(n_windows):
            window = torch.tensor(tokens[w * length : w * length + upto + 1]).long()
            logits = model(window[None, :-1])[0]  # (upto, V)
            for p in range(upto):
                table[w, p] = -torch.log_softmax(logits[p].double(), -1)[window[p + 1]].item()
    return table


@pytest.mark.parametrize("position", ["sinusoidal", "rope", "nope"])
def test_positions_that_extrapolate_run_to_four_times_the_block(position):
    model, tokens = transformer(position), stream()
    result = loss_by_position(model, tokens, 4 * BLOCK, max_windows=5, batch_size=2)
    table = naive(model, tokens, 4 * BLOCK, 5, 4 * BLOCK)
    assert result.stops_at == 4 * BLOCK and result.windows == 5
    np.testing.assert_allclose(result.loss, table.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(result.stderr, table.std(axis=0, ddof=1) / math.sqrt(5), rtol=1e-4)


def test_learned_positions_stop_at_the_block_and_say_so():
    model, tokens = transformer("learned"), stream()
    result = loss_by_position(model, tokens, 4 * BLOCK, batch_size=4)
    assert result.stops_at == BLOCK and result.windows == (len(tokens) - 1) // (4 * BLOCK)
    assert np.isfinite(result.loss[:BLOCK]).all() and np.isnan(result.loss[BLOCK:]).all()
    table = naive(model, tokens, 4 * BLOCK, result.windows, BLOCK)
    np.testing.assert_allclose(result.loss[:BLOCK], table.mean(axis=0), rtol=1e-5)
    record = result.to_dict()
    assert record["loss"][BLOCK] is None and record["stops_at"] == BLOCK


def test_binned_averages_ranges_and_leaves_out_those_past_the_stop():
    result = loss_by_position(transformer("learned"), stream(), 2 * BLOCK, batch_size=4)
    ends, means = binned(result, 3)
    assert ends.tolist() == [3, 6]  # 9 would reach past position 7, where learned stops
    assert means.tolist() == pytest.approx([result.loss[:3].mean(), result.loss[3:6].mean()])
    rope = loss_by_position(transformer("rope"), stream(), 2 * BLOCK, batch_size=4)
    ends, means = binned(rope, 3)
    assert ends.tolist() == [3, 6, 9, 12, 15, 16]
    assert means[-1] == pytest.approx(rope.loss[15])


def test_position_losses_round_trip_through_json():
    result = loss_by_position(transformer("learned"), stream(), 2 * BLOCK, batch_size=4)
    again = PositionLosses.from_dict(json.loads(json.dumps(result.to_dict())))
    np.testing.assert_array_equal(again.loss, result.loss)
    assert (again.windows, again.stops_at) == (result.windows, result.stops_at)


def test_bad_input_is_named():
    model = transformer("rope")
    with pytest.raises(ValueError, match="no window"):
        loss_by_position(model, stream(10), 4 * BLOCK)
    with pytest.raises(ValueError, match="length"):
        loss_by_position(model, stream(), 0)
    with pytest.raises(ValueError, match="1-D integer"):
        loss_by_position(model, stream().astype(float), 8)
