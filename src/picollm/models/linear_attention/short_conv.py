"""Short causal depthwise convolution, as Gated DeltaNet applies to q, k and v.

Yang, Kautz & Hatamizadeh (arXiv 2412.06464, §3) follow Mamba and DeltaNet: every channel is
mixed with its own last ``kernel_size`` inputs (a depthwise Conv1d), then passed through SiLU.
For decoding the layer keeps the last ``kernel_size - 1`` inputs as a tail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortConvolution(nn.Module):
    """``y_t = silu(sum_{i < K} w_i * x_{t - i})`` per channel; inputs before the start are zero.

    ``forward(x (B, T, C), tail (B, K - 1, C) or None) -> (y (B, T, C), new tail)``: the tail
    holds the inputs preceding ``x`` (None: zeros, the start of a sequence), so feeding a
    sequence in pieces with the returned tails equals one call on the whole sequence.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"conv_size must be a positive int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        # PyTorch's default init: U(-1/sqrt(K), 1/sqrt(K)) for a depthwise kernel of width K.
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=False)

    def new_tail(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The tail at the start of a sequence: K - 1 zero inputs, (B, K - 1, C)."""
        return torch.zeros(
            batch_size, self.kernel_size - 1, self.conv.in_channels, device=device, dtype=dtype
        )

    def forward(
        self, x: torch.Tensor, tail: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, time, _ = x.shape
        if tail is None:
            tail = self.new_tail(batch, x.device, x.dtype)
        window = torch.cat([tail.to(x.dtype), x], dim=1)  # (B, K - 1 + T, C)
        mixed = self.conv(window.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        return F.silu(mixed), window[:, time:]  # new tail: the last K - 1 inputs
