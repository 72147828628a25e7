"""Reading the hyperparameter study: each sweep run's swept value next to the base run's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from picollm.config import DATA_FRACTION


def is_training_key(base: Mapping[str, Any], key: str) -> bool:
    """Whether a swept key is a training setting (else architecture or data)."""
    return key in base["training"]


def base_value(base: Mapping[str, Any], key: str) -> Any:
    """The value the base run used for a swept key (its architecture, training or all data)."""
    if key == DATA_FRACTION:
        return base.get("data_fraction", 1.0)
    if is_training_key(base, key):
        return base["training"][key]
    return base["architecture"].get(key)


def series(
    base: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]
) -> dict[str, list[tuple[Any, Mapping[str, Any]]]]:
    """Per swept key, (value, metrics) pairs sorted by value, the base run included once."""
    by_key: dict[str, list[tuple[Any, Mapping[str, Any]]]] = {}
    for run in runs:
        by_key.setdefault(run["sweep"]["key"], []).append((run["sweep"]["value"], run))
    for key, points in by_key.items():
        if all(value != base_value(base, key) for value, _ in points):
            points.append((base_value(base, key), base))
        points.sort(key=lambda point: point[0])
    return by_key
