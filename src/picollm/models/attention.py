"""Causal self-attention behind one small interface, and the registry of attention kinds.

Every attention kind is an ``nn.Module`` constructed as
``cls(d_model=..., n_heads=..., layer_index=..., n_layers=..., rotary=..., **options)``
(kinds that do not use ``rotary`` accept and ignore it; an unknown option is a TypeError) and
implementing

- ``forward(x (B, T, D), cache=None) -> (y (B, T, D), cache)``: with ``cache=None`` a full
  causal pass (training); with a cache from ``new_cache``, ``x`` holds new tokens continuing
  the cached context and the advanced cache is returned. The cache carries the absolute
  position offset it needs (for RoPE).
- ``new_cache(batch_size, device, dtype)``: an empty cache for this layer.

Each kind initialises its own parameters (the Transformer does not reach inside): GPT-2 style,
weights N(0, 0.02) and the projection that writes into the residual stream scaled down by
``1 / sqrt(2 * n_layers)`` (Radford et al. 2019, section 2.3); see ``init_linear_``.
Kinds register themselves with ``@register_attention(name)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.positions import Rotary

INIT_STD = 0.02
"""Standard deviation of GPT-2's weight initialisation."""

ATTENTIONS: dict[str, type[nn.Module]] = {}

AttentionClass = TypeVar("AttentionClass", bound=type[nn.Module])


def register_attention(name: str) -> Callable[[AttentionClass], AttentionClass]:
    """Class decorator adding an attention kind to ``ATTENTIONS`` under ``name``."""

    def add(cls: AttentionClass) -> AttentionClass:
        known = ATTENTIONS.get(name)
        if known is not None and _qualified_name(known) != _qualified_name(cls):
            raise ValueError(
                f"attention {name!r} is already registered to {_qualified_name(known)}"
            )
        ATTENTIONS[name] = cls
        return cls

    return add


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def build_attention(
    name: str,
    d_model: int,
    n_heads: int,
    layer_index: int,
    n_layers: int,
    rotary: Rotary | None,
    options: dict[str, Any],
) -> nn.Module:
    """Construct the attention kind registered as ``name`` for one layer."""
    if name not in ATTENTIONS:
        raise ValueError(f"unknown attention {name!r}; choose one of {sorted(ATTENTIONS)}")
    return ATTENTIONS[name](
        d_model=d_model,
        n_heads=n_heads,
        layer_index=layer_index,
        n_layers=n_layers,
        rotary=rotary,
        **options,
    )


def residual_init_std(n_layers: int) -> float:
    """GPT-2's std for a projection writing into the residual stream: 0.02 / sqrt(2 * layers)."""
    return INIT_STD / math.sqrt(2 * n_layers)


def init_linear_(linear: nn.Linear, std: float = INIT_STD) -> None:
    """Draw a Linear's weight from N(0, std**2) and zero its bias, in place."""
    nn.init.normal_(linear.weight, mean=0.0, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


# --- the softmax attention kernel: one oracle-friendly path, one fast path ------------------------


def causal_mask(query_length: int, key_length: int, device: torch.device) -> torch.Tensor:
    """Boolean (T, S) mask, True where query i may see key j.

    The T queries are the last T of the S keys' positions, so query i sits at absolute
    position ``S - T + i`` and sees keys ``j <= S - T + i``.
    """
    queries = torch.arange(key_length - query_length, key_length, device=device)
    keys = torch.arange(key_length, device=device)
    return keys[None, :] <= queries[:, None]  # (T, S)


def explicit_causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax attention written out; returns (output (B,H,T,hd), weights (B,H,T,S)).

    ``weights = softmax(q k^T / sqrt(hd) + mask)`` with the queries being the last T of S
    positions (see ``causal_mask``).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    visible = causal_mask(q.shape[-2], k.shape[-2], q.device)  # (T, S)
    weights = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)  # (B, H, T, S)
    return weights @ v, weights  # (B, H, T, hd), (B, H, T, S)


def sdpa_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The same as ``explicit_causal_attention``'s output via ``F.scaled_dot_product_attention``."""
    query_length, key_length = q.shape[-2], k.shape[-2]
    if query_length == key_length:  # a full pass: the plain causal mask
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if query_length == 1:  # one new token sees every key
        return F.scaled_dot_product_attention(q, k, v)
    mask = causal_mask(query_length, key_length, q.device)  # several new tokens after a cache
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# --- the KV cache ----------------------------------------------------------------------------------


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, in buffers that double when full.

    ``length`` tokens are stored, so the next token sits at absolute position ``length``.
    Appending writes into the preallocated buffers (amortised O(1) per token) instead of
    concatenating, which would copy the whole cache at every step.
    """

    keys: torch.Tensor  # (B, H, capacity, hd)
    values: torch.Tensor  # (B, H, capacity, hd)
    length: int = 0

    @classmethod
    def empty(
        cls, batch_size: int, n_heads: int, head_dim: int, device: torch.device, dtype: torch.dtype
    ) -> KVCache:
        shape = (batch_size, n_heads, 0, head_dim)
        return cls(
            torch.empty(shape, device=device, dtype=dtype),
            torch.empty(shape, device=device, dtype=dtype),
        )

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values (B, H, T_new, hd); return all so far, each (B, H, S, hd)."""
        end = self.length + keys.shape[-2]
        if end > self.keys.shape[-2]:
            self._grow(end)
        self.keys[:, :, self.length : end] = keys
        self.values[:, :, self.length : end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.keys.shape[-2])
        self.keys = _resized(self.keys, capacity, self.length)
        self.values = _resized(self.values, capacity, self.length)


def _resized(buffer: torch.Tensor, capacity: int, keep: int) -> torch.Tensor:
    """A new (B, H, capacity, hd) buffer holding the first ``keep`` rows of ``buffer``."""
    batch, heads, _, head_dim = buffer.shape
    grown = buffer.new_empty(batch, heads, capacity, head_dim)
    grown[:, :, :keep] = buffer[:, :, :keep]
    return grown


# --- multi-head softmax attention ------------------------------------------------------------------

PATHS = ("sdpa", "explicit")


@register_attention("softmax")
class SoftmaxAttention(nn.Module):
    """Multi-head causal softmax self-attention (Vaswani et al. 2017) with an optional RoPE.

    The course writes a block as ``x + sum_j f_j(x)``, each head f_j with its own parameters:
    ``f_j(x) = A_j(x) V_j W_O^j`` with attention weights ``A_j(x) = softmax(mask(Q_j K_j^T / sqrt(hd)))``,
    ``Q_j = x W_Q^j`` (likewise K, V) and an output map ``W_O^j`` of shape (hd, D). Summing
    the heads is one matrix product over their concatenation:

        sum_j h_j W_O^j = [h_1 ... h_H] [W_O^1; ...; W_O^H] = concat(h) W_O,

    where ``h_j = A_j V_j`` is (T, hd) and ``W_O`` stacks the per-head maps into a (D, D)
    matrix (``out_proj``). Likewise the per-head ``W_Q^j`` sit side by side in one (D, D)
    matrix, so all heads are computed by three (here one fused) projections.

    Options: ``path`` = ``"sdpa"`` (``F.scaled_dot_product_attention``, the default) or
    ``"explicit"`` (the masked softmax written out; slower, same result).
    ``attention_weights(x)`` always uses the explicit path and returns the (B, H, T, T) maps.
    """

    uses_rotary = True  # applies RoPE to q and k when the model asks for it

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        layer_index: int,
        n_layers: int,
        rotary: Rotary | None = None,
        path: str = "sdpa",
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        if path not in PATHS:
            raise ValueError(f"attention option path must be one of {list(PATHS)}, got {path!r}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.path = path
        self.rotary = rotary
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)  # [W_Q | W_K | W_V]
        self.out_proj = nn.Linear(d_model, d_model, bias=False)  # W_O, writes the residual
        init_linear_(self.qkv_proj)
        init_linear_(self.out_proj, residual_init_std(n_layers))

    def new_cache(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        return KVCache.empty(batch_size, self.n_heads, self.head_dim, device, dtype)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache | None]:
        q, k, v = self._queries_keys_values(x, offset=0 if cache is None else cache.length)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, S, hd): the cached context plus the new tokens
        if self.path == "sdpa":
            heads = sdpa_causal_attention(q, k, v)  # (B, H, T, hd)
        else:
            heads, _ = explicit_causal_attention(q, k, v)
        return self.out_proj(self._merge_heads(heads)), cache  # (B, T, D)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention maps of a full causal pass over ``x`` (B, T, D): (B, H, T, T), rows sum to 1."""
        q, k, v = self._queries_keys_values(x, offset=0)
        _, weights = explicit_causal_attention(q, k, v)
        return weights

    def _queries_keys_values(
        self, x: torch.Tensor, offset: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x`` (B, T, D) to per-head q, k, v (B, H, T, hd); rotate q, k if RoPE."""
        batch, time, _ = x.shape
        qkv = self.qkv_proj(x).view(batch, time, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)
        return q, k, v

    def _merge_heads(self, heads: torch.Tensor) -> torch.Tensor:  # (B, H, T, hd) -> (B, T, D)
        batch, _, time, _ = heads.shape
        return heads.transpose(1, 2).reshape(batch, time, self.n_heads * self.head_dim)
