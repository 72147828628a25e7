"""Position signals for the Transformer: learned, sinusoidal and rotary (RoPE).

NoPE (Kazemnejad et al. 2023, arXiv 2305.19466) needs no code: the causal mask alone lets a
decoder infer positions. Learned and sinusoidal signals are added to the token embeddings;
RoPE instead rotates queries and keys inside attention so that their dot product depends only
on the distance between the two positions.
"""

from __future__ import annotations

import torch
from torch import nn

ROPE_MODES = ("pairs", "halves")


class AngleTable(nn.Module):
    """cos and sin of ``position * base ** (-2i / dim)`` for i = 0 .. n_frequencies - 1.

    Kept in tables over positions 0 .. N - 1 that double in length when a later position is
    asked for, so decoding does not recompute them per token. The angles are computed in
    float64 (a float32 angle at position 10^4 is off by ~1e-3 rad) and the tables stored in the
    buffers' dtype (float32 unless the module is cast).
    """

    def __init__(self, n_frequencies: int, dim: int, base: float):
        super().__init__()
        self.dim, self.base = dim, base
        self.register_buffer("cos_table", torch.empty(0, n_frequencies), persistent=False)
        self.register_buffer("sin_table", torch.empty(0, n_frequencies), persistent=False)

    def forward(self, offset: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions offset .. offset + length - 1, each (T, n_frequencies)."""
        end = offset + length
        if end > self.cos_table.shape[0]:
            self._extend(max(end, 2 * self.cos_table.shape[0]))
        return self.cos_table[offset:end], self.sin_table[offset:end]

    def _extend(self, positions: int) -> None:
        device, n_frequencies = self.cos_table.device, self.cos_table.shape[1]
        exponents = torch.arange(n_frequencies, dtype=torch.float64, device=device) * 2 / self.dim
        position = torch.arange(positions, dtype=torch.float64, device=device)
        angles = torch.outer(position, self.base**-exponents)  # (positions, n_frequencies)
        self.cos_table = angles.cos().to(self.cos_table.dtype)
        self.sin_table = angles.sin().to(self.sin_table.dtype)


class LearnedPositions(nn.Module):
    """A trained vector per absolute position 0 .. max_positions - 1 (GPT-2's ``wpe``)."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(max_positions, dim)

    def forward(self, offset: int, length: int) -> torch.Tensor:  # -> (T, D)
        end = offset + length
        if end > self.table.num_embeddings:
            raise ValueError(
                f"positions up to {end - 1} requested but learned positions stop at "
                f"{self.table.num_embeddings - 1} (block_size={self.table.num_embeddings})"
            )
        return self.table.weight[offset:end]


class SinusoidalPositions(nn.Module):
    """Fixed sinusoids of Vaswani et al. 2017 (arXiv 1706.03762, section 3.5).

    ``PE[pos, 2i] = sin(pos / base**(2i/D))`` and ``PE[pos, 2i+1] = cos(pos / base**(2i/D))``.
    Computed, not learned, so it is defined for every position (an odd D drops the last cosine).
    The signal has amplitude 1 and is added to the token embedding unscaled.
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.angles = AngleTable((dim + 1) // 2, dim, base)

    def forward(self, offset: int, length: int) -> torch.Tensor:  # -> (T, D)
        cos, sin = self.angles(offset, length)  # (T, ceil(D/2)) each
        interleaved = torch.stack((sin, cos), dim=-1)  # (T, ceil(D/2), 2)
        return interleaved.flatten(-2)[:, : self.dim]


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, arXiv 2104.09864, eq. 34).

    The head dimension is split into ``head_dim / 2`` planes; plane i at position m is rotated
    by the angle ``m * theta_i`` with ``theta_i = base ** (-2i / head_dim)``. Rotations compose,
    so ``<R_m q, R_n k> = <q, R_(n-m) k>``: attention scores see only relative positions.

    Two conventions pick the channels that form plane i, and they are the same model up to a
    fixed permutation of the q/k channels:

    - ``pairs``: adjacent channels (2i, 2i+1), as in the paper and Llama (a complex multiply).
    - ``halves``: channels (i, i + head_dim/2), as in GPT-NeoX (rotate the two halves).
    """

    def __init__(self, head_dim: int, base: float = 10000.0, mode: str = "pairs"):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        if mode not in ROPE_MODES:
            raise ValueError(f"rope_mode must be one of {list(ROPE_MODES)}, got {mode!r}")
        self.head_dim, self.mode = head_dim, mode
        self.angles = AngleTable(head_dim // 2, head_dim, base)

    def forward(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        """Rotate ``x`` (..., T, head_dim) whose rows sit at positions offset .. offset + T - 1."""
        cos, sin = self.angles(offset, x.shape[-2])  # (T, head_dim/2) each
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        if self.mode == "pairs":
            first, second = x[..., 0::2], x[..., 1::2]  # (..., T, head_dim/2) each
        else:
            first, second = x.chunk(2, dim=-1)
        rotated_first = first * cos - second * sin
        rotated_second = first * sin + second * cos
        if self.mode == "pairs":
            return torch.stack((rotated_first, rotated_second), dim=-1).flatten(-2)
        return torch.cat((rotated_first, rotated_second), dim=-1)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, mode={self.mode!r}"
