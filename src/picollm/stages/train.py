"""``picollm train``: train one model of params.yaml; write its weights, metrics and loss curves.

A killed run resumes: checkpoints go to ``.picollm/checkpoints/<model>-<fingerprint>/``, outside
the outputs (Snakemake deletes the outputs of a failed job, DVC those of a stage it reruns), and
keyed by everything that defines the run, so a changed parameter never resumes a stale run: the
model entry, the training settings (all but device, compile, checkpoint and log intervals), the
sha256 of the token arrays as read, and the sha256 of the stage's code (every source file that
Snakemake counts as the stage's code), so a run never mixes two versions of the code.

Cleanup: when a run finishes, its checkpoint folder is deleted, and so is every other checkpoint
folder of the same run name (``<name>-<12 hex digits>``: abandoned runs of earlier params or
code, which could never be resumed). ``rm -rf .picollm/checkpoints`` is always safe; it only
costs the progress of runs killed mid-way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from picollm.config import model_config, training_config
from picollm.data.loader import BatchStream, TokenStore, eval_batches, matched_eval_sets
from picollm.errors import ConfigError
from picollm.files import atomic_path, read_json, sha256_file, write_json
from picollm.init_gradients import gradient_norms_at_init
from picollm.integrity import verify_files
from picollm.length_generalization import loss_by_position
from picollm.models import build
from picollm.pipeline import lineage
from picollm.pipeline.workflow import PACKAGE_DIR, code_files
from picollm.training import TrainConfig, save_model_weights, train
from picollm.training.config import run_length
from picollm.training.distributed import process_group, torchrun_ranks
from picollm.vocab import VOCAB_FILE, Vocabulary

CHECKPOINT_ROOT = Path(".picollm/checkpoints")
EXTRAPOLATION = 4
"""A Transformer's test loss by position is measured on windows this many times its block size."""
POSITION_WINDOWS = 256
"""How many such test windows (the first of their tiling): a standard error near 0.1 nats per
position, about 0.03 once the figure averages block_size / 8 positions."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the model's name under `models`")
    parser.add_argument("--split", type=Path, required=True, help="split.json of the split stage")
    parser.add_argument(
        "--weights",
        type=Path,
        required=True,
        help="safetensors file to write (the vocabulary's vocab.json is written beside it)",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        required=True,
        help="JSON of the headline numbers to write (DVC's metrics: final losses, gap, speed)",
    )
    parser.add_argument(
        "--run-json",
        dest="run",
        type=Path,
        required=True,
        help="JSON record of the run to write: architecture, training, all metrics, lineage",
    )
    parser.add_argument("--curve", type=Path, required=True, help="eval loss TSV to write")
    parser.add_argument("--steps", type=Path, required=True, help="per-step log TSV to write")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, params: dict[str, Any]) -> None:
    name = args.model
    train_model(args, params, name, model_config(params, name), training_config(params, name))


def train_model(
    args: argparse.Namespace,
    params: dict[str, Any],
    name: str,
    model_entry: dict[str, Any],
    training: dict[str, Any],
    extra: dict[str, Any] | None = None,
    stage: str = "train",
) -> None:
    """Train the model ``model_entry`` with the ``training`` settings on the split's train
    documents (the first ``data_fraction`` of each source's), and write the stage's outputs.
    The number of steps does not depend on ``data_fraction`` (``training.config.run_length``).
    Final losses are measured on ``final_eval_batches`` batches of test windows (or the whole
    test split) and as many train windows, with their standard errors; a Transformer's test loss by position is measured up to
    ``EXTRAPOLATION`` times its block size (``length_generalization``)."""

    data = params["data"]
    split_dir = args.split.parent
    read = [f"{split}.{kind}.npy" for split in ("train", "test") for kind in ("tokens", "docs")]
    data_hashes = verify_files(args.split, [*read, VOCAB_FILE])  # the checkpoint key uses them
    split_summary = read_json(args.split)
    vocabulary = Vocabulary.load(split_dir / VOCAB_FILE)
    arch = {"vocab_size": vocabulary.size, **model_entry}
    try:
        config = TrainConfig.from_dict(training)
        torch.manual_seed(config.seed)  # the initial weights are part of the run
        model = build(arch)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"models.{name}: {err}") from None

    stores = {split: TokenStore.open(split_dir, split) for split in ("train", "test")}
    split_tokens = int(stores["train"].doc_lengths.sum())  # the whole train split's
    stores["train"] = stores["train"].first_fraction(config.data_fraction)
    block_size = arch["block_size"]
    stream = BatchStream(
        stores["train"],
        block_size,
        config.batch_size,
        seed=config.seed,
        mode=data["loader"],
        source_weights=_source_weights(stores["train"], data),
    )
    eval_mode = "padded" if data["loader"] == "padded" else "packed"
    eval_sets = {
        split: eval_batches(
            store,
            block_size,
            config.batch_size,
            config.eval_batches,
            seed=config.seed,
            mode=eval_mode,
        )
        for split, store in stores.items()
    }
    final_rows = (
        None if config.final_eval_batches is None else config.final_eval_batches * config.batch_size
    )
    final_sets = matched_eval_sets(
        stores, block_size, config.batch_size, config.seed, eval_mode, max_rows=final_rows
    )
    identity = {  # what else defines the run: a checkpoint of another identity is not resumed
        "model": arch,
        "loader": data["loader"],
        "data": data_hashes,  # as hashed now, not as recorded
        "tinystories_weight": data["tinystories_weight"],
        "code": _code_sha256(stage),
    }
    checkpoint_dir = CHECKPOINT_ROOT / f"{name}-{_fingerprint(identity, config.to_dict())}"

    train_tokens = int(stores["train"].doc_lengths.sum())
    steps_per_epoch, total_steps = run_length(config, split_tokens, block_size)  # any fraction
    if config.warmup_steps >= total_steps:
        raise ConfigError(
            f"training.warmup_steps ({config.warmup_steps}) must be below the {total_steps} steps "
            f"model {name!r} trains for: lower warmup_steps or raise max_steps_per_epoch/epochs"
        )
    at_init = _init_gradients(model, arch, eval_sets["train"][0])  # before any update
    ranks = torchrun_ranks()  # one process unless started by torchrun
    if config.batch_size % ranks.world_size:
        raise ConfigError(
            f"training.batch_size ({config.batch_size}) must be divisible by the "
            f"{ranks.world_size} processes torchrun started: each trains on an equal share"
        )
    with process_group(ranks, config.device):
        result = train(
            model,
            stream,
            eval_sets,
            config,
            checkpoint_dir,
            steps_per_epoch=steps_per_epoch,
            identity=identity,
            progress=not args.no_progress,
            final_eval_sets=final_sets,
        )
    if not ranks.is_main:
        return  # rank 0 writes the outputs
    save_model_weights(model, args.weights)
    run_vocab = args.weights.parent / VOCAB_FILE
    vocabulary.save(run_vocab)  # the run folder is self-contained
    _write_tables(result.history, args.curve, args.steps)
    inputs = [
        args.split,
        split_dir / VOCAB_FILE,
        *(split_dir / f"{s}.{kind}.npy" for s in stores for kind in ("tokens", "docs")),
    ]
    final = {**_final(result.metrics), "vocab": vocabulary.name}
    write_json(args.metrics, final)
    write_json(
        args.run,
        {
            "model": name,
            "architecture": arch,
            "training": config.to_dict(),
            "data_fraction": config.data_fraction,
            "train_tokens": train_tokens,
            "vocab": split_summary["vocab"],
            "unknown_token_share": {
                s: split_summary["splits"][s]["unknown_token_share"] for s in stores
            },
            "final": final,
            "metrics": result.metrics,
            "resumed_from_step": result.resumed_from_step,
            **at_init,
            **_loss_by_position(model, arch, stores["test"], config.batch_size),
            "sha256": {  # checked by its readers
                path.name: sha256_file(path) for path in (args.weights, run_vocab)
            },
            "lineage": lineage.record("train", inputs, params, outputs=[str(args.weights)]),
            **(extra or {}),
        },
    )
    remove_checkpoints(name)
    print(json.dumps(final))


def remove_checkpoints(name: str) -> None:
    """Delete every checkpoint folder of run ``name``: the finished one and abandoned ones."""
    folder = re.compile(rf"{re.escape(name)}-[0-9a-f]{{12}}")
    if CHECKPOINT_ROOT.is_dir():
        for path in CHECKPOINT_ROOT.iterdir():
            if folder.fullmatch(path.name):
                shutil.rmtree(path, ignore_errors=True)


def _code_sha256(stage: str) -> str:
    """sha256 over the stage's declared code (paths inside the package, and contents)."""
    files = [Path(path) for path in code_files(stage)]
    listing = "".join(f"{sha256_file(f)}  {f.relative_to(PACKAGE_DIR)}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _source_weights(store: Any, data: dict[str, Any]) -> dict[str, float] | None:
    """The starter's ``tinystories_weight``: the chance a sequence comes from TinyStories; the
    other sources share the rest in proportion to their tokens."""

    tokens = np.bincount(store.doc_sources, weights=store.doc_lengths, minlength=len(store.sources))
    per_source = dict(zip(store.sources, tokens.tolist(), strict=True))
    others = {s: n for s, n in per_source.items() if s != "tinystories" and n}
    if "tinystories" not in per_source or not others:
        return None
    weight = data["tinystories_weight"]
    total = sum(others.values())
    return {"tinystories": weight, **{s: (1 - weight) * n / total for s, n in others.items()}}


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _final(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: final train/test loss (on the whole test split and as many train
    windows), their gap with standard errors, the best test loss on the curve, speed and size."""
    return {
        "train_loss": metrics["final_train_loss"],
        "test_loss": metrics["final_test_loss"],
        "gap": metrics["generalization_gap"],
        "train_loss_stderr": metrics["final_train_loss_stderr"],
        "test_loss_stderr": metrics["final_test_loss_stderr"],
        "gap_stderr": metrics["generalization_gap_stderr"],
        "best_test_loss": metrics["best_test_loss"],
        "tokens_per_s": metrics["tokens_per_s"],
        "parameters": metrics["num_parameters"],
    }


def _init_gradients(model: Any, arch: dict[str, Any], batch: Any) -> dict[str, Any]:
    """``{"init_gradient_norms": ...}``: a Transformer's gradient norm per block at
    initialisation on one fixed train batch (``init_gradients``), else nothing."""
    if arch["type"] != "transformer":
        return {}
    return {"init_gradient_norms": gradient_norms_at_init(model, batch.inputs, batch.targets)}


def _loss_by_position(
    model: Any, arch: dict[str, Any], test: TokenStore, batch_size: int
) -> dict[str, Any]:
    """``{"loss_by_position": ...}`` of a Transformer on test windows of ``EXTRAPOLATION`` times
    its block size (``PositionLosses.to_dict``, with the lengths), else nothing."""
    if arch["type"] != "transformer":
        return {}
    length = EXTRAPOLATION * arch["block_size"]
    tokens = np.asarray(test.tokens[np.arange(test.n_tokens)])  # model ids
    device = next(model.parameters()).device
    measured = loss_by_position(
        model, tokens, length, max_windows=POSITION_WINDOWS, batch_size=batch_size, device=device
    )
    record = {"trained_length": arch["block_size"], **measured.to_dict()}
    return {"loss_by_position": record}


def _write_tables(history: Any, curve: Path, steps: Path) -> None:
    evals = pd.DataFrame(
        [
            {
                "step": r.step,
                "tokens_seen": r.tokens_seen,
                **{f"{split}_loss": loss for split, loss in r.losses.items()},
            }
            for r in history.evals
        ]
    )
    per_step = pd.DataFrame([vars(r) for r in history.steps])
    for frame, target in ((evals, curve), (per_step, steps)):
        with atomic_path(target) as tmp:
            frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
