"""``TrainConfig``: every knob of a training run, checked when it is made.

Field names follow the course starter where it has one (``batch_size``, ``learning_rate``,
``epochs``, ``max_steps_per_epoch``); each field is a key of the ``training`` section of
``params.yaml``. The trainer itself counts optimiser steps: ``total_steps`` turns the starter's
epoch knobs into that count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from picollm.models.base import check_float, check_int

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")

RESUME_NEUTRAL_FIELDS = frozenset(
    {"device", "compile", "checkpoint_interval", "log_interval", "processes"}
)
"""Fields a resumed run may change: they say where and how often, not what is computed.
``eval_interval`` is not one: a resumed run would mix two evaluation grids in one loss curve."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (see each field's comment for its meaning)."""

    batch_size: int = 16  # sequences per optimiser step
    learning_rate: float = 3e-3  # peak AdamW learning rate, reached after warm-up
    epochs: int = 1  # passes over the training tokens
    max_steps_per_epoch: int | None = 200  # cap on steps per epoch; None: no cap
    weight_decay: float = 0.1  # decoupled weight decay, on matrices only
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moment decay rates
    warmup_steps: int = 20  # steps of linear warm-up from 0 to learning_rate
    min_lr_ratio: float = 0.1  # the cosine decays to learning_rate * min_lr_ratio
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    eval_interval: int = 20  # steps between evaluations on the fixed eval batches
    eval_batches: int = 4  # fixed batches per split in each evaluation
    checkpoint_interval: int = 100  # steps between checkpoints; 0: only at the end
    log_interval: int = 10  # steps between history records
    seed: int = 1337  # seed of every random number generator the run uses
    device: str = "auto"  # auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto (bfloat16 on CUDA if supported, else float32) | float32 | bfloat16
    compile: bool = False  # wrap the model in torch.compile
    processes: int = 1  # data-parallel processes the train rule starts (torchrun) when above 1
    data_fraction: float = 1.0  # share of the training documents read (``run_length``)
    final_eval_batches: int | None = 32  # per split, for the reported losses; None: all of test

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_int("epochs", self.epochs, 1)
        if self.max_steps_per_epoch is not None:
            check_int("max_steps_per_epoch", self.max_steps_per_epoch, 1)
        check_float("weight_decay", self.weight_decay, 0.0)
        object.__setattr__(self, "betas", _checked_betas(self.betas))
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.max_steps_per_epoch is not None:
            most = self.epochs * self.max_steps_per_epoch
            if self.warmup_steps >= most:
                raise ValueError(
                    f"warmup_steps ({self.warmup_steps}) must be below the run's total steps, "
                    f"at most epochs * max_steps_per_epoch = {most}: lower warmup_steps or "
                    "train longer"
                )
        check_float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_float("grad_clip", self.grad_clip, 0.0)
        check_float("data_fraction", self.data_fraction, 0.0, 1.0, low_open=True)
        if self.final_eval_batches is not None:
            check_int("final_eval_batches", self.final_eval_batches, 1)
        check_int("eval_interval", self.eval_interval, 1)
        check_int("eval_batches", self.eval_batches, 1)
        check_int("checkpoint_interval", self.checkpoint_interval, 0)
        check_int("log_interval", self.log_interval, 1)
        check_int("seed", self.seed, 0)
        check_int("processes", self.processes, 1)
        _check_device(self.device)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be a bool, got {self.compile!r}")
        for name in ("learning_rate", "weight_decay", "min_lr_ratio", "grad_clip"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping such as the ``training`` section of params.yaml.

        Missing keys take their defaults; an unknown key raises ``ValueError`` naming it.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training keys {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``betas`` as a list)."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    def total_steps(self, steps_per_epoch: int | None) -> int:
        """Optimiser steps of the whole run: ``epochs * min(max_steps_per_epoch, steps_per_epoch)``.

        ``steps_per_epoch`` is how many batches one pass over the training tokens takes (see
        ``batches_per_epoch``); None means the data sets no limit, so ``max_steps_per_epoch``
        alone decides.
        """
        if steps_per_epoch is not None:
            check_int("steps_per_epoch", steps_per_epoch, 1)
        caps = [n for n in (self.max_steps_per_epoch, steps_per_epoch) if n is not None]
        if not caps:
            raise ValueError(
                "the run has no length: pass steps_per_epoch or set max_steps_per_epoch"
            )
        return self.epochs * min(caps)


TRAINING_KEYS = frozenset(f.name for f in fields(TrainConfig))
"""The ``training`` keys of params.yaml."""


def batches_per_epoch(train_tokens: int, batch_size: int, block_size: int) -> int:
    """Batches of ``batch_size`` windows of ``block_size`` tokens that cover ``train_tokens``."""
    check_int("train_tokens", train_tokens, 1)
    check_int("batch_size", batch_size, 1)
    check_int("block_size", block_size, 1)
    return math.ceil(train_tokens / (batch_size * block_size))


def run_length(config: TrainConfig, split_tokens: int, block_size: int) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` of a run on a train split of ``split_tokens`` tokens.

    An epoch is counted on the whole split even when a run trains on a fraction of it (the
    ``data_fraction`` ladder): every run of a ladder then takes the same number of optimiser
    steps, and a smaller training set is repeated for more passes, so only its size changes.
    """
    steps_per_epoch = batches_per_epoch(split_tokens, config.batch_size, block_size)
    return steps_per_epoch, config.total_steps(steps_per_epoch)


def _checked_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, list | tuple) or len(betas) != 2:
        raise ValueError(f"betas must be a pair [beta1, beta2], got {betas!r}")
    for index, beta in enumerate(betas, start=1):
        check_float(f"beta{index}", beta, 0.0, 1.0, high_open=True)
    return float(betas[0]), float(betas[1])


def _check_device(device: Any) -> None:
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, got {device!r}")
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {device!r}")
