"""Gated linear attention (GLA; Yang et al. 2023, arXiv 2312.06635), three forms.

Per head, with a data-dependent per-key-channel decay alpha_t = exp(g_t) in (0, 1] (§4):

    S_t = Diag(alpha_t) S_{t-1} + k_t v_t^T     (D_k, D_v)
    o_t = S_t^T (scale * q_t)                    scale = D_k ** -0.5 by default

Tensors are heads-first: q, k and the log-gates g ``(B, H, T, D_k)`` (g <= 0), v
``(B, H, T, D_v)``; the state is ``(B, H, D_k, D_v)`` in float32. All three forms share one
signature and return ``(o, final_state or None)``.
"""

from __future__ import annotations

import math

import torch

from picollm.models.linear_attention.op_utils import (
    causal_mask,
    check_chunk_size,
    check_qkv,
    check_shape,
    compute_dtype,
    initial_state_or_zeros,
    merge_chunks,
    resolve_scale,
    split_chunks,
)

MAX_FACTOR_EXPONENT = 30.0
"""Bound on the exponents of the factored intra-chunk scores: factors stay in [e^-30, e^30]."""


def naive_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Oracle: the recurrence token by token, written literally with Diag(alpha_t) as a matrix."""
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape))
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q, k, v, g = (x.to(dtype) for x in (q, k, v, g))
    outputs = []
    for t in range(time):
        decay = torch.diag_embed(g[:, :, t].exp())  # (B, H, Dk, Dk)
        write = k[:, :, t, :, None] @ v[:, :, t, None, :]  # (B, H, Dk, Dv)
        state = decay @ state + write
        outputs.append(state.transpose(-1, -2) @ (scale * q[:, :, t, :, None]))  # (B, H, Dv, 1)
    o = torch.cat(outputs, dim=-1).transpose(-1, -2)  # (B, H, T, Dv)
    return o.to(out_dtype), state if output_final_state else None


def chunk_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise-parallel form for training (the paper's §4), O(T C D_k + T D_k D_v) time.

    Inside chunk n (C steps) let B be the inclusive cumulative sum of g over the chunk (row i is
    sum_{j <= i} g_j, all <= 0) and b its last row. Then

        O_n = (Q * exp(B)) S_{n-1} + A V,   A_ij = sum_c Q_ic K_jc exp(B_ic - B_jc)  (j <= i)
        S_n = Diag(exp(b)) S_{n-1} + (K * exp(b - B))^T V

    The state terms only exponentiate numbers <= 0 and A is built from bounded factors (see
    :func:`intra_chunk_scores`), so fast decay underflows to zero instead of overflowing. The
    only Python loop is the state recurrence over chunks.
    """
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape))
    check_chunk_size(chunk_size)
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q_chunks, k_chunks, v_chunks, g_chunks = (
        split_chunks(x.to(dtype), chunk_size) for x in (q, k, v, g)
    )  # (B, H, N, C, D)
    q_chunks = q_chunks * scale
    decay_in = g_chunks.cumsum(dim=-2)  # (B, H, N, C, Dk): log-decay from chunk start to row i
    decay_all = decay_in[..., -1:, :]  # (B, H, N, 1, Dk): log-decay over the whole chunk

    k_to_end = k_chunks * (decay_all - decay_in).exp()  # (B, H, N, C, Dk)
    writes = k_to_end.transpose(-1, -2) @ v_chunks  # (B, H, N, Dk, Dv)
    chunk_decay = decay_all.squeeze(-2).exp()[..., None]  # (B, H, N, Dk, 1)
    states_before = []
    for decay_n, write_n in zip(chunk_decay.unbind(2), writes.unbind(2), strict=True):
        states_before.append(state)
        state = decay_n * state + write_n
    states = torch.stack(states_before, dim=2)  # (B, H, N, Dk, Dv): state entering chunk n

    inter = (q_chunks * decay_in.exp()) @ states  # (B, H, N, C, Dv)
    intra = intra_chunk_scores(q_chunks, k_chunks, decay_in) @ v_chunks  # (B, H, N, C, Dv)
    o = merge_chunks(inter + intra, time)
    return o.to(out_dtype), state if output_final_state else None


def intra_chunk_scores(q: torch.Tensor, k: torch.Tensor, decay_in: torch.Tensor) -> torch.Tensor:
    """Causal decayed scores A_ij = sum_c q_ic k_jc exp(B_ic - B_jc), j <= i, within each chunk.

    q, k, decay_in (= B): ``(..., C, D_k)``; returns ``(..., C, C)``. With a reference r per
    channel halfway between the chunk's first and last B, exp(B_i - B_j) = exp(B_i - r) *
    exp(r - B_j), so A is one matrix product of rescaled q and k (masked to j <= i). The factors
    lie in [exp(-span / 2), exp(span / 2)], span = B_first - B_last, so this is used where the
    span is at most 2 * MAX_FACTOR_EXPONENT nats in every channel. Chunks with steeper decay
    take :func:`sub_chunk_scores`, whose exponents are never positive.
    """
    first, last = decay_in[..., :1, :], decay_in[..., -1:, :]  # (..., 1, Dk)
    reference = (first + last) / 2
    bound = MAX_FACTOR_EXPONENT  # the clamps only bite in steep chunks, which are replaced below
    q_scaled = q * (decay_in - reference).clamp(-bound, bound).exp()  # (..., C, Dk)
    k_scaled = k * (reference - decay_in).clamp(-bound, bound).exp()  # (..., C, Dk)
    mask = causal_mask(q.shape[-2], q.device)
    scores = (q_scaled @ k_scaled.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (..., C, C)
    steep = (first - last).amax(dim=(-2, -1)) > 2 * bound  # (...,)
    if steep.any():
        index = steep.nonzero(as_tuple=True)
        scores = scores.index_put(index, sub_chunk_scores(q[index], k[index], decay_in[index]))
    return scores


def sub_chunk_scores(q: torch.Tensor, k: torch.Tensor, decay_in: torch.Tensor) -> torch.Tensor:
    """The scores of :func:`intra_chunk_scores` for any decay, however steep.

    As FLA's kernels do, the chunk is cut into sub-chunks of c rows. For query sub-chunk p with
    reference r_p = B at its first row, keys j in earlier sub-chunks factor as
    exp(B_i - r_p) * exp(r_p - B_j), both <= 1: one matrix product per sub-chunk. The c x c
    diagonal blocks are computed elementwise with a masked exponent, so no exponent is ever
    positive.
    """
    chunk = q.shape[-2]
    sub = sub_chunk_size(chunk)
    n_sub = chunk // sub
    q_sub, k_sub, decay_sub = (x.unflatten(-2, (n_sub, sub)) for x in (q, k, decay_in))
    # (..., S, c, Dk)
    reference = decay_sub[..., :1, :]  # (..., S, 1, Dk): B at each sub-chunk's first row

    # Keys before each query sub-chunk p, decayed up to its reference point.
    key_position = torch.arange(chunk, device=q.device)
    sub_start = torch.arange(n_sub, device=q.device) * sub
    earlier = key_position[None, :] < sub_start[:, None]  # (S, C)
    to_reference = reference - decay_in.unsqueeze(-3)  # (..., S, C, Dk)
    to_reference = to_reference.masked_fill(~earlier[..., None], float("-inf"))
    k_to_reference = k.unsqueeze(-3) * to_reference.exp()  # (..., S, C, Dk)
    q_from_reference = q_sub * (decay_sub - reference).exp()  # (..., S, c, Dk)
    earlier_scores = q_from_reference @ k_to_reference.transpose(-1, -2)  # (..., S, c, C)

    # Diagonal blocks: exp(B_i - B_j) elementwise for j <= i inside the sub-chunk.
    within = decay_sub.unsqueeze(-2) - decay_sub.unsqueeze(-3)  # (..., S, c, c, Dk)
    within = within.masked_fill(~causal_mask(sub, q.device)[..., None], float("-inf"))
    diagonal = (q_sub.unsqueeze(-2) * k_sub.unsqueeze(-3) * within.exp()).sum(-1)  # (..., S, c, c)
    on_diagonal = torch.eye(n_sub, dtype=q.dtype, device=q.device)[:, None, :, None]  # (S,1,S,1)
    diagonal_blocks = diagonal.unsqueeze(-2) * on_diagonal  # (..., S, c, S, c)
    scores = earlier_scores.unflatten(-1, (n_sub, sub)) + diagonal_blocks  # (..., S, c, S, c)
    return scores.flatten(-4, -3).flatten(-2, -1)  # (..., C, C)


def sub_chunk_size(chunk_size: int) -> int:
    """The divisor c of C closest to sqrt(C) from below.

    The elementwise work per query row is (c + C / c) * D_k exponentials (diagonal blocks plus
    keys decayed to each reference), smallest at c = sqrt(C); the rest is matrix products.
    """
    return max(c for c in range(1, math.isqrt(chunk_size) + 1) if chunk_size % c == 0)


def step_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Recurrent form for decoding: O(D_k D_v) per token with broadcast decay; T is usually 1."""
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape))
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q, k, v, alpha = q.to(dtype) * scale, k.to(dtype), v.to(dtype), g.to(dtype).exp()
    outputs = []
    for t in range(time):
        state = alpha[:, :, t, :, None] * state + k[:, :, t, :, None] * v[:, :, t, None, :]
        outputs.append((q[:, :, t, None, :] @ state).squeeze(-2))  # (B, H, Dv)
    o = torch.stack(outputs, dim=2)  # (B, H, T, Dv)
    return o.to(out_dtype), state if output_final_state else None
