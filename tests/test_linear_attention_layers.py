"""The linear-attention layers: registry, options, decoding with a cache, causality, models."""

from __future__ import annotations

import math

import pytest
import torch

from picollm.models import build
from picollm.models.attention import ATTENTIONS, build_attention
from picollm.models.linear_attention import (
    GatedDeltaNet,
    GatedLinearAttention,
    LinearAttention,
    RecurrentCache,
    ShortConvolution,
    naive_gated_delta_rule,
    naive_gla,
    naive_linear_attention,
)

KINDS = {"linear": LinearAttention, "gla": GatedLinearAttention, "gated_deltanet": GatedDeltaNet}
D_MODEL, N_HEADS = 32, 4


def make_layer(kind: str, seed: int = 0, dtype: torch.dtype = torch.float32, **options):
    torch.manual_seed(seed)
    layer = build_attention(kind, D_MODEL, N_HEADS, 0, 2, None, {"chunk_size": 8, **options})
    return layer.to(dtype)


def decode_in_pieces(
    layer, x: torch.Tensor, pieces: list[int]
) -> tuple[torch.Tensor, RecurrentCache]:
    cache = layer.new_cache(x.shape[0], x.device, x.dtype)
    outputs, start = [], 0
    for size in pieces:
        y, cache = layer(x[:, start : start + size], cache)
        outputs.append(y)
        start += size
    assert start == x.shape[1]
    return torch.cat(outputs, dim=1), cache


def heads(x: torch.Tensor, n_heads: int = N_HEADS) -> torch.Tensor:  # (B, T, H*d) -> (B, H, T, d)
    return x.reshape(*x.shape[:2], n_heads, -1).permute(0, 2, 1, 3)


def gated_norm(layer, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """RMSNorm of each head's output times swish of the output gate, heads concatenated."""
    norm = layer.out_norm.norm
    normed = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    merged = normed.permute(0, 2, 1, 3).reshape(*x.shape[:2], -1)  # (B, T, H*d)
    gate = x @ layer.output_gate_proj.weight.T
    return merged * gate * torch.sigmoid(gate)


def reference_forward(kind: str, layer, x: torch.Tensor) -> torch.Tensor:
    """Each layer written out from its paper with the layer's parameters and the naive ops."""
    if kind == "linear":
        q, k, v = (x @ w.T for w in layer.qkv_proj.weight.chunk(3))
        phi = torch.nn.functional.elu
        o, _ = naive_linear_attention(heads(phi(q) + 1), heads(phi(k) + 1), heads(v))
        return o.permute(0, 2, 1, 3).reshape(x.shape) @ layer.out_proj.weight.T
    if kind == "gla":
        q, k, v = (x @ w.T for w in layer.qkv_proj.weight.split(layer.widths))
        low_rank, full_rank = layer.decay_proj
        logits = x @ low_rank.weight.T @ full_rank.weight.T + full_rank.bias
        g = torch.nn.functional.logsigmoid(logits) / layer.gate_logit_normalizer
        o, _ = naive_gla(heads(q), heads(k), heads(v), heads(g))
        return gated_norm(layer, o, x) @ layer.out_proj.weight.T
    # gated_deltanet: causal depthwise conv written as a sum over the last K inputs
    projected = x @ layer.qkv_proj.weight.T  # (B, T, C)
    weight = layer.conv.conv.weight[:, 0]  # (C, K): the last tap multiplies the current input
    size = weight.shape[1]
    conv = torch.zeros_like(projected)
    for t in range(x.shape[1]):
        for i in range(min(size, t + 1)):
            conv[:, t] += weight[:, size - 1 - i] * projected[:, t - i]
    q, k, v = (conv * torch.sigmoid(conv)).split(layer.widths, dim=-1)
    q, k = (heads(t) / heads(t).norm(dim=-1, keepdim=True) for t in (q, k))
    beta = torch.sigmoid(x @ layer.beta_proj.weight.T).permute(0, 2, 1)  # (B, H, T)
    rate = torch.log1p(torch.exp(x @ layer.decay_proj.weight.T + layer.dt_bias))  # softplus
    g = (-torch.exp(layer.A_log) * rate).permute(0, 2, 1)  # (B, H, T)
    o, _ = naive_gated_delta_rule(q, k, heads(v), g, beta)
    return gated_norm(layer, o, x) @ layer.out_proj.weight.T


@pytest.mark.parametrize("kind", list(KINDS))
def test_layers_equal_their_papers_written_out(kind):
    layer = make_layer(kind, dtype=torch.float64)
    x = torch.randn(2, 19, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        for parameter in layer.parameters():  # away from the init's special values
            parameter.add_(0.1 * torch.randn_like(parameter))
        y, _ = layer(x)
        torch.testing.assert_close(y, reference_forward(kind, layer, x))


@pytest.mark.parametrize("kind", list(KINDS))
def test_registered_names_build_the_layers(kind):
    assert ATTENTIONS[kind] is KINDS[kind]
    layer = ATTENTIONS[kind](
        d_model=D_MODEL, n_heads=N_HEADS, layer_index=1, n_layers=3, rotary=None
    )
    assert layer.chunk_size == 64
    y, cache = layer(torch.randn(2, 5, D_MODEL))
    assert y.shape == (2, 5, D_MODEL) and cache is None


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("pieces", [[5, 1, 1, 3, 11], [1] * 21, [20, 1], [9, 12]])
def test_decoding_with_a_cache_equals_the_full_pass(kind, pieces):
    """Single tokens take the recurrent step, longer pieces the chunk form from the cached state."""
    layer = make_layer(kind)
    x = torch.randn(3, 21, D_MODEL)
    full, _ = layer(x)
    pieced, cache = decode_in_pieces(layer, x, pieces)
    torch.testing.assert_close(pieced, full, rtol=1e-5, atol=1e-6)
    assert cache.length == 21


@pytest.mark.parametrize("kind", list(KINDS))
def test_float64_layers_keep_a_float64_state(kind):
    layer = make_layer(kind, dtype=torch.float64)
    x = torch.randn(2, 13, D_MODEL, dtype=torch.float64)
    full, _ = layer(x)
    pieced, cache = decode_in_pieces(layer, x, [4, 1, 8])
    assert full.dtype == torch.float64 and cache.state.dtype == torch.float64
    torch.testing.assert_close(pieced, full)


@pytest.mark.parametrize("kind", list(KINDS))
def test_outputs_never_depend_on_later_inputs(kind):
    layer = make_layer(kind)
    x = torch.randn(2, 30, D_MODEL)
    y, _ = layer(x)
    for t in (0, 7, 8, 17):
        changed = x.clone()
        changed[:, t + 1 :] = 10 * torch.randn_like(changed[:, t + 1 :])
        y_changed, _ = layer(changed)
        torch.testing.assert_close(y_changed[:, : t + 1], y[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(y_changed[:, t + 1 :], y[:, t + 1 :])


@pytest.mark.parametrize("kind", ["gla", "gated_deltanet"])
def test_extreme_gates_stay_finite(kind):
    """Saturated decay (alpha ~ 0) next to none (alpha ~ 1) over a long sequence."""
    if kind == "gla":
        layer = make_layer(kind, gate_logit_normalizer=0.001, chunk_size=64)
    else:
        layer = make_layer(kind, chunk_size=64)
        with torch.no_grad():
            layer.A_log.copy_(torch.tensor([math.log(1e4), math.log(1e-8)] * (N_HEADS // 2)))
    x = (10 * torch.randn(1, 700, D_MODEL)).requires_grad_()
    y, _ = layer(x)
    y.square().sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("kind", list(KINDS))
def test_unknown_options_are_named(kind):
    with pytest.raises(TypeError, match="window"):
        make_layer(kind, window=3)


@pytest.mark.parametrize(
    ("kind", "options", "named"),
    [
        ("linear", {"chunk_size": 0}, "chunk_size"),
        ("gla", {"expand_k": 0.3}, "expand_k"),
        ("gla", {"expand_v": -1.0}, "expand_v"),
        ("gla", {"gate_low_rank": 0}, "gate_low_rank"),
        ("gla", {"gate_logit_normalizer": 0}, "gate_logit_normalizer"),
        ("gated_deltanet", {"head_dim": 0}, "head_dim"),
        ("gated_deltanet", {"expand_v": 1.3}, "expand_v"),
        ("gated_deltanet", {"conv_size": 0}, "conv_size"),
        ("gated_deltanet", {"chunk_size": 2.5}, "chunk_size"),
    ],
)
def test_bad_option_values_are_named(kind, options, named):
    with pytest.raises(ValueError, match=named):
        make_layer(kind, **options)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="n_heads=5 must divide d_model=32"):
        LinearAttention(d_model=32, n_heads=5, layer_index=0, n_layers=1)
    with pytest.raises(ValueError, match="expand_k=0.5 gives width 16.0"):
        GatedLinearAttention(d_model=32, n_heads=5, layer_index=0, n_layers=1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_heads_must_be_a_positive_int(kind):
    with pytest.raises(ValueError, match="n_heads must be a positive int"):
        KINDS[kind](d_model=32, n_heads=0, layer_index=0, n_layers=1)


def test_gla_widths_follow_the_options():
    layer = make_layer("gla", expand_k=0.5, expand_v=2.0, gate_low_rank=4)
    assert layer.state_shape == (D_MODEL // 2 // N_HEADS, 2 * D_MODEL // N_HEADS)
    assert layer.decay_proj[0].out_features == 4
    assert layer.new_cache(2, "cpu", torch.float32).state.shape == (2, N_HEADS, 4, 16)


def test_gated_deltanet_widths_and_conv_tail_follow_the_options():
    layer = make_layer("gated_deltanet", head_dim=6, expand_v=2.0, conv_size=3)
    cache = layer.new_cache(2, "cpu", torch.float32)
    assert cache.state.shape == (2, N_HEADS, 6, 12)
    assert cache.conv_tail.shape == (2, 2, N_HEADS * (6 + 6 + 12))


def test_gated_deltanet_decay_parameters_are_initialised_as_in_mamba2_and_skip_weight_decay():
    torch.manual_seed(0)
    layer = GatedDeltaNet(d_model=D_MODEL, n_heads=64, layer_index=0, n_layers=1, head_dim=2)
    rate_a = layer.A_log.exp()
    dt = torch.nn.functional.softplus(layer.dt_bias)
    assert ((rate_a > 0) & (rate_a < 16)).all()
    assert ((dt >= 1e-3 - 1e-9) & (dt <= 1e-1 + 1e-9)).all()
    flagged = {
        name for name, p in layer.named_parameters() if getattr(p, "_no_weight_decay", False)
    }
    assert flagged == {"A_log", "dt_bias"}


def test_short_convolution_matches_an_explicit_sum_and_continues_from_its_tail():
    torch.manual_seed(0)
    conv = ShortConvolution(channels=5, kernel_size=3)
    x = torch.randn(2, 9, 5)
    weight = conv.conv.weight[:, 0]  # (C, K): weight[c, K - 1] multiplies the current input
    padded = torch.cat([torch.zeros(2, 2, 5), x], dim=1)
    expected = torch.stack([(padded[:, t : t + 3] * weight.T).sum(dim=1) for t in range(9)], dim=1)
    y, tail = conv(x)
    torch.testing.assert_close(y, torch.nn.functional.silu(expected))
    torch.testing.assert_close(tail, x[:, -2:])
    first, tail = conv(x[:, :4])
    second, _ = conv(x[:, 4:], tail)
    torch.testing.assert_close(torch.cat([first, second], dim=1), y)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_transformer_with_each_kind_trains_and_decodes(kind):
    torch.manual_seed(0)
    model = build(
        {
            "type": "transformer",
            "vocab_size": 40,
            "block_size": 32,
            "d_model": D_MODEL,
            "n_heads": N_HEADS,
            "n_blocks": 2,
            "position": "nope",
            "attention": kind,
            "attention_options": {"chunk_size": 8},
        }
    )
    tokens = torch.randint(0, 40, (2, 19))
    logits = model(tokens)
    torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()
    ).backward()
    assert torch.isfinite(logits).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    state = model.new_state(2)
    pieces = []
    for start, stop in [(0, 6), (6, 7), (7, 8), (8, 19)]:
        step_logits, state = model.forward_step(tokens[:, start:stop], state)
        pieces.append(step_logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), logits, rtol=1e-4, atol=1e-5)
