"""Helpers shared by the benchmark scripts: the machine's description, timing, tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    """One line for a results file: CPU, cores, torch version and threads, current load."""
    import torch  # here, so that a script can time code that runs without torch

    return (
        f"{cpu_model()}; {os.cpu_count()} cores; torch {torch.__version__}; "
        f"{torch.get_num_threads()} torch threads; Python {platform.python_version()}; "
        f"load average {load_average()} (1/5/15 min)"
    )


def interleaved_seconds(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time per run after one untimed call each, alternating the runs so that shared
    load hits them alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_report(name: str, report: str, quick: bool) -> None:
    """Print ``report`` and write it to ``results/<name>.md`` (``out/<name>.md``, which git
    ignores, for a ``--quick`` smoke run)."""
    print(report)
    out = Path(__file__).parent / ("out" if quick else "results") / f"{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    print(f"\nwritten to {out}")
