"""The gated delta rule of Gated DeltaNet (Yang, Kautz & Hatamizadeh 2024, arXiv 2412.06464).

Per head, with scalar decay alpha_t = exp(g_t) in (0, 1] and write strength beta_t in (0, 1)
(the gated delta rule of their §3, written for a state S with keys on the rows):

    S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T      (D_k, D_v)
    o_t = S_t^T (scale * q_t)                                             scale = D_k ** -0.5

Keys should be L2-normalised (the layer does it) so that I - beta k k^T is a contraction.
Tensors are heads-first: q, k ``(B, H, T, D_k)``, v ``(B, H, T, D_v)``, log-decay g and beta
``(B, H, T)``; the state is ``(B, H, D_k, D_v)`` in float32. All three forms share one signature
and return ``(o, final_state or None)``.
"""

from __future__ import annotations

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


def naive_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Oracle: the rule token by token, literally, with the (D_k, D_k) transition matrix formed."""
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape[:3]))
    check_shape("beta", beta, tuple(q.shape[:3]))
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q, k, v, g, beta = (x.to(dtype) for x in (q, k, v, g, beta))
    identity = torch.eye(key_dim, dtype=dtype, device=q.device)
    outputs = []
    for t in range(time):
        k_t = k[:, :, t, :, None]  # (B, H, Dk, 1)
        alpha_t, beta_t = g[:, :, t, None, None].exp(), beta[:, :, t, None, None]  # (B, H, 1, 1)
        transition = alpha_t * (identity - beta_t * k_t @ k_t.transpose(-1, -2))  # (B, H, Dk, Dk)
        state = transition @ state + beta_t * k_t @ v[:, :, t, None, :]
        outputs.append(state.transpose(-1, -2) @ (scale * q[:, :, t, :, None]))  # (B, H, Dv, 1)
    o = torch.cat(outputs, dim=-1).transpose(-1, -2)  # (B, H, T, Dv)
    return o.to(out_dtype), state if output_final_state else None


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise-parallel form for training (the GDN paper's §3), O(T C D + T D_k D_v) time.

    Inside chunk n (C steps) let gamma be the inclusive cumulative sum of g (gamma_i <= 0),
    Gamma_ij = exp(gamma_i - gamma_j) for j <= i (else 0) and D = Diag(beta). The WY
    representation of the product of the chunk's transitions (DeltaNet, Yang et al. 2024,
    arXiv 2406.06484, §3) comes from one unit-lower-triangular solve:

        T = (I + StrictLower(D K K^T * Gamma))^-1
        U = T D V,   W = T D (K * exp(gamma))
        V'_n = U - W S_{n-1}                                      (corrected values)
        O_n  = (Q * exp(gamma)) S_{n-1} + ((Q K^T) * Gamma) V'_n
        S_n  = exp(gamma_C) S_{n-1} + (K * exp(gamma_C - gamma))^T V'_n

    S_n is affine in S_{n-1}: S_n = M_n S_{n-1} + R_n with M_n = exp(gamma_C) I - K~^T W and
    R_n = K~^T U (K~ = K * exp(gamma_C - gamma)), so everything except that one (D_k, D_k) x
    (D_k, D_v) product per chunk is computed for all chunks at once.
    """
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape[:3]))
    check_shape("beta", beta, tuple(q.shape[:3]))
    check_chunk_size(chunk_size)
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q_chunks, k_chunks, v_chunks = (
        split_chunks(x.to(dtype), chunk_size) for x in (q, k, v)
    )  # (B, H, N, C, D)
    q_chunks = q_chunks * scale
    g_chunks, beta_chunks = (
        split_chunks(x.to(dtype)[..., None], chunk_size) for x in (g, beta)
    )  # (B, H, N, C, 1)
    decay_in = g_chunks.cumsum(dim=-2)  # (B, H, N, C, 1): gamma
    decay_all = decay_in[..., -1:, :]  # (B, H, N, 1, 1): gamma_C

    mask = causal_mask(chunk_size, q.device)
    pairwise = (decay_in - decay_in.transpose(-1, -2)).masked_fill(~mask, float("-inf"))
    pair_decay = pairwise.exp()  # (B, H, N, C, C): Gamma, zero above the diagonal
    key_overlap = beta_chunks * (k_chunks @ k_chunks.transpose(-1, -2)) * pair_decay
    strict_lower = key_overlap.tril(-1)  # (B, H, N, C, C)
    right_hand = torch.cat([v_chunks, k_chunks * decay_in.exp()], dim=-1) * beta_chunks
    solved = torch.linalg.solve_triangular(
        strict_lower, right_hand, upper=False, unitriangular=True
    )  # (B, H, N, C, Dv + Dk): (I + strict_lower)^-1 [D V, D K exp(gamma)]
    u, w = solved.split([value_dim, key_dim], dim=-1)

    k_to_end = k_chunks * (decay_all - decay_in).exp()  # (B, H, N, C, Dk): K~
    identity = torch.eye(key_dim, dtype=dtype, device=q.device)
    transitions = decay_all.exp() * identity - k_to_end.transpose(-1, -2) @ w  # (B,H,N,Dk,Dk)
    writes = k_to_end.transpose(-1, -2) @ u  # (B, H, N, Dk, Dv)
    states_before = []
    for transition_n, write_n in zip(transitions.unbind(2), writes.unbind(2), strict=True):
        states_before.append(state)
        state = transition_n @ state + write_n
    states = torch.stack(states_before, dim=2)  # (B, H, N, Dk, Dv): state entering chunk n

    corrected = u - w @ states  # (B, H, N, C, Dv): V'
    scores = (q_chunks @ k_chunks.transpose(-1, -2)) * pair_decay  # (B, H, N, C, C)
    o = (q_chunks * decay_in.exp()) @ states + scores @ corrected  # (B, H, N, C, Dv)
    return merge_chunks(o, time).to(out_dtype), state if output_final_state else None


def step_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Recurrent form for decoding, O(D_k D_v) per token; T is usually 1.

    Uses the delta-rule reading of the update: decay S <- alpha S, then write the corrected value
    v' = beta (v - S^T k), S <- S + k v'^T.
    """
    batch, heads, time, key_dim, value_dim = check_qkv(q, k, v)
    check_shape("g", g, tuple(q.shape[:3]))
    check_shape("beta", beta, tuple(q.shape[:3]))
    scale = resolve_scale(scale, key_dim)
    dtype, out_dtype = compute_dtype(q), q.dtype
    state = initial_state_or_zeros(initial_state, (batch, heads, key_dim, value_dim), q)
    q, k, v, beta = q.to(dtype) * scale, k.to(dtype), v.to(dtype), beta.to(dtype)
    alpha = g.to(dtype).exp()
    outputs = []
    for t in range(time):
        state = alpha[:, :, t, None, None] * state
        k_t = k[:, :, t, None, :]  # (B, H, 1, Dk)
        correction = beta[:, :, t, None, None] * (v[:, :, t, None, :] - k_t @ state)  # (B,H,1,Dv)
        state = state + k_t.transpose(-1, -2) @ correction
        outputs.append(q[:, :, t, None, :] @ state)  # (B, H, 1, Dv)
    o = torch.cat(outputs, dim=2)  # (B, H, T, Dv)
    return o.to(out_dtype), state if output_final_state else None
