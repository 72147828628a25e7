"""Time to the first sample of ``picollm sample RUN_DIR`` against ``python -c "import torch"``.

For each default model of params.yaml (the architecture training would build, GPT-2 vocabulary,
initial weights: a run folder costs the same to load trained or not), a fresh process runs
``picollm sample RUN_DIR --prompt "Once upon a time"`` to its end, with one new token (the
start-up: imports, loading, the prompt's prefill) and with the default 100. Each command and the
bare torch import run interleaved, in fresh processes, and the median is reported with its ratio
to the torch import. Untrained weights give a near-flat next-token distribution, the slowest case
for nucleus sampling (the nucleus holds most of the 50,257 tokens), so the 100-token column is an
upper bound for a trained model.

Run: ``.venv/bin/python benchmarks/bench_sample_startup.py [--quick]``; writes
``benchmarks/results/bench_sample_startup.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load_average, machine, markdown_table, write_report  # benchmarks/common.py

ROOT = Path(__file__).resolve().parents[1]
PICOLLM = [sys.executable, "-m", "picollm"]
PROMPT = "Once upon a time"


def make_run_folders(directory: Path) -> dict[str, Path]:
    """A run folder per default model: weights.safetensors and run.json, as training writes."""
    import torch

    from picollm.config import load_params, model_config
    from picollm.models import build
    from picollm.tokenizer import VOCAB_SIZE
    from picollm.training import save_model_weights

    params = load_params(ROOT / "params.yaml")
    folders = {}
    for name in params["models"]:
        entry = model_config(params, name)
        arch = {"vocab_size": VOCAB_SIZE, **entry}
        torch.manual_seed(0)
        folder = directory / name
        save_model_weights(build(arch), folder / "weights.safetensors")
        (folder / "run.json").write_text(json.dumps({"model": name, "architecture": arch}))
        folders[name] = folder
    return folders


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_run_folders(Path(tmp))
        commands = {"import torch": [sys.executable, "-c", "import torch"]}
        for name, folder in folders.items():
            sample = [*PICOLLM, "sample", str(folder), "--prompt", PROMPT]
            commands[f"{name}, 1 token"] = [*sample, "--max-new-tokens", "1"]
            commands[f"{name}, 100 tokens"] = sample
        for command in commands.values():  # warm the file cache
            seconds(command)
        times = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(seconds(command))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    torch_s = median["import torch"]
    rows = [
        [
            name,
            f"{median[f'{name}, 1 token']:.2f}",
            f"{median[f'{name}, 1 token'] / torch_s:.2f}×",
            f"{median[f'{name}, 100 tokens']:.2f}",
            f"{median[f'{name}, 100 tokens'] / torch_s:.2f}×",
        ]
        for name in folders
    ]
    report = "\n\n".join(
        [
            "# bench_sample_startup" + (" (--quick)" if args.quick else ""),
            f"Machine: {machine()}. Load average at the end: {load_average()}.",
            f'`python -c "import torch"`: **{torch_s:.2f} s** (median of {repeats} fresh '
            "processes, interleaved with the commands below).",
            f'## `picollm sample RUN_DIR --prompt "{PROMPT}"`, whole process, median of {repeats}',
            markdown_table(
                [
                    "model",
                    "1 new token (s)",
                    "vs import torch",
                    "100 new tokens (s)",
                    "vs import torch",
                ],
                rows,
            ),  # fmt: skip
        ]
    )
    write_report("bench_sample_startup", report, args.quick)


if __name__ == "__main__":
    main()
