"""Training checkpoints: one file, written atomically, read without unpickling code.

A checkpoint is a ``torch.save`` dict of tensors, lists, numbers and strings only, so
``torch.load(..., weights_only=True)`` reads it. It is written to a temporary file in the same
directory, flushed and fsynced, then renamed over the old one (``os.replace`` is atomic), and the
directory entry is fsynced: a run killed at any instant leaves the previous checkpoint or the
new one, never a torn file. It carries a *fingerprint* of the run (model parameter shapes, the
training settings that decide the numbers, the caller's identity of the data and model config)
that a resuming run must match, and the random generators' states of every process of the
run (a list with one entry per rank; one process: a list of one).

A checkpoint that cannot be read (truncated, corrupt, incomplete) raises
``UnreadableCheckpointError``; the trainer sets such a file aside and starts afresh. A disk too
full for a write raises ``DiskFullError`` naming the path and the space a checkpoint needs.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from picollm.errors import DiskFullError, UserError
from picollm.training.config import RESUME_NEUTRAL_FIELDS, TrainConfig

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "picollm-training-checkpoint"
FORMAT_VERSION = 2  # 2: ``rng`` holds one state per process
REQUIRED_KEYS = frozenset(
    {"fingerprint", "step", "counters", "model", "optimizer", "rng", "data", "history"}
)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint file that is truncated, corrupt or incomplete: no run can resume from it."""


def model_signature(model: nn.Module) -> dict[str, list[int]]:
    """Every state-dict entry's shape, by name: what a checkpoint's weights must fit."""
    return {name: list(tensor.shape) for name, tensor in model.state_dict().items()}


def run_fingerprint(
    config: TrainConfig,
    total_steps: int,
    model: nn.Module,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What makes two runs the same run: resuming one from the other's checkpoint is allowed
    only if these match. ``identity`` is the caller's JSON-able description of the rest (model
    hyperparameters, data hashes)."""
    training = {k: v for k, v in config.to_dict().items() if k not in RESUME_NEUTRAL_FIELDS}
    try:
        identity = json.loads(json.dumps(dict(identity or {}), sort_keys=True))
    except TypeError as err:
        raise TypeError(f"identity must hold JSON-able values only: {err}") from None
    return {
        "model": model_signature(model),
        "training": {**training, "total_steps": total_steps},
        "identity": identity,
    }


def write_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomically write ``payload`` (plus the format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            torch.save({"format": FORMAT, "version": FORMAT_VERSION, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise disk_full(path, tensor_bytes(payload), keeps=path) from None
        raise
    _fsync_directory(path.parent)


def tensor_bytes(payload: Any) -> int:
    """Bytes of the tensors in a nested payload: about the size of its checkpoint file."""
    if isinstance(payload, torch.Tensor):
        return payload.numel() * payload.element_size()
    if isinstance(payload, Mapping):
        return sum(tensor_bytes(value) for value in payload.values())
    if isinstance(payload, list | tuple):
        return sum(tensor_bytes(value) for value in payload)
    return 0


def disk_full(path: Path, needed: int, keeps: Path | None = None) -> DiskFullError:
    """The error for a write of about ``needed`` bytes to ``path`` that found the disk full;
    ``keeps``: a file the write replaces, which stays until the new one is whole."""
    held = keeps.stat().st_size if keeps is not None and keeps.is_file() else 0
    also = f", beside the {held / 2**20:.1f} MiB of the {keeps.name} it replaces" if held else ""
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on the device for {path}: it needs about {needed / 2**20:.1f} MiB "
        f"free{also}; free space there, or set training.checkpoint_interval: 0 (a checkpoint "
        "only at the end), and rerun to resume",
    )


def set_aside(path: Path) -> Path:
    """Rename an unusable checkpoint to ``<name>.unreadable-<n>`` beside it (kept for a look,
    never read again) and return the new path."""
    path = Path(path)
    number = 1
    while (aside := path.with_name(f"{path.name}.unreadable-{number}")).exists():
        number += 1
    os.replace(path, aside)
    return aside


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that a killed writer of ``path`` left behind."""
    for leftover in Path(path).parent.glob(f".{Path(path).name}.tmp-*"):
        leftover.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load and sanity-check a checkpoint; ``CheckpointError`` if it is unreadable or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnreadableCheckpointError(
            f"{path}: cannot be read as a checkpoint (truncated or corrupt?): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a picollm training checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')!r}, "
            f"this picollm reads version {FORMAT_VERSION}"
        )
    missing = sorted(REQUIRED_KEYS - payload.keys())
    if missing:
        raise UnreadableCheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    return payload


def check_fingerprint(path: Path, stored: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """``CheckpointError`` listing how the checkpoint's run differs from this one, if it does."""
    problems = [
        *_differences(stored["model"], expected["model"], "model parameter"),
        *_differences(stored["training"], expected["training"], "training setting"),
        *_differences(stored["identity"], expected["identity"], "run identity key"),
    ]
    if problems:
        shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
        raise CheckpointError(
            f"{path} belongs to a different run ({shown}). Train into a fresh checkpoint "
            "directory, or delete this checkpoint to start over."
        )


def _differences(stored: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> list[str]:
    problems = []
    for key in sorted(stored.keys() | expected.keys()):
        if key not in expected:
            problems.append(f"{what} {key!r} only in the checkpoint")
        elif key not in stored:
            problems.append(f"{what} {key!r} missing from the checkpoint")
        elif stored[key] != expected[key]:
            problems.append(f"{what} {key!r} is {stored[key]} there but {expected[key]} here")
    return problems


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
