"""Root-mean-square layer normalisation (Zhang & Sennrich 2019, arXiv 1910.07467)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x**2) + eps) * g`` over the last dimension, with a learnable scale g.

    Unlike LayerNorm there is no mean subtraction and no bias. Everything is computed in
    float32 and the result cast back to the input's dtype, so low-precision inputs neither
    overflow nor lose accuracy in the mean of squares.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (D,) the scale g

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        x32 = x.float()
        normalised = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (normalised * self.weight).type_as(x)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
