"""The linear-attention family as attention layers: ``linear``, ``gla`` and ``gated_deltanet``.

Each layer projects x (B, T, D) to per-head inputs of one recurrence (``ops_*``), mixes time
with it and projects back. A full pass (``cache=None``, training) runs the chunkwise form;
with a cache, one new token takes the recurrent step and several new tokens (a prefill) the
chunkwise form started from the cached state. The cache is a fixed-size recurrent state, so
decoding costs the same at every position. Layers follow the attention interface of
``picollm.models.attention``: they accept ``layer_index``, ``n_layers`` and ``rotary`` and use
only ``n_layers`` (to scale the init of the residual projection); positions are not needed
(the recurrences are order-aware) and ``rotary`` is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.attention import init_linear_, register_attention, residual_init_std
from picollm.models.linear_attention.op_utils import check_chunk_size
from picollm.models.linear_attention.ops_gdn import chunk_gated_delta_rule, step_gated_delta_rule
from picollm.models.linear_attention.ops_gla import chunk_gla, step_gla
from picollm.models.linear_attention.ops_linear import (
    chunk_linear_attention,
    step_linear_attention,
)
from picollm.models.linear_attention.short_conv import ShortConvolution
from picollm.models.norms import RMSNorm
from picollm.models.positions import Rotary


@dataclass(frozen=True)
class RecurrentCache:
    """Decoding cache of one linear-attention layer (a new one is returned at every call)."""

    state: torch.Tensor  # (B, H, D_k, D_v) in float32 (float64 for float64 models)
    conv_tail: torch.Tensor | None  # (B, K - 1, channels): the short convolution's last inputs
    length: int = 0  # tokens consumed so far


class RecurrentAttention(nn.Module):
    """What the three layers share: head reshapes, the chunk/step dispatch and the cache.

    Subclasses set ``chunk_op`` and ``step_op`` (two forms of one op, see ``ops_*``) and call
    :meth:`recur` with the op's per-head inputs.
    """

    chunk_op: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
    step_op: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]

    def __init__(
        self,
        n_heads: int,
        chunk_size: int,
        state_shape: tuple[int, int],
        conv: ShortConvolution | None = None,
    ):
        super().__init__()
        check_chunk_size(chunk_size)
        self.n_heads = n_heads
        self.chunk_size = chunk_size
        self.state_shape = state_shape  # per head: (D_k, D_v)
        self.conv = conv

    def new_cache(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> RecurrentCache:
        """Zero state and zero convolution tail: the start of a sequence."""
        state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        state = torch.zeros(
            batch_size, self.n_heads, *self.state_shape, device=device, dtype=state_dtype
        )
        tail = None if self.conv is None else self.conv.new_tail(batch_size, device, dtype)
        return RecurrentCache(state, tail)

    def recur(
        self,
        inputs: tuple[torch.Tensor, ...],
        cache: RecurrentCache | None,
        conv_tail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, RecurrentCache | None]:
        """Run the op on per-head ``inputs`` (q, k, v, gates...; (B, H, T, ...)) after ``cache``.

        Returns o (B, H, T, D_v) and the advanced cache holding ``conv_tail`` (None if no cache).
        """
        if cache is None:
            o, _ = self.chunk_op(*inputs, chunk_size=self.chunk_size)
            return o, None
        time = inputs[0].shape[2]
        if time == 1:
            o, state = self.step_op(*inputs, initial_state=cache.state, output_final_state=True)
        else:
            o, state = self.chunk_op(
                *inputs,
                initial_state=cache.state,
                output_final_state=True,
                chunk_size=self.chunk_size,
            )
        return o, RecurrentCache(state, conv_tail, cache.length + time)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H * d) -> (B, H, T, d)
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:  # (B, H, T, d) -> (B, T, H * d)
        return x.transpose(1, 2).flatten(-2)


class GatedRMSNorm(nn.Module):
    """Per-head output norm gated by the input: ``RMSNorm(o_h) * silu(gate_h)``.

    The output stage of GLA (Yang et al. 2023, §4) and of Gated DeltaNet.
    """

    def __init__(self, head_dim: int):
        super().__init__()
        self.norm = RMSNorm(head_dim)

    def forward(self, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """o (B, H, T, d), gate (B, T, H * d) -> (B, T, H * d)."""
        normed = self.norm(o.transpose(1, 2))  # (B, T, H, d)
        return normed.flatten(-2) * F.silu(gate)


@register_attention("linear")
class LinearAttention(RecurrentAttention):
    """Causal linear attention (Katharopoulos et al. 2020, arXiv 2006.16236, §3.2-3.4).

    Softmax similarity is replaced by phi(q)^T phi(k) with phi(x) = elu(x) + 1 and the output
    normalised by phi(q)^T sum_j phi(k_j). Heads of width D / H; the state carries the
    normaliser as an extra value column (see ``ops_linear``). Option: ``chunk_size`` (64).
    """

    chunk_op = staticmethod(chunk_linear_attention)
    step_op = staticmethod(step_linear_attention)

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        layer_index: int,
        n_layers: int,
        rotary: Rotary | None = None,
        chunk_size: int = 64,
    ):
        head_dim = _head_width("d_model", d_model, n_heads)
        super().__init__(n_heads, chunk_size, state_shape=(head_dim, head_dim + 1))
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        init_linear_(self.qkv_proj)
        init_linear_(self.out_proj, residual_init_std(n_layers))

    def forward(
        self, x: torch.Tensor, cache: RecurrentCache | None = None
    ) -> tuple[torch.Tensor, RecurrentCache | None]:
        q, k, v = (self.split_heads(t) for t in self.qkv_proj(x).chunk(3, dim=-1))  # (B,H,T,d)
        q, k = F.elu(q) + 1, F.elu(k) + 1  # the positive feature map phi
        o, cache = self.recur((q, k, v), cache)  # (B, H, T, d)
        return self.out_proj(self.merge_heads(o)), cache  # (B, T, D)


@register_attention("gla")
class GatedLinearAttention(RecurrentAttention):
    """Gated linear attention (Yang et al. 2023, arXiv 2312.06635, §4).

    Per head a state with per-key-channel decay alpha_t = exp(g_t), where the log-gate
    g_t = logsigmoid(W_2 W_1 x_t + b) / gate_logit_normalizer comes from a low-rank projection
    (D -> gate_low_rank -> D_k); the normaliser (16 in the paper's code) keeps alpha near 1.
    The output is RMSNorm'd per head, gated by swish(W_r x_t) and projected back.

    Options: ``expand_k`` (0.5; key width = expand_k * D), ``expand_v`` (1.0; value width =
    expand_v * D), ``gate_low_rank`` (16), ``gate_logit_normalizer`` (16), ``chunk_size`` (64).
    """

    chunk_op = staticmethod(chunk_gla)
    step_op = staticmethod(step_gla)

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        layer_index: int,
        n_layers: int,
        rotary: Rotary | None = None,
        expand_k: float = 0.5,
        expand_v: float = 1.0,
        gate_low_rank: int = 16,
        gate_logit_normalizer: float = 16.0,
        chunk_size: int = 64,
    ):
        _check_positive_int("n_heads", n_heads)
        key_dim = _expanded_width("expand_k", d_model, expand_k, n_heads)
        value_dim = _expanded_width("expand_v", d_model, expand_v, n_heads)
        _check_positive_int("gate_low_rank", gate_low_rank)
        _check_positive_float("gate_logit_normalizer", gate_logit_normalizer)
        super().__init__(
            n_heads, chunk_size, state_shape=(key_dim // n_heads, value_dim // n_heads)
        )
        self.widths = (key_dim, key_dim, value_dim)
        self.gate_logit_normalizer = float(gate_logit_normalizer)
        self.qkv_proj = nn.Linear(d_model, 2 * key_dim + value_dim, bias=False)
        self.decay_proj = nn.Sequential(
            nn.Linear(d_model, gate_low_rank, bias=False),
            nn.Linear(gate_low_rank, key_dim, bias=True),
        )
        self.output_gate_proj = nn.Linear(d_model, value_dim, bias=False)
        self.out_norm = GatedRMSNorm(value_dim // n_heads)
        self.out_proj = nn.Linear(value_dim, d_model, bias=False)
        for linear in (self.qkv_proj, *self.decay_proj, self.output_gate_proj):
            init_linear_(linear)
        init_linear_(self.out_proj, residual_init_std(n_layers))

    def forward(
        self, x: torch.Tensor, cache: RecurrentCache | None = None
    ) -> tuple[torch.Tensor, RecurrentCache | None]:
        q, k, v = (self.split_heads(t) for t in self.qkv_proj(x).split(self.widths, dim=-1))
        log_decay = F.logsigmoid(self.decay_proj(x)) / self.gate_logit_normalizer  # (B, T, Dk*H)
        o, cache = self.recur((q, k, v, self.split_heads(log_decay)), cache)  # (B, H, T, Dv)
        gated = self.out_norm(o, self.output_gate_proj(x))  # (B, T, H * Dv)
        return self.out_proj(gated), cache


@register_attention("gated_deltanet")
class GatedDeltaNet(RecurrentAttention):
    """Gated DeltaNet (Yang, Kautz & Hatamizadeh 2024, arXiv 2412.06464, §3).

    q, k, v come from one projection followed by a short causal depthwise convolution with
    SiLU; q and k are L2-normalised per head. Write strength beta_t = sigmoid(W_b x_t) and
    Mamba2's decay (Dao & Gu 2024, arXiv 2405.21060) g_t = -exp(A_log) * softplus(W_a x_t +
    dt_bias) per head. The output is RMSNorm'd per head, gated by swish(W_g x_t), projected back.

    ``A_log`` and ``dt_bias`` are drawn as in Mamba2 (A ~ U(0, 16); dt log-uniform in
    [1e-3, 1e-1], floored at 1e-4, stored as its inverse softplus) and carry
    ``_no_weight_decay = True`` for the optimiser.

    Options: ``head_dim`` (key width per head; default D / H), ``expand_v`` (1.0; value width
    per head = expand_v * head_dim; the paper's models use 2), ``conv_size`` (4),
    ``chunk_size`` (64).
    """

    chunk_op = staticmethod(chunk_gated_delta_rule)
    step_op = staticmethod(step_gated_delta_rule)

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        layer_index: int,
        n_layers: int,
        rotary: Rotary | None = None,
        head_dim: int | None = None,
        expand_v: float = 1.0,
        conv_size: int = 4,
        chunk_size: int = 64,
    ):
        _check_positive_int("n_heads", n_heads)
        if head_dim is None:
            head_dim = _head_width("d_model", d_model, n_heads)
        _check_positive_int("head_dim", head_dim)
        head_v_dim = _expanded_width("expand_v", head_dim, expand_v, 1)
        key_dim, value_dim = n_heads * head_dim, n_heads * head_v_dim
        super().__init__(
            n_heads,
            chunk_size,
            state_shape=(head_dim, head_v_dim),
            conv=ShortConvolution(2 * key_dim + value_dim, conv_size),
        )
        self.widths = (key_dim, key_dim, value_dim)
        self.qkv_proj = nn.Linear(d_model, 2 * key_dim + value_dim, bias=False)
        self.decay_proj = nn.Linear(d_model, n_heads, bias=False)
        self.beta_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.empty(n_heads).uniform_(0, 16).log())  # (H,)
        self.dt_bias = nn.Parameter(_inverse_softplus(_log_uniform(n_heads, 1e-3, 1e-1, 1e-4)))
        self.A_log._no_weight_decay = True
        self.dt_bias._no_weight_decay = True
        self.output_gate_proj = nn.Linear(d_model, value_dim, bias=False)
        self.out_norm = GatedRMSNorm(head_v_dim)
        self.out_proj = nn.Linear(value_dim, d_model, bias=False)
        for linear in (self.qkv_proj, self.decay_proj, self.beta_proj, self.output_gate_proj):
            init_linear_(linear)
        init_linear_(self.out_proj, residual_init_std(n_layers))

    def forward(
        self, x: torch.Tensor, cache: RecurrentCache | None = None
    ) -> tuple[torch.Tensor, RecurrentCache | None]:
        qkv, tail = self.conv(self.qkv_proj(x), None if cache is None else cache.conv_tail)
        q, k, v = (self.split_heads(t) for t in qkv.split(self.widths, dim=-1))  # (B, H, T, d)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = torch.sigmoid(self.beta_proj(x)).transpose(1, 2)  # (B, H, T)
        rate = F.softplus(self.decay_proj(x).float() + self.dt_bias)  # (B, T, H)
        log_decay = (-self.A_log.exp() * rate).transpose(1, 2)  # (B, H, T)
        o, cache = self.recur((q, k, v, log_decay, beta), cache, tail)  # (B, H, T, Dv)
        gated = self.out_norm(o, self.output_gate_proj(x))  # (B, T, H * Dv)
        return self.out_proj(gated), cache


def _head_width(name: str, width: int, n_heads: int) -> int:
    _check_positive_int("n_heads", n_heads)
    if width % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide {name}={width}")
    return width // n_heads


def _expanded_width(name: str, width: int, expand: float, n_heads: int) -> int:
    """``expand * width``, which must be a whole multiple of ``n_heads``."""
    _check_positive_float(name, expand)
    expanded = expand * width
    if expanded != int(expanded) or int(expanded) % n_heads:
        raise ValueError(
            f"{name}={expand} gives width {expanded}, which must be a whole multiple of "
            f"n_heads={n_heads}"
        )
    return int(expanded)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_positive_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _log_uniform(size: int, low: float, high: float, floor: float) -> torch.Tensor:
    """``size`` draws log-uniform in [low, high], clamped below at ``floor``."""
    log_draw = torch.rand(size) * (math.log(high) - math.log(low)) + math.log(low)
    return log_draw.exp().clamp(min=floor)


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) = y: x = y + log(1 - exp(-y))."""
    return y + torch.log(-torch.expm1(-y))
