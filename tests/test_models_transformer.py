"""Transformer parts against independent oracles: RMSNorm, positions, attention, the model."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from picollm.models import build
from picollm.models.attention import (
    ATTENTIONS,
    KVCache,
    SoftmaxAttention,
    build_attention,
    explicit_causal_attention,
    register_attention,
    sdpa_causal_attention,
)
from picollm.models.norms import RMSNorm
from picollm.models.positions import Rotary, SinusoidalPositions
from picollm.models.transformer import TransformerLanguageModel

VOCAB = 19
BLOCK = 12


@pytest.fixture(autouse=True)
def fixed_seed() -> None:
    """Every test draws its random tensors from the same seed."""
    torch.manual_seed(0)


def transformer(seed: int = 0, **overrides: Any) -> TransformerLanguageModel:
    torch.manual_seed(seed)
    config = {"type": "transformer", "vocab_size": VOCAB, "block_size": BLOCK, "d_model": 16,
              "n_heads": 4, "n_blocks": 2, **overrides}  # fmt: skip
    return build(config).eval()


def tokens(batch: int = 2, time: int = BLOCK, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, time), generator=torch.Generator().manual_seed(seed))


# --- RMSNorm ---------------------------------------------------------------------------------------


def test_rmsnorm_equals_torch_rmsnorm_with_the_same_weights():
    ours, reference = RMSNorm(10, eps=1e-5), nn.RMSNorm(10, eps=1e-5)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(10))
        reference.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 10) * 3
    torch.testing.assert_close(ours(x), reference(x))


def test_rmsnorm_computes_in_float32_and_returns_the_input_dtype():
    x = torch.full((2, 8), 300.0, dtype=torch.float16)  # 300**2 overflows float16
    y = RMSNorm(8)(x)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y, torch.ones_like(x))


# --- positions -------------------------------------------------------------------------------------


def test_sinusoidal_positions_follow_vaswani_formula():
    dim, offset, length = 7, 3, 5
    table = SinusoidalPositions(dim)(offset, length)
    for row, position in enumerate(range(offset, offset + length)):
        for channel in range(dim):
            angle = position / 10000 ** (2 * (channel // 2) / dim)
            expected = math.sin(angle) if channel % 2 == 0 else math.cos(angle)
            assert table[row, channel].item() == pytest.approx(expected, abs=1e-5)


def test_rope_pairs_is_a_complex_rotation_of_adjacent_channels():
    head_dim, length = 8, 4
    x = torch.randn(2, 3, length, head_dim)  # (B, H, T, hd)
    rotary = Rotary(head_dim)
    for offset in (5, 1000):  # the second call extends the cached cos/sin tables
        positions = torch.arange(offset, offset + length, dtype=torch.float64)
        frequencies = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(positions, frequencies)  # (T, hd/2)
        rotation = torch.polar(torch.ones_like(angles), angles)
        as_complex = torch.view_as_complex(x.double().reshape(2, 3, length, head_dim // 2, 2))
        expected = torch.view_as_real(as_complex * rotation).flatten(-2).float()
        torch.testing.assert_close(rotary(x, offset), expected)


@pytest.mark.parametrize("mode", ["pairs", "halves"])
def test_rope_scores_depend_only_on_relative_position(mode):
    rotary = Rotary(16, mode=mode)
    q, k = torch.randn(16), torch.randn(16)

    def score(query_position: int, key_position: int) -> float:
        rotated_q = rotary(q.view(1, 16), query_position)
        rotated_k = rotary(k.view(1, 16), key_position)
        return (rotated_q @ rotated_k.T).item()

    for m, n, shift in [(7, 2, 5), (3, 3, 40), (0, 9, 1000)]:
        assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-3)
    assert score(7, 2) != pytest.approx(score(7, 3), abs=1e-3)


def test_rope_pairs_and_halves_agree_up_to_a_channel_permutation():
    head_dim = 8
    to_halves = torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))
    x = torch.randn(2, 3, 5, head_dim)
    pairs, halves = Rotary(head_dim, mode="pairs"), Rotary(head_dim, mode="halves")
    torch.testing.assert_close(halves(x[..., to_halves], 4), pairs(x, 4)[..., to_halves])
    assert not torch.allclose(halves(x, 4), pairs(x, 4))


def test_rope_rejects_an_odd_head_dimension():
    with pytest.raises(ValueError, match="even"):
        Rotary(5)


# --- attention -------------------------------------------------------------------------------------


def loop_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One query at a time: softmax over the keys at or before its absolute position."""
    queries, keys = q.shape[-2], k.shape[-2]
    out = torch.empty_like(q)
    for i in range(queries):
        visible = keys - queries + i + 1  # query i sits at position keys - queries + i
        query = q[..., i : i + 1, :]  # (..., 1, hd)
        scores = query @ k[..., :visible, :].transpose(-2, -1) / math.sqrt(q.shape[-1])
        out[..., i : i + 1, :] = scores.softmax(-1) @ v[..., :visible, :]  # (..., 1, hd)
    return out


@pytest.mark.parametrize(("queries", "keys"), [(7, 7), (1, 6), (3, 8)])
def test_explicit_and_sdpa_attention_equal_a_per_query_loop(queries, keys):
    q, k, v = torch.randn(2, 3, queries, 4), torch.randn(2, 3, keys, 4), torch.randn(2, 3, keys, 4)
    expected = loop_attention(q, k, v)
    explicit, weights = explicit_causal_attention(q, k, v)
    torch.testing.assert_close(explicit, expected)
    torch.testing.assert_close(sdpa_causal_attention(q, k, v), expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, queries))


def test_multi_head_attention_is_the_sum_of_independent_heads():
    """The course's x + sum_j f_j(x): each head's own W_Q, W_K, W_V and W_O^j, outputs summed."""
    d_model, n_heads, head_dim = 12, 3, 4
    attention = SoftmaxAttention(d_model=d_model, n_heads=n_heads, layer_index=0, n_layers=1)
    x = torch.randn(2, 5, d_model)
    w_q, w_k, w_v = attention.qkv_proj.weight.split(d_model)  # each (D, D), rows = out channels
    w_o = attention.out_proj.weight  # (D, D)
    summed = torch.zeros(2, 5, d_model)
    for j in range(n_heads):
        rows = slice(j * head_dim, (j + 1) * head_dim)
        q, k, v = x @ w_q[rows].T, x @ w_k[rows].T, x @ w_v[rows].T  # (B, T, hd) each
        summed += loop_attention(q, k, v) @ w_o[:, rows].T  # this head's W_O^j: (hd, D)
    torch.testing.assert_close(attention(x)[0], summed)


def test_kv_cache_returns_everything_appended_across_growth():
    cache = KVCache.empty(2, 3, 4, torch.device("cpu"), torch.float32)
    pieces = [torch.randn(2, 3, size, 4) for size in (5, 1, 1, 4, 9)]
    for i, piece in enumerate(pieces):
        keys, values = cache.append(piece, -piece)
        expected = torch.cat(pieces[: i + 1], dim=2)
        assert torch.equal(keys, expected) and torch.equal(values, -expected)
    assert cache.length == 20 and cache.keys.shape[2] >= 20


# --- the attention registry, with a toy kind plugged in as helper modules will ------------------


class CausalMeanAttention(nn.Module):
    """Each position outputs the mean of the values so far; its cache is a running sum."""

    def __init__(self, *, d_model, n_heads, layer_index, n_layers, rotary, gain=1.0):
        super().__init__()
        self.value = nn.Linear(d_model, d_model)
        self.gain = gain

    def new_cache(self, batch_size, device, dtype):
        return (torch.zeros(batch_size, self.value.out_features, device=device, dtype=dtype), 0)

    def forward(self, x, cache=None):
        total, count = (0.0, 0) if cache is None else cache
        sums = self.value(x).cumsum(dim=1) + (total if cache is None else total[:, None])
        counts = torch.arange(count + 1, count + x.shape[1] + 1, dtype=x.dtype)[:, None]
        new_cache = None if cache is None else (sums[:, -1], count + x.shape[1])
        return self.gain * sums / counts, new_cache


@pytest.fixture
def toy_attention():
    register_attention("causal_mean_test")(CausalMeanAttention)
    yield "causal_mean_test"
    del ATTENTIONS["causal_mean_test"]


def test_a_registered_attention_plugs_into_the_transformer(toy_attention):
    model = transformer(attention=toy_attention, attention_options={"gain": 2.0})
    assert all(block.attention.gain == 2.0 for block in model.blocks)
    sequence = tokens(2, 9)
    with torch.no_grad():
        full = model(sequence)
        state = model.new_state(2)
        first, state = model.forward_step(sequence[:, :4], state)
        rest, state = model.forward_step(sequence[:, 4:], state)
    torch.testing.assert_close(torch.cat((first, rest), dim=1), full)
    with pytest.raises(TypeError, match="attention weights"):
        model.attention_maps(sequence)


def test_registering_another_class_under_a_taken_name_fails(toy_attention):
    class Other(CausalMeanAttention):
        pass

    with pytest.raises(ValueError, match=toy_attention):
        register_attention(toy_attention)(Other)


def test_build_attention_names_unknown_kinds_and_options():
    with pytest.raises(ValueError, match="'flash'"):
        build_attention("flash", 8, 2, 0, 1, None, {})
    with pytest.raises(TypeError, match="window"):
        build_attention("softmax", 8, 2, 0, 1, None, {"window": 3})


# --- the Transformer -------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_explicit_and_sdpa_paths_give_the_same_model(position):
    fast = transformer(position=position)
    explicit = transformer(position=position, attention_options={"path": "explicit"})
    explicit.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(explicit(tokens()), fast(tokens()))


def test_attention_maps_are_causal_distributions_over_each_block_input():
    model = transformer(n_blocks=3)
    sequence = tokens(2, 7)
    maps = model.attention_maps(sequence)
    assert len(maps) == 3 and all(m.shape == (2, 4, 7, 7) for m in maps)
    for weights in maps:
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 7))
        assert torch.all(weights.triu(diagonal=1) == 0)
    states = model.hidden_states(sequence)
    for block, block_input, weights in zip(model.blocks[1:], states[:-1], maps[1:], strict=True):
        torch.testing.assert_close(block.attention_weights(block_input), weights)


def test_attention_maps_are_uniform_when_queries_are_zero():
    model = transformer()
    with torch.no_grad():
        model.blocks[0].attention.qkv_proj.weight[:16] = 0  # W_Q = 0: every score is 0
    weights = model.attention_maps(tokens(1, 5))[0]  # (1, H, 5, 5)
    expected = torch.tril(torch.ones(5, 5)) / torch.arange(1, 6)[:, None]
    torch.testing.assert_close(weights, expected.expand(1, 4, 5, 5))


def test_hidden_states_are_the_residual_stream_the_logits_read():
    model = transformer(n_blocks=3)
    sequence = tokens()
    states = model.hidden_states(sequence)
    assert len(states) == 3 and all(s.shape == (2, BLOCK, 16) for s in states)
    expected = model.unembedding(model.final_norm(states[-1]))
    torch.testing.assert_close(model(sequence), expected)


def test_weight_tying_shares_one_tensor():
    tied, untied = transformer(), transformer(tie_weights=False)
    assert tied.unembedding.weight is tied.token_embedding.weight
    assert untied.unembedding.weight is not untied.token_embedding.weight
    assert untied.num_parameters() - tied.num_parameters() == VOCAB * 16


def test_post_norm_and_pre_norm_differ_with_the_same_weights():
    pre, post = transformer(norm="pre"), transformer(norm="post")
    assert isinstance(post.final_norm, nn.Identity)
    shared = {k: v for k, v in pre.state_dict().items() if not k.startswith("final_norm")}
    post.load_state_dict(shared)
    with torch.no_grad():
        assert not torch.allclose(pre(tokens()), post(tokens()), atol=1e-3)


def test_learned_positions_bound_the_context_and_others_extrapolate():
    with pytest.raises(ValueError, match="max_context"):
        transformer(position="learned")(tokens(1, BLOCK + 1))
    state = transformer(position="learned").new_state(1)
    model = transformer(position="learned")
    _, state = model.forward_step(tokens(1, BLOCK), state)
    with pytest.raises(ValueError, match="max_context"):
        model.forward_step(tokens(1, 1), state)
    for position in ("sinusoidal", "rope", "nope"):
        assert transformer(position=position)(tokens(1, 3 * BLOCK)).shape == (1, 3 * BLOCK, VOCAB)


def test_rope_model_decodes_far_beyond_block_size():
    model = transformer(position="rope")
    sequence = tokens(2, 3 * BLOCK + 1)
    with torch.no_grad():
        full = model(sequence)
        state = model.new_state(2)
        _, state = model.forward_step(sequence[:, :-1], state)
        last, _ = model.forward_step(sequence[:, -1:], state)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=0)


def test_gpt2_initialisation_scales_residual_projections():
    n_blocks = 8
    model = transformer(d_model=128, n_blocks=n_blocks, mlp="swiglu")
    block = model.blocks[0]
    assert block.attention.qkv_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * n_blocks)
    assert block.attention.out_proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert block.mlp.down_proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert torch.all(block.attention_norm.weight == 1)


def test_swiglu_hidden_width_keeps_the_gelu_parameter_count():
    gelu, swiglu = transformer(d_model=48, mlp="gelu"), transformer(d_model=48, mlp="swiglu")
    assert swiglu.blocks[0].mlp.up_proj.out_features == 128  # 2/3 * 4 * 48
    assert swiglu.num_parameters() == gelu.num_parameters()


def test_training_flops_per_token_follow_palm():
    model = transformer(position="learned", tie_weights=True)
    n = model.num_parameters() - BLOCK * 16  # learned positions are lookups, not matmuls
    assert model.training_flops_per_token(BLOCK) == 6 * n + 12 * 2 * BLOCK * 16


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("position", ["sinusoidal", "rope", "nope"])
def test_four_times_the_block_stays_causal_and_decodes_like_a_full_pass(position, norm):
    """Length generalisation evaluates at 4T: the causality and KV-cache oracles hold there."""
    model = transformer(position=position, norm=norm)
    sequence = tokens(2, 4 * BLOCK)
    cut = 3 * BLOCK  # a change after a position past the block must not reach it
    changed = sequence.clone()
    changed[:, cut + 1 :] = (changed[:, cut + 1 :] + 1) % VOCAB
    with torch.no_grad():
        full, other = model(sequence), model(changed)
        state, pieces = model.new_state(2), []
        for start, end in (
            (0, 5),
            (5, BLOCK + 3),
            (BLOCK + 3, 4 * BLOCK - 1),
            (4 * BLOCK - 1, 4 * BLOCK),
        ):
            logits, state = model.forward_step(sequence[:, start:end], state)
            pieces.append(logits)
    torch.testing.assert_close(other[:, : cut + 1], full[:, : cut + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(other[:, cut + 1 :], full[:, cut + 1 :])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
