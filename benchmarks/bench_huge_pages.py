"""Training tokens/s with and without huge pages for torch's CPU allocator.

``picollm`` (its console entry point, ``picollm.entry``) sets ``THP_MEM_ALLOC_ENABLE=1`` before
torch loads. This measures what that buys: a Transformer of 4 blocks, d_model 128, vocabulary
50,304 (batch 16, block 128, one torch thread) trains in fresh processes with the variable set to
1 and to 0, in alternating pairs (the order flips each pair) so that shared load hits both alike.
Each process times ``--steps`` steps after ``--warmup`` untimed ones and reports wall-clock
tokens/s, tokens per CPU-second and minor page faults per step.

    .venv/bin/python benchmarks/bench_huge_pages.py [--quick] [--pairs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from common import machine, markdown_table, write_report

VARIABLE = "THP_MEM_ALLOC_ENABLE"
SHAPE = {"n_blocks": 4, "d_model": 128, "n_heads": 4, "vocab_size": 50304, "block_size": 128}
BATCH = 16


def worker(steps: int, warmup: int) -> dict[str, float]:
    """Train for ``warmup`` + ``steps`` steps in this process; the timed steps' numbers."""
    import torch
    import torch.nn.functional as F

    from picollm.models import build

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build({"type": "transformer", **SHAPE})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, SHAPE["vocab_size"], (BATCH, SHAPE["block_size"] + 1))

    def step() -> None:
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    seen = steps * BATCH * SHAPE["block_size"]
    return {
        "tokens_per_s": seen / wall,
        "tokens_per_cpu_s": seen / cpu,
        "faults_per_step": (after.ru_minflt - usage.ru_minflt) / steps,
    }


def measure(huge_pages: bool, steps: int, warmup: int) -> dict[str, float]:
    env = {**os.environ, VARIABLE: "1" if huge_pages else "0"}
    command = [sys.executable, __file__, "--worker", "--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (benchmarks/out/)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating with/without pairs")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.steps, args.warmup = 1, 3, 1
    if args.worker:
        print(json.dumps(worker(args.steps, args.warmup)))
        return

    rows, ratios = [], []
    for pair in range(args.pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        result = {on: measure(on, args.steps, args.warmup) for on in order}
        ratio = result[True]["tokens_per_s"] / result[False]["tokens_per_s"]
        ratios.append(ratio)
        rows.append(
            [
                f"pair {pair + 1} ({'with first' if order[0] else 'without first'})",
                f"{result[False]['tokens_per_s']:,.0f}",
                f"{result[True]['tokens_per_s']:,.0f}",
                f"{ratio:.2f}x",
                f"{result[True]['tokens_per_cpu_s'] / result[False]['tokens_per_cpu_s']:.2f}x",
                f"{result[False]['faults_per_step']:,.0f} / {result[True]['faults_per_step']:,.0f}",
            ]
        )
    header = ["run", "tokens/s without", "tokens/s with", "ratio", "per CPU-second",
              "faults/step without / with"]  # fmt: skip
    report = "\n".join(
        [
            "# Huge pages for torch's CPU allocator (THP_MEM_ALLOC_ENABLE)",
            "",
            f"Machine: {machine()}",
            f"Model: Transformer {SHAPE}, batch {BATCH}, {args.steps} timed steps after "
            f"{args.warmup} untimed, one torch thread, a fresh process per run.",
            "",
            markdown_table(header, rows),
            "",
            f"Median ratio (with / without, wall-clock tokens/s): {statistics.median(ratios):.2f}x",
        ]
    )
    write_report("bench_huge_pages", report, args.quick)


if __name__ == "__main__":
    main()
