"""The vectorised k-gram MLP against a starter-style per-position loop and a one-hot Linear."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from picollm.models import build
from picollm.models.kgram import KGramMLPLanguageModel, OneHotWindow

VOCAB = 11


@pytest.fixture(autouse=True)
def fixed_seed() -> None:
    """Every test draws its random tensors from the same seed."""
    torch.manual_seed(0)


def kgram(seed: int = 0, **overrides: Any) -> KGramMLPLanguageModel:
    torch.manual_seed(seed)
    config = {"type": "kgram_mlp", "vocab_size": VOCAB, "kgram_k": 3, "embed_size": 4,
              "hidden_size": 6, "num_inner_mlp_layers": 2, **overrides}  # fmt: skip
    return build(config).eval()


def tokens(batch: int, time: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


def explicit_one_hot_linear(layer: OneHotWindow) -> nn.Linear:
    """The nn.Linear over concatenated one-hot vectors that ``layer`` claims to be."""
    linear = nn.Linear(layer.weight.shape[0], layer.weight.shape[1])
    with torch.no_grad():
        linear.weight.copy_(layer.weight.T)
        linear.bias.copy_(layer.bias)
    return linear


def loop_logits(model: KGramMLPLanguageModel, sequence: torch.Tensor) -> torch.Tensor:
    """The starter's way: for every example and position build the window, run the MLP."""
    k, pad = model.config.kgram_k, model.padding_index
    last = 0 if model.config.window == "current" else 1  # the window ends at t - last
    one_hot = model.config.input == "onehot"
    first_layer = explicit_one_hot_linear(model.window_layer) if one_hot else model.window_layer
    batch, time = sequence.shape
    out = torch.empty(batch, time, model.vocab_size)
    for b in range(batch):
        for t in range(time):
            positions = range(t - last - k + 1, t - last + 1)
            window = torch.tensor([sequence[b, p].item() if p >= 0 else pad for p in positions])
            if one_hot:
                window = F.one_hot(window, VOCAB + 1).float().flatten()  # (k * (V + 1),)
            hidden = model.hidden_layers(first_layer(window.unsqueeze(0)))
            out[b, t] = model.unembedding(hidden)[0]
    return out


@pytest.mark.parametrize("window", ["current", "starter"])
@pytest.mark.parametrize("input_", ["embedding", "onehot"])
@pytest.mark.parametrize("k", [1, 3])
def test_vectorised_model_equals_a_per_position_loop(window, input_, k):
    model = kgram(window=window, input=input_, kgram_k=k)
    sequence = tokens(3, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(sequence), loop_logits(model, sequence))


def test_one_hot_layer_equals_a_linear_over_one_hot_vectors():
    layer = OneHotWindow(n_symbols=VOCAB + 1, k=3, width=5)
    windows = torch.randint(0, VOCAB + 1, (4, 6, 3))
    one_hot = F.one_hot(windows, VOCAB + 1).float().flatten(-2)  # (4, 6, 3 * (V + 1))
    torch.testing.assert_close(layer(windows), explicit_one_hot_linear(layer)(one_hot))


def test_one_hot_layer_is_initialised_like_that_linear():
    layer = OneHotWindow(n_symbols=VOCAB + 1, k=3, width=50)
    bound = 1 / (3 * (VOCAB + 1)) ** 0.5
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    assert layer.bias.abs().max() <= bound


def test_current_window_sees_the_current_token_and_starter_window_does_not():
    sequence = tokens(2, 8)
    changed = sequence.clone()
    changed[:, 4] = (sequence[:, 4] + 1) % VOCAB
    for window, affected in (("current", 4), ("starter", 5)):
        model = kgram(window=window)
        with torch.no_grad():
            before, after = model(sequence), model(changed)
        assert torch.equal(before[:, :affected], after[:, :affected])
        assert not torch.allclose(before[:, affected], after[:, affected])


def test_padding_is_a_dedicated_symbol_not_token_zero():
    model = kgram(kgram_k=3)
    assert model.padding_index == VOCAB
    with torch.no_grad():
        after_zeros = model(torch.tensor([[0, 0, 5]]))[0, 2]  # window (0, 0, 5)
        at_start = model(torch.tensor([[5]]))[0, 0]  # window (pad, pad, 5)
    assert not torch.allclose(after_zeros, at_start)


def test_state_is_a_sliding_window_of_the_last_k_tokens():
    model = kgram(kgram_k=3)
    state = model.new_state(2)
    assert torch.equal(state, torch.full((2, 3), VOCAB))
    _, state = model.forward_step(torch.tensor([[4], [7]]), state)
    assert torch.equal(state, torch.tensor([[VOCAB, VOCAB, 4], [VOCAB, VOCAB, 7]]))
    _, state = model.forward_step(torch.tensor([[1, 2, 3, 9], [5, 6, 8, 0]]), state)
    assert torch.equal(state, torch.tensor([[2, 3, 9], [6, 8, 0]]))


def test_hidden_size_defaults_to_embed_size():
    model = kgram(hidden_size=None, embed_size=5)
    assert model.unembedding.in_features == 5


def test_the_padding_symbol_is_not_a_valid_token():
    with pytest.raises(ValueError, match="tokens"):
        kgram()(torch.tensor([[1, VOCAB]]))
