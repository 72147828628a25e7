"""Softmax attention versus the linear-attention family: time and memory against length.

Forward + backward of each causal token-mixing op at batch 1 (``picollm.models.
linear_attention.benchmark``: SDPA, chunked linear attention, GLA and Gated DeltaNet on the same
shapes), each point in a fresh process. Prints a markdown report and writes it to
``benchmarks/results/bench_attention_scaling.md``; the raw points go to
``benchmarks/results/attention_scaling.csv`` (method, seq_len, fwd_bwd_seconds, peak_mem_mb).

    .venv/bin/python benchmarks/bench_attention_scaling.py            # 512 .. 16384
    .venv/bin/python benchmarks/bench_attention_scaling.py --quick    # 512 .. 2048, smoke run
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
from pathlib import Path

import torch

from picollm.attention_scaling import METHODS, scaling_points

RESULTS = Path(__file__).resolve().parent / "results"
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
QUICK_LENGTHS = (512, 1024, 2048)
LINEAR_GROWTH_LIMIT = 2.3
"""Largest acceptable time(2T) / time(T) at the long end for the chunked (linear-time) ops."""
CSV_COLUMNS = ("method", "seq_len", "fwd_bwd_seconds", "peak_mem_mb")


def machine_description(threads: int) -> str:
    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} torch threads"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} over 1 min, {five:.1f} over 5 min"


def times_by_method(points: list[dict]) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = {}
    for point in points:
        table.setdefault(point["method"], {})[point["seq_len"]] = point["fwd_bwd_seconds"]
    return table


def growth_ratios(times: dict[int, float]) -> dict[int, float]:
    """time(2T) / time(T) keyed by 2T, for every measured doubling."""
    return {2 * n: times[2 * n] / times[n] for n in sorted(times) if 2 * n in times}


def crossover(method_times: dict[int, float], reference: dict[int, float]) -> str:
    """Shortest length from which ``method`` is faster than ``reference`` at every longer length
    both reached (a reference stopped by the time cap counts as slower beyond its last point)."""
    lengths = sorted(method_times)
    last_reference = max(reference)
    for i, n in enumerate(lengths):
        if all(m > last_reference or method_times[m] < reference[m] for m in lengths[i:]):
            return str(n)
    return f"none up to {lengths[-1]}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table, first column left-aligned and the others right-aligned."""
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def verdict(method: str, times: dict[str, dict[int, float]]) -> str:
    """Growth at the longest doubling against the limit, and the crossover with SDPA."""
    ratios = growth_ratios(times[method])
    if ratios:
        longest = max(ratios)
        within = ratios[longest] <= LINEAR_GROWTH_LIMIT
        growth = (
            f"time({longest})/time({longest // 2}) = {ratios[longest]:.2f} "
            f"{'<=' if within else '> (FAILS)'} {LINEAR_GROWTH_LIMIT}"
        )
    else:
        growth = "no doubling measured"
    beats = crossover(times[method], times["sdpa"]) if "sdpa" in times else "n/a (no SDPA)"
    return f"- {method}: {growth}; faster than SDPA from length {beats}."


def report(points: list[dict], args: argparse.Namespace, load_before: str) -> str:
    times = times_by_method(points)
    memory = {(p["method"], p["seq_len"]): p["peak_mem_mb"] for p in points}
    methods = [m for m in args.methods if m in times]
    lengths = sorted({p["seq_len"] for p in points})
    seconds_rows = [
        [str(n), *(f"{times[m][n]:.4f}" if n in times[m] else "-" for m in methods)]
        for n in lengths
    ]
    memory_rows = [
        [str(n), *(f"{memory[m, n]:.0f}" if n in times[m] else "-" for m in methods)]
        for n in lengths
    ]
    growth_rows = []
    for m in methods:
        ratios = growth_ratios(times[m])
        growth_rows.append([m, *(f"{ratios[n]:.2f}" if n in ratios else "-" for n in lengths[1:])])
    doublings = [f"{n // 2}->{n}" for n in lengths[1:]]
    return (
        "\n".join(
            [
                "# Attention scaling: softmax SDPA versus the linear-attention family (CPU)",
                "",
                f"- Machine: {machine_description(points[0]['torch_threads'])}.",
                f"- Load average before the run: {load_before}; after: {load_average()}. On a "
                "shared machine other jobs run at the same time, so absolute times are noisy; each "
                f"time is the fastest of {args.repeats + 1} passes (the first one included).",
                f"- Shapes: batch 1, {args.n_heads} heads of width {args.d_model // args.n_heads} "
                f"(d_model {args.d_model}), float32; the token-mixing op only (no projections), "
                "the ops' default chunk size 64. GLA keys have the full head width here (its "
                "layer default is half).",
                "- Memory: peak resident set size during one forward + backward minus the "
                "resident set size just before it, each point in a fresh process (activations, "
                "autograd buffers and gradients; inputs excluded). PyTorch's CPU SDPA is a "
                "flash-attention kernel, so its memory grows only linearly as well.",
                f"- A method stops after the first length slower than {args.time_cap:g} s ('-').",
                "",
                "## Forward + backward seconds",
                "",
                *markdown_table(["seq_len", *methods], seconds_rows),
                "",
                "## Peak memory (MiB)",
                "",
                *markdown_table(["seq_len", *methods], memory_rows),
                "",
                "## Growth time(2T) / time(T) (linear: 2, quadratic: 4)",
                "",
                *markdown_table(["method", *doublings], growth_rows),
                "",
                "## Verdict",
                "",
                *(verdict(m, times) for m in methods if m != "sdpa"),
            ]
        )
        + "\n"
    )


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def csv_text(points: list[dict]) -> str:
    """The points as CSV with the columns the pipeline's figure reads."""
    text = io.StringIO()
    writer = csv.DictWriter(
        text, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(points)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short lengths, one timed pass")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per point")
    parser.add_argument("--time-cap", type=float, default=20.0, help="seconds per pass")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per point (default 1: on a small shared machine more threads "
        "mostly measure contention with other jobs)",
    )
    args = parser.parse_args()
    lengths = args.lengths or (QUICK_LENGTHS if args.quick else LENGTHS)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3

    load_before = load_average()
    points = scaling_points(
        lengths,
        d_model=args.d_model,
        n_heads=args.n_heads,
        methods=args.methods,
        repeats=args.repeats,
        time_cap_s=args.time_cap,
        threads=args.threads,
    )
    text = report(points, args, load_before)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomically(RESULTS / "bench_attention_scaling.md", text)
    write_atomically(RESULTS / "attention_scaling.csv", csv_text(points))


if __name__ == "__main__":
    main()
