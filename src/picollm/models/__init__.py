"""Model zoo: ``build(config)`` makes any model from its ``params.yaml`` entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from picollm.models.base import LanguageModel
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel

# Keys of a params.yaml model entry that describe the run, not the architecture.
NON_ARCHITECTURE_KEYS = frozenset({"name", "type", "training"})


def _build_lstm(cfg: dict[str, Any]) -> LanguageModel:
    return LSTMLanguageModel(LSTMConfig(**cfg))


BUILDERS: dict[str, Callable[[dict[str, Any]], LanguageModel]] = {
    "lstm": _build_lstm,
}


def build(config: dict[str, Any]) -> LanguageModel:
    """Build a model from a config with ``type``, ``vocab_size`` and the type's hyperparameters.

    Unknown types and unknown keys raise ``ValueError`` naming the offending entry.
    """
    kind = config.get("type")
    if kind not in BUILDERS:
        raise ValueError(f"unknown model type {kind!r}; choose one of {sorted(BUILDERS)}")
    arch = {k: v for k, v in config.items() if k not in NON_ARCHITECTURE_KEYS}
    try:
        return BUILDERS[kind](arch)
    except TypeError as err:  # an unexpected keyword for this model's config dataclass
        raise ValueError(f"bad hyperparameters for model type {kind!r}: {err}") from err


__all__ = ["LanguageModel", "build", "BUILDERS"]
