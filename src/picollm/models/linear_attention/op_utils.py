"""Plumbing shared by the linear-attention ops: argument checks, dtypes and chunk reshaping.

Every op takes heads-first tensors ``(B, H, T, D)`` (batch, heads, time, feature) and carries a
per-head state ``(B, H, D_k, D_v)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int, int]:
    """Validate q, k ``(B, H, T, D_k)`` and v ``(B, H, T, D_v)``; return ``(B, H, T, D_k, D_v)``."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"{name} must have shape (batch, heads, time, dim), got {tuple(x.shape)}"
            )
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"v must share (batch, heads, time) {tuple(q.shape[:3])} with q, got {tuple(v.shape)}"
        )
    batch, heads, time, key_dim = q.shape
    if time < 1:
        raise ValueError(f"q, k, v need at least one time step, got time={time}")
    return batch, heads, time, key_dim, v.shape[-1]


def check_shape(name: str, x: torch.Tensor, expected: tuple[int, ...]) -> None:
    """Raise a ValueError naming ``name`` unless ``x`` is a tensor of shape ``expected``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != expected:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def resolve_scale(scale: float | None, key_dim: int) -> float:
    """The query scale: ``D_k ** -0.5`` unless given."""
    return key_dim**-0.5 if scale is None else float(scale)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Recurrences run in float32, or float64 when the inputs are float64 (for oracles)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def initial_state_or_zeros(
    initial_state: torch.Tensor | None, shape: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor:
    """The starting state in the compute dtype of ``like``: the given one (checked) or zeros."""
    dtype = compute_dtype(like)
    if initial_state is None:
        return torch.zeros(shape, dtype=dtype, device=like.device)
    check_shape("initial_state", initial_state, shape)
    return initial_state.to(dtype)


def split_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """``(B, H, T, ...)`` -> ``(B, H, N, C, ...)``, N = ceil(T / C), zero-padding the end of time.

    Zero padding is neutral for every op here: a padded step has k = v = 0 (writes nothing) and
    log-gate 0 (forgets nothing), so the state after the last real token is the final state.
    """
    time = x.shape[2]
    pad = -time % chunk_size
    if pad:
        trailing = [0, 0] * (x.dim() - 3)  # F.pad lists dims from the last one backwards
        x = F.pad(x, [*trailing, 0, pad])
    return x.unflatten(2, (-1, chunk_size))


def merge_chunks(x: torch.Tensor, time: int) -> torch.Tensor:
    """Inverse of :func:`split_chunks`: ``(B, H, N, C, ...)`` -> ``(B, H, T, ...)``."""
    return x.flatten(2, 3)[:, :, :time]


def causal_mask(size: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(size, size)`` mask, True where query i may see key j (j <= i)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()
