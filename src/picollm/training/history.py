"""What a run records: a row per logged step, a row per evaluation, and the final metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepRecord:
    """One logged optimiser step; ``train_loss`` is that step's batch loss."""

    step: int  # optimiser updates done, counting this one
    tokens_seen: int  # input tokens consumed so far
    lr: float  # learning rate of this update
    train_loss: float
    grad_norm: float  # global gradient norm before clipping
    tokens_per_s: float  # training throughput since the previous record (evaluation excluded)
    elapsed_s: float  # wall time since the run began, across resumptions


CLOCK_FIELDS = ("tokens_per_s", "elapsed_s")
"""``StepRecord`` fields read from the clock: they differ between otherwise identical runs."""


@dataclass(frozen=True)
class EvalRecord:
    """Mean loss per split on the fixed evaluation batches after ``step`` updates."""

    step: int
    tokens_seen: int
    losses: dict[str, float]


@dataclass
class TrainingHistory:
    steps: list[StepRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    final: dict[str, dict[str, float | int]] = field(default_factory=dict)
    """Per split, the precise final evaluation (``LossEstimate.to_dict``); empty without one."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [asdict(r) for r in self.steps],
            "evals": [asdict(r) for r in self.evals],
            "final": {split: dict(values) for split, values in self.final.items()},
        }

    def without_clock(self) -> dict[str, Any]:
        """``to_dict`` without the ``CLOCK_FIELDS``: what the same params, data and number of
        threads reproduce bit for bit, on CPU."""
        data = self.to_dict()
        for row in data["steps"]:
            for name in CLOCK_FIELDS:
                del row[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingHistory:
        return cls(
            steps=[StepRecord(**r) for r in data["steps"]],
            evals=[EvalRecord(**r) for r in data["evals"]],
            final={split: dict(values) for split, values in data.get("final", {}).items()},
        )


def final_metrics(
    history: TrainingHistory,
    *,
    tokens_seen: int,
    wall_time_s: float,
    train_time_s: float,
    num_parameters: int,
) -> dict[str, float | int | None]:
    """Summary of a run, flat for a TSV row.

    ``final_<split>_loss`` and ``best_<split>_loss`` for every evaluated split;
    ``generalization_gap`` = final test - final train loss (None without both splits);
    with a precise final evaluation (``history.final``), ``final_<split>_loss`` is its loss,
    beside it ``final_<split>_loss_stderr`` and ``final_<split>_eval_tokens``, and
    ``generalization_gap_stderr`` (the splits' errors added in quadrature: independent text);
    ``tokens_per_s`` over training time only (evaluation and checkpoints excluded).
    """
    metrics: dict[str, float | int | None] = {}
    if history.evals:
        for split, loss in history.evals[-1].losses.items():
            metrics[f"final_{split}_loss"] = loss
            metrics[f"best_{split}_loss"] = min(r.losses[split] for r in history.evals)
    for split, estimate in history.final.items():
        metrics[f"final_{split}_loss"] = estimate["loss"]
        metrics[f"final_{split}_loss_stderr"] = estimate["stderr"]
        metrics[f"final_{split}_eval_tokens"] = estimate["tokens"]
    train, test = metrics.get("final_train_loss"), metrics.get("final_test_loss")
    metrics["generalization_gap"] = None if train is None or test is None else test - train
    if {"train", "test"} <= set(history.final):
        errors = (history.final[split]["stderr"] for split in ("train", "test"))
        metrics["generalization_gap_stderr"] = math.sqrt(sum(e**2 for e in errors))
    metrics.update(
        steps=history.evals[-1].step if history.evals else 0,
        tokens_seen=tokens_seen,
        wall_time_s=wall_time_s,
        tokens_per_s=tokens_seen / train_time_s if train_time_s > 0 else 0.0,
        num_parameters=num_parameters,
    )
    return metrics
