"""Forward + backward time and peak memory of causal token-mixing ops versus sequence length.

Compares softmax attention (``F.scaled_dot_product_attention(is_causal=True)``) with the
chunkwise linear attention, GLA and gated delta rule ops on the same shapes: batch 1,
``n_heads`` heads of width ``d_model / n_heads``, keys and values of that width. Only the token
mixing is timed (no projections): it is the part whose cost depends on the length.

Each point runs in a fresh Python process (``python -m picollm.attention_scaling``)
so that its memory figure is its own: the peak resident set size (``ru_maxrss``) during one
forward + backward minus the resident set size just before it, i.e. the memory for activations,
autograd buffers and gradients (inputs excluded), at the kernel's page granularity.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from picollm.models.linear_attention.ops_gdn import chunk_gated_delta_rule
from picollm.models.linear_attention.ops_gla import chunk_gla
from picollm.models.linear_attention.ops_linear import chunk_linear_attention

METHODS = ("sdpa", "linear", "gla", "gated_deltanet")


def make_inputs(
    method: str, seq_len: int, n_heads: int, head_dim: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random inputs of ``method``'s op, (1, H, T, D) each, gates as the layers make them."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, n_heads, seq_len)
    q, k, v = (torch.randn(*shape, head_dim, generator=gen) for _ in range(3))
    if method == "sdpa":
        return q, k, v
    if method == "linear":
        return F.elu(q) + 1, F.elu(k) + 1, v
    if method == "gla":
        return q, k, v, F.logsigmoid(torch.randn(*shape, head_dim, generator=gen)) / 16
    if method == "gated_deltanet":
        g = F.logsigmoid(torch.randn(*shape, generator=gen))
        beta = torch.sigmoid(torch.randn(*shape, generator=gen))
        return q, F.normalize(k, dim=-1), v, g, beta
    raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _first(op: Callable[..., tuple[torch.Tensor, Any]]) -> Callable[..., torch.Tensor]:
    return lambda *inputs: op(*inputs)[0]


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "sdpa": _sdpa,
    "linear": _first(chunk_linear_attention),
    "gla": _first(chunk_gla),
    "gated_deltanet": _first(chunk_gated_delta_rule),
}


def measure_point(
    method: str, seq_len: int, d_model: int, n_heads: int, repeats: int = 3
) -> dict[str, Any]:
    """Time ``repeats + 1`` forward + backward passes in this process.

    Returns the fastest pass (the least disturbed by other load) and the peak-RSS increase of
    the first pass (meaningful only in a fresh process, see the module docstring).
    """
    if d_model % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
    inputs = [x.requires_grad_() for x in make_inputs(method, seq_len, n_heads, d_model // n_heads)]
    op = OPS[method]

    def forward_backward() -> float:
        for x in inputs:
            x.grad = None
        start = time.perf_counter()
        op(*inputs).sum().backward()
        return time.perf_counter() - start

    rss_before = _resident_mb()
    first = forward_backward()
    peak_mem_mb = max(0.0, _peak_resident_mb() - rss_before)
    seconds = min([first, *(forward_backward() for _ in range(repeats))])
    return {
        "method": method,
        "seq_len": seq_len,
        "fwd_bwd_seconds": seconds,
        "peak_mem_mb": peak_mem_mb,
        "torch_threads": torch.get_num_threads(),
    }


def scaling_points(
    lengths: Sequence[int],
    d_model: int = 256,
    n_heads: int = 4,
    methods: Sequence[str] = METHODS,
    repeats: int = 3,
    time_cap_s: float = 20.0,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Measure every method at every length, each point in a fresh process.

    Lengths are run in increasing order; a method stops after the first length whose
    pass takes longer than ``time_cap_s`` (that point is kept, longer ones are not run).
    ``threads`` sets torch's intra-op threads (None: torch's default). Returns dicts with
    ``method, seq_len, fwd_bwd_seconds, peak_mem_mb, torch_threads``.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    points = []
    for method in methods:
        for seq_len in sorted(lengths):
            point = _measure_in_subprocess(method, seq_len, d_model, n_heads, repeats, threads)
            points.append(point)
            if point["fwd_bwd_seconds"] > time_cap_s:
                break
    return points


def _measure_in_subprocess(
    method: str, seq_len: int, d_model: int, n_heads: int, repeats: int, threads: int | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "picollm.attention_scaling",
        f"--method={method}",
        f"--seq-len={seq_len}",
        f"--d-model={d_model}",
        f"--n-heads={n_heads}",
        f"--repeats={repeats}",
    ]
    if threads is not None:
        command.append(f"--threads={threads}")
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"measuring {method} at {seq_len} failed:\n{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _resident_mb() -> float:
    """Current resident set size of this process in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_resident_mb() -> float:
    """Peak resident set size of this process so far in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: Sequence[str] | None = None) -> None:
    """Worker entry point: measure one point and print it as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    point = measure_point(args.method, args.seq_len, args.d_model, args.n_heads, args.repeats)
    print(json.dumps(point))


if __name__ == "__main__":
    main()
