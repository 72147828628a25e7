"""Model zoo: ``build(config)`` makes any model from its ``params.yaml`` entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from picollm.models.base import LanguageModel
from picollm.models.kgram import KGramConfig, KGramMLPLanguageModel
from picollm.models.lstm import LSTMConfig, LSTMLanguageModel
from picollm.models.transformer import TransformerConfig, TransformerLanguageModel

# Keys of a params.yaml model entry that describe the run, not the architecture.
NON_ARCHITECTURE_KEYS = frozenset({"name", "type", "training"})

# Keys injected from the data section into every model entry; a model may not use them.
INJECTED_KEYS = frozenset({"block_size"})

Builder = Callable[[dict[str, Any]], LanguageModel]


def _builder(config_class: type, model_class: Callable[[Any], LanguageModel]) -> Builder:
    """Build ``model_class(config_class(**arch))``, dropping injected keys the config lacks."""
    accepted = {f.name for f in fields(config_class)}

    def build_model(arch: dict[str, Any]) -> LanguageModel:
        kept = {k: v for k, v in arch.items() if k in accepted or k not in INJECTED_KEYS}
        return model_class(config_class(**kept))

    return build_model


BUILDERS: dict[str, Builder] = {
    "lstm": _builder(LSTMConfig, LSTMLanguageModel),
    "kgram_mlp": _builder(KGramConfig, KGramMLPLanguageModel),
    "transformer": _builder(TransformerConfig, TransformerLanguageModel),
}


def build(config: dict[str, Any]) -> LanguageModel:
    """Build a model from a config with ``type``, ``vocab_size`` and the type's hyperparameters.

    Unknown types and unknown keys raise ``ValueError`` naming the offending entry; so do bad
    values (the message names the key and what is allowed).
    """
    kind = config.get("type")
    if kind not in BUILDERS:
        raise ValueError(f"unknown model type {kind!r}; choose one of {sorted(BUILDERS)}")
    arch = {k: v for k, v in config.items() if k not in NON_ARCHITECTURE_KEYS}
    try:
        return BUILDERS[kind](arch)
    except TypeError as err:  # an unexpected keyword for this model's config, or a bad type
        raise ValueError(f"bad hyperparameters for model type {kind!r}: {err}") from err


def check_buildable(config: dict[str, Any]) -> None:
    """Raise what ``build(config)`` would raise, without allocating any weights: the model is
    built on PyTorch's meta device, so every check of its config and of its layers runs."""
    import torch

    with torch.device("meta"):
        build(config)


__all__ = ["LanguageModel", "build", "check_buildable", "BUILDERS", "NON_ARCHITECTURE_KEYS"]
