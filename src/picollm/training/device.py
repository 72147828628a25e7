"""Where a run computes (device) and in which precision (autocast dtype)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from picollm.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must be present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"training.device = {name!r} is not a torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"training.device = {name!r}, but CUDA is not available on this machine: "
            "set device: auto (or cpu)"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"training.device = {name!r}, but this machine has only "
            f"{torch.cuda.device_count()} CUDA device(s): set device: auto, or cuda:0"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"training.device = {name!r}, but MPS is not available on this machine: "
            "set device: auto (or cpu)"
        )
    return device


def resolve_autocast_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; None means plain float32 (no autocast).

    ``auto`` is bfloat16 on a CUDA device that supports it and float32 elsewhere: CPU bfloat16
    is fast only on CPUs with native bfloat16 matrix units, so it stays an explicit choice.
    """
    if name == "float32":
        return None
    if name == "bfloat16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"dtype 'bfloat16' is not supported on {device}; use 'float32'")
        return torch.bfloat16
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {name!r}")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed precision for the enclosed forward pass; a no-op when ``dtype`` is None."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield
