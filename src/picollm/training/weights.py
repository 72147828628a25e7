"""Model weights alone, for sampling: save as safetensors, load from safetensors or a checkpoint,
and rebuild a trained model from its run record."""

from __future__ import annotations

import os
from pathlib import Path

import safetensors.torch
from torch import nn

from picollm.files import read_json
from picollm.integrity import recorded_hashes, verify_files
from picollm.models import LanguageModel, build
from picollm.training.checkpoint import CheckpointError, read_checkpoint

ZIP_MAGIC = b"PK\x03\x04"  # torch.save files are zip archives


def save_model_weights(model: nn.Module, path: Path) -> None:
    """Write the model's weights to ``path`` as safetensors, atomically.

    Tied weights are stored once (``safetensors.torch.save_model`` drops the duplicates and
    ``load_model`` restores the tie).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        safetensors.torch.save_model(model, str(temporary))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_model_weights(path: Path, model: nn.Module) -> nn.Module:
    """Fill ``model`` with the weights in ``path``, a safetensors file or a training checkpoint.

    Every parameter must be present with the same shape; otherwise ``CheckpointError`` names
    the file and the mismatch. Returns the model.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    with open(path, "rb") as file:
        is_checkpoint = file.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    try:
        if is_checkpoint:
            model.load_state_dict(read_checkpoint(path)["model"])
        else:
            safetensors.torch.load_model(model, str(path), strict=True, device="cpu")
    except CheckpointError:
        raise
    except (RuntimeError, OSError, ValueError, safetensors.SafetensorError) as err:
        raise CheckpointError(f"{path}: cannot load these weights into the model: {err}") from None
    return model


def load_trained_model(weights: Path, run: Path) -> LanguageModel:
    """The model a training run made: its architecture from ``run`` (run.json), its weights
    from ``weights``, checked against the sha256 that run.json records for them (a damaged
    file is refused with the way to rebuild it, never trusted)."""
    weights, run = Path(weights), Path(run)
    record = read_json(run)
    if weights.parent == run.parent and weights.name in recorded_hashes(record):
        verify_files(run, [weights.name])
    model = build(record["architecture"])
    load_model_weights(weights, model)
    return model
