"""Training: ``train(model, stream, eval_sets, TrainConfig(...), checkpoint_dir)`` and its parts.

Names are imported lazily (PEP 562) so that ``picollm.training.cpu_allocator`` can run before
torch is imported: it must, to switch on huge pages for torch's CPU allocator.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config",
    "batches_per_epoch": "config",
    "train": "trainer",
    "TrainResult": "trainer",
    "TrainingDivergedError": "trainer",
    "TrainingHistory": "history",
    "StepRecord": "history",
    "EvalRecord": "history",
    "CheckpointError": "checkpoint",
    "read_checkpoint": "checkpoint",
    "save_model_weights": "weights",
    "load_model_weights": "weights",
    "load_trained_model": "weights",
    "enable_cpu_huge_pages": "cpu_allocator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
