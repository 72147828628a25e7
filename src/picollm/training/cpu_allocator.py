"""Transparent huge pages for PyTorch's CPU allocator; call before ``import torch``.

With ``THP_MEM_ALLOC_ENABLE=1`` PyTorch aligns CPU allocations of 2 MiB and more to huge-page
boundaries and ``madvise``s them ``MADV_HUGEPAGE``, so the kernel backs large tensors (logits
over a 50k vocabulary, activations) with 2 MiB pages: far fewer page faults and TLB misses
when a training step allocates and touches the same large buffers again and again. PyTorch
reads the variable once, on its first CPU allocation (during ``import torch``), so it must be
set first. This module imports nothing heavy so that it can run before torch.
"""

from __future__ import annotations

import os
import sys
import warnings

HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"


def enable_cpu_huge_pages() -> bool:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` unless the user set it; True if it will take effect.

    Returns False, with a warning, when torch is already imported (too late to change), and
    False when the user's environment explicitly sets the variable to something other than 1.
    """
    if "torch" in sys.modules:
        if os.environ.get(HUGE_PAGES_VARIABLE) == "1":
            return True
        warnings.warn(
            f"{HUGE_PAGES_VARIABLE} must be set before torch is imported; call "
            "enable_cpu_huge_pages() at process start",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return os.environ.setdefault(HUGE_PAGES_VARIABLE, "1") == "1"
