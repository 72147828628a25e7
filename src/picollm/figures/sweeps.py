"""Reading the hyperparameter study: its runs grouped by study and point, seeds together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DATA_FRACTION = "data_fraction"
"""The training key of the data ladder: the share of the training documents a run reads."""


def point_x(key: str, point: Any, label: str) -> Any:
    """Where a point sits on its study's axis: the value it gives the study's own key, else its
    label (a point that changes several keys without the study's name among them)."""
    if isinstance(point, Mapping):
        return point.get(key, label)
    return point


def series(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[Any, Mapping[str, Any]]]]:
    """Per study, ``(x, run)`` pairs of its runs (``point_x``) in the order of its points in
    params.yaml; a point's seeds are consecutive pairs with the same x."""
    by_key: dict[str, list[tuple[int, Any, Mapping[str, Any]]]] = {}
    for run in runs:
        sweep = run["sweep"]
        x = point_x(sweep["key"], sweep["point"], sweep["label"])
        by_key.setdefault(sweep["key"], []).append((sweep["index"], x, run))
    return {
        key: [(x, run) for _, x, run in sorted(points, key=lambda p: (p[0], p[2]["sweep"]["seed"]))]
        for key, points in by_key.items()
    }


def is_training_key(run: Mapping[str, Any], key: str) -> bool:
    """Whether a study's key is a training setting (else an architecture key)."""
    return key in run["training"]
