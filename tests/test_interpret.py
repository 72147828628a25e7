"""The interpretability study's parts: attention maps, residual-stream rows, feature choice."""

import numpy as np
import pytest
import torch

from picollm.interpret.activations import context, residual_stream
from picollm.interpret.attention import attention_maps_record
from picollm.interpret.features import spread_by_density
from picollm.models.transformer import TransformerConfig, TransformerLanguageModel

VOCAB, BLOCK = 40, 8


def tiny_transformer(seed: int = 0) -> TransformerLanguageModel:
    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size=VOCAB, block_size=BLOCK, d_model=16, n_heads=2)
    return TransformerLanguageModel(config)


def test_attention_maps_are_causal_distributions_from_the_model():
    model = tiny_transformer()
    tokens = [3, 1, 4, 1, 5, 9, 2]
    record = attention_maps_record(model, tokens, [str(t) for t in tokens])
    maps = torch.tensor(record["maps"], dtype=torch.float64)  # (L, H, T, T)
    assert maps.shape == (2, 2, 7, 7)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 7, dtype=torch.float64))
    assert torch.all(maps.triu(diagonal=1) == 0)
    expected = model.attention_maps(torch.tensor([tokens]))
    for block, block_map in enumerate(expected):
        torch.testing.assert_close(maps[block].float(), block_map[0].detach())
    assert record["tokens"] == [str(t) for t in tokens]


def test_attention_maps_need_one_text_per_token():
    with pytest.raises(ValueError, match="3 tokens but 2 token texts"):
        attention_maps_record(tiny_transformer(), [1, 2, 3], ["a", "b"])


@pytest.mark.parametrize("layer", [0, 1, -1])
def test_residual_stream_rows_are_each_windows_hidden_states(layer):
    model = tiny_transformer()
    stream = np.random.default_rng(0).integers(0, VOCAB, size=5 * BLOCK + 3).astype(np.uint16)
    activations = residual_stream(model, stream, layer, BLOCK, batch_windows=2)
    assert activations.values.shape == (5 * BLOCK, 16)
    assert activations.tokens.tolist() == stream[: 5 * BLOCK].tolist()  # partial window dropped
    with torch.no_grad():
        for w in range(5):
            window = torch.tensor(stream[w * BLOCK : (w + 1) * BLOCK], dtype=torch.int64)[None]
            expected = model.hidden_states(window)[layer][0]
            torch.testing.assert_close(activations.values[w * BLOCK : (w + 1) * BLOCK], expected)


def test_residual_stream_needs_one_window():
    with pytest.raises(ValueError, match="at least one window of 8 tokens"):
        residual_stream(tiny_transformer(), np.zeros(7, dtype=np.uint16), -1, BLOCK)


def test_context_stays_inside_the_window_the_model_read():
    stream = np.arange(3 * BLOCK, dtype=np.uint16) % VOCAB
    activations = residual_stream(tiny_transformer(), stream, -1, BLOCK)

    def decode(ids):
        return ",".join(map(str, ids))

    assert context(activations, BLOCK + 2, decode) == ("8,9", "10")  # window starts at 8
    assert context(activations, BLOCK, decode) == ("", "8")
    assert context(activations, BLOCK + 7, decode, before=3) == ("12,13,14", "15")


def test_spread_by_density_runs_from_densest_to_rarest_live_feature():
    density = torch.tensor([0.0, 0.5, 0.01, 0.2, 0.0, 0.05, 0.3])
    assert spread_by_density(density, 2) == [1, 2]
    assert spread_by_density(density, 5) == [1, 6, 3, 5, 2]
    assert spread_by_density(density, 50) == [1, 6, 3, 5, 2]  # only live features
    assert spread_by_density(torch.zeros(4), 3) == []
    assert spread_by_density(density, 5, min_density=0.05) == [1, 6, 3]  # denser than 0.05
