"""The points of the sweep's studies: the keys each changes, and a short name for it.

A study ``sweep.values.<key>`` lists points: a plain value sets ``<key>`` itself, a mapping sets
several keys at once (``{norm: post, warmup_steps: 0}``). Kept free of the models and the
trainer, so that the figure stage and the params checks can read the studies cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from picollm.config import schema


def training_keys() -> frozenset[str]:
    """The keys of the ``training`` section (a point's other keys go to the model's entry)."""
    return frozenset(schema()["$defs"]["training"]["properties"])


def point_changes(key: str, point: Any) -> dict[str, Any]:
    """The keys a sweep point sets: ``{key: point}`` for a plain value, else the mapping."""
    return dict(point) if isinstance(point, Mapping) else {key: point}


def point_label(key: str, points: Sequence[Any], index: int) -> str:
    """A short name of point ``index`` of study ``key``: the values it gives the keys that
    differ between the study's points (the study's own key by its value alone, others as
    ``k=v``), e.g. ``"post, warmup_steps=0"``."""
    changes = [point_changes(key, p) for p in points]
    varying = [k for k in dict.fromkeys(k for c in changes for k in c) if _differs(changes, k)]
    mine = changes[index]
    parts = [str(mine[k]) if k == key else f"{k}={mine.get(k)}" for k in varying]
    return ", ".join(parts) or str(points[index])


def _differs(changes: Sequence[Mapping[str, Any]], key: str) -> bool:
    return len({repr(c.get(key)) for c in changes}) > 1


def swept_values(sweep: Mapping[str, Any], key: str) -> list[Any]:
    """Every value the sweep gives ``key``, in its common changes or in any point."""
    found = [sweep["common"][key]] if key in sweep.get("common", {}) else []
    for study, points in sweep["values"].items():
        found += [point_changes(study, p)[key] for p in points if key in point_changes(study, p)]
    return found
