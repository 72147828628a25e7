"""Causal linear attention (Katharopoulos et al. 2020, arXiv 2006.16236), three forms.

With non-negative features phi(q_t), phi(k_t) (the layer applies phi = elu + 1, their §3.2),
causal linear attention is a recurrence (§3.3 "Causal masking", §3.4 "Transformers are RNNs"):

    S_t = S_{t-1} + phi(k_t) v_t^T              (D_k, D_v)
    z_t = z_{t-1} + phi(k_t)                    (D_k,)
    o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)

The ops take the features q = phi(q), k = phi(k) as given. Tensors are heads-first:
q, k ``(B, H, T, D_k)``, v ``(B, H, T, D_v)``. The state packs S and z into one tensor
``(B, H, D_k, D_v + 1)`` whose last column is z: appending a constant 1 to every value makes the
numerator and the normaliser one matrix product. A query scale would cancel in the ratio, so
there is none. All three forms share one signature and return ``(o, final_state or None)``.
"""

from __future__ import annotations

import torch

from picollm.models.linear_attention.op_utils import (
    causal_mask,
    check_chunk_size,
    check_qkv,
    compute_dtype,
    initial_state_or_zeros,
    merge_chunks,
    split_chunks,
)

DEFAULT_EPS = 1e-6


def naive_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eps: float = DEFAULT_EPS,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Oracle: the recurrence above token by token, S and z kept apart as in the paper."""
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    dtype, out_dtype = compute_dtype(q), q.dtype
    packed = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim + 1), q)
    memory, normaliser = packed[..., :value_dim], packed[..., value_dim]  # (B,H,Dk,Dv), (B,H,Dk)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    outputs = []
    for t in range(time):
        q_t, k_t, v_t = q[:, :, t], k[:, :, t], v[:, :, t]  # (B, H, D)
        memory = memory + torch.einsum("bhi,bhj->bhij", k_t, v_t)
        normaliser = normaliser + k_t
        numerator = torch.einsum("bhi,bhij->bhj", q_t, memory)  # (B, H, Dv)
        denominator = torch.einsum("bhi,bhi->bh", q_t, normaliser)  # (B, H)
        outputs.append(numerator / (denominator[..., None] + eps))
    o = torch.stack(outputs, dim=2).to(out_dtype)
    final = torch.cat([memory, normaliser[..., None]], dim=-1) if output_final_state else None
    return o, final


def chunk_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eps: float = DEFAULT_EPS,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise-parallel form for training, O(T C D_k + T D_k D_v) time, no loop over time.

    Per chunk n of C steps (Q, K: (C, D_k); V: (C, D_v + 1) with the 1-column appended):
    O_n = Q S_{n-1} + tril(Q K^T) V, and S_n = S_{n-1} + K^T V. Without decay the states entering
    every chunk are an exclusive prefix sum, so all chunks are computed at once.
    """
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_chunk_size(chunk_size)
    dtype, out_dtype = compute_dtype(q), q.dtype
    initial = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim + 1), q)
    ones = torch.ones(batch, heads, time, 1, dtype=dtype, device=v.device)
    values = torch.cat([v.to(dtype), ones], dim=-1)  # (B, H, T, Dv + 1)
    q_chunks, k_chunks, v_chunks = (
        split_chunks(x, chunk_size) for x in (q.to(dtype), k.to(dtype), values)
    )  # (B, H, N, C, D)

    writes = k_chunks.transpose(-1, -2) @ v_chunks  # (B, H, N, Dk, Dv + 1)
    totals = writes.cumsum(dim=2)
    before = torch.cat([torch.zeros_like(writes[:, :, :1]), totals[:, :, :-1]], dim=2)
    states_before = initial[:, :, None] + before  # (B, H, N, Dk, Dv + 1): state entering chunk n

    mask = causal_mask(chunk_size, q.device)
    scores = (q_chunks @ k_chunks.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, N, C, C)
    packed = q_chunks @ states_before + scores @ v_chunks  # (B, H, N, C, Dv + 1)
    packed = merge_chunks(packed, time)  # (B, H, T, Dv + 1)
    o = packed[..., :value_dim] / (packed[..., value_dim:] + eps)
    final = initial + totals[:, :, -1] if output_final_state else None
    return o.to(out_dtype), final


def step_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    eps: float = DEFAULT_EPS,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Recurrent form for decoding: O(D_k D_v) per token on the packed state; T is usually 1."""
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim + 1), q)
    ones = torch.ones(batch, heads, time, 1, dtype=dtype, device=v.device)
    values = torch.cat([v.to(dtype), ones], dim=-1)  # (B, H, T, Dv + 1)
    q, k = q.to(dtype), k.to(dtype)
    outputs = []
    for t in range(time):
        state = state + k[:, :, t, :, None] * values[:, :, t, None, :]
        outputs.append((q[:, :, t, None, :] @ state).squeeze(-2))  # (B, H, Dv + 1)
    packed = torch.stack(outputs, dim=2)  # (B, H, T, Dv + 1)
    o = packed[..., :value_dim] / (packed[..., value_dim:] + eps)
    return o.to(out_dtype), state if output_final_state else None
