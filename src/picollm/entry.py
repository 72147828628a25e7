"""The ``picollm`` console command: huge pages for torch's CPU allocator, then the CLI.

PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, on its first CPU allocation, so the variable is set
here, before anything imports torch (the user's own value wins). With it, large CPU tensors are
backed by 2 MiB pages: fewer page faults and TLB misses (``benchmarks/bench_huge_pages.py``).
"""

import os

HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"


def main() -> int:
    """Run ``picollm`` with huge pages switched on unless the environment says otherwise."""
    os.environ.setdefault(HUGE_PAGES_VARIABLE, "1")
    from picollm.cli import main as cli_main  # after the variable: the CLI may import torch

    return cli_main()
