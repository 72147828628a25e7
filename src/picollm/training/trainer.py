"""The training loop: AdamW steps on a batch stream, fixed-batch evaluation, resumable checkpoints.

One call of ``train`` runs a whole training run, or the rest of it: if ``checkpoint_dir`` holds
a checkpoint of the same run, it continues from there. Everything a step depends on (weights,
optimiser moments, the step count that sets the learning rate, every random generator, the
data stream's position) is restored, so on the CPU a resumed run is bit-identical to one that
was never interrupted.

Under ``torchrun`` (inside ``distributed.process_group``) the same call trains data-parallel:
each process takes its share of every batch and DDP all-reduces the gradients, so the run
computes the single-process updates up to float summation order (see ``distributed``).
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from picollm.data.loader import IGNORE_INDEX
from picollm.models.base import LanguageModel
from picollm.training.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    UnreadableCheckpointError,
    check_fingerprint,
    read_checkpoint,
    remove_stale_temporaries,
    run_fingerprint,
    set_aside,
    write_checkpoint,
)
from picollm.training.config import TrainConfig
from picollm.training.device import autocast, resolve_autocast_dtype, resolve_device
from picollm.training.distributed import (
    Ranks,
    check_batch_divisible,
    current_ranks,
    gather_objects,
    process_device,
    rows_of_rank,
    sum_over_ranks,
    wait_for_all,
    wrap_model,
)
from picollm.training.history import EvalRecord, StepRecord, TrainingHistory, final_metrics
from picollm.training.loss import LossEstimate, evaluation_sums, next_token_loss, window_sums
from picollm.training.optim import (
    build_optimizer,
    clip_gradients,
    learning_rate_at,
    set_learning_rate,
)
from picollm.training.rng import (
    capture_rng_state,
    rank_seed,
    restore_rng_state,
    seed_everything,
)

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 10.0
"""Seconds between two progress lines in the log (the first and the last record always log)."""

EvalCallback = Callable[[int, dict[str, float]], None]
"""Called after each evaluation with (step, loss per split); its use of random numbers does
not disturb the run's."""


class Batch(Protocol):
    inputs: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE_INDEX where not counted


class BatchStream(Protocol):
    """An endless source of training batches whose position can be saved and restored."""

    def __next__(self) -> Batch: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TrainingDivergedError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    history: TrainingHistory
    metrics: dict[str, float | int | None]  # see ``history.final_metrics``
    resumed_from_step: int | None  # None when the run started from scratch


def train(
    model: LanguageModel,
    train_stream: BatchStream,
    eval_sets: Mapping[str, Sequence[Batch]],
    config: TrainConfig,
    checkpoint_dir: Path,
    *,
    steps_per_epoch: int | None = None,
    identity: Mapping[str, Any] | None = None,
    on_eval: EvalCallback | None = None,
    progress: bool = True,
    final_eval_sets: Mapping[str, Sequence[Batch]] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.total_steps(steps_per_epoch)`` steps, or resume and finish.

    ``eval_sets`` maps split names (``"train"``, ``"test"``) to fixed batches, evaluated at
    step 0, every ``eval_interval`` steps and at the end. ``identity`` is a JSON-able
    description of what else defines the run (model hyperparameters, data hashes): a checkpoint
    written under another identity, another ``config`` or another model shape is refused with
    ``CheckpointError``. ``progress`` shows a progress bar on stderr when it is a terminal.
    ``final_eval_sets`` (e.g. ``loader.matched_eval_sets``: whole splits) are evaluated once,
    after the last step, into ``history.final``: each split's loss with its standard error
    (``loss.LossEstimate``); ``metrics`` then report those final losses.
    Progress lines (step, loss, learning rate, tokens/s, time left) go to this module's logger
    at most every ``PROGRESS_INTERVAL_S`` seconds, at a ``log_interval`` step.
    Raises ``TrainingDivergedError`` when the loss stops being finite.

    Inside an initialised process group of N > 1 processes (``distributed.process_group``),
    every process calls ``train`` with the same arguments; ``batch_size`` must be divisible by
    N. Only rank 0 writes the checkpoint, logs, shows progress and calls ``on_eval``; every
    process returns the same weights and the same losses.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_eval_sets(eval_sets)
    if final_eval_sets is not None:
        _check_eval_sets(final_eval_sets)
    ranks = current_ranks()
    check_batch_divisible(config.batch_size, ranks)
    total_steps = config.total_steps(steps_per_epoch)
    if config.warmup_steps >= total_steps:
        raise ValueError(
            f"warmup_steps ({config.warmup_steps}) must be below the run's total steps "
            f"({total_steps}): lower warmup_steps or train longer"
        )
    run = _Run(
        model, train_stream, eval_sets, config, Path(checkpoint_dir), total_steps, identity, ranks
    )
    run.final_eval_sets = final_eval_sets or {}
    resumed_from = run.restore_or_seed()
    no_bar = None if progress and ranks.is_main else True  # None: a bar only on a terminal
    with (
        tqdm(
            total=total_steps, initial=run.step, disable=no_bar, unit="step", file=sys.stderr
        ) as bar,
        logging_redirect_tqdm([logging.getLogger("picollm"), logging.root]),  # lines above the bar
    ):
        run.run(bar, on_eval)
    metrics = final_metrics(
        run.history,
        tokens_seen=run.tokens_seen,
        wall_time_s=run.elapsed_s(),
        train_time_s=run.train_time_s,
        num_parameters=model.num_parameters(),
    )
    return TrainResult(history=run.history, metrics=metrics, resumed_from_step=resumed_from)


class _Run:
    """The mutable state of one run and the steps that advance it."""

    def __init__(
        self,
        model: LanguageModel,
        stream: BatchStream,
        eval_sets: Mapping[str, Sequence[Batch]],
        config: TrainConfig,
        checkpoint_dir: Path,
        total_steps: int,
        identity: Mapping[str, Any] | None,
        ranks: Ranks,
    ):
        self.config = config
        self.total_steps = total_steps
        self.ranks = ranks
        self.device = process_device(resolve_device(config.device), ranks)
        self.autocast_dtype = resolve_autocast_dtype(config.dtype, self.device)
        self.model = model.to(self.device)
        trained = wrap_model(model, self.device, ranks)  # DDP for several processes
        self.forward = torch.compile(trained) if config.compile else trained
        self.optimizer = build_optimizer(
            model,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            betas=config.betas,
            fused=self.device.type == "cuda",
        )
        self.stream = stream
        self.eval_sets = eval_sets
        self.final_eval_sets: Mapping[str, Sequence[Batch]] = {}
        self.checkpoint_path = checkpoint_dir / CHECKPOINT_FILE
        self.fingerprint = run_fingerprint(config, total_steps, model, identity)
        self.history = TrainingHistory()
        self.step = 0  # optimiser updates done
        self.tokens_seen = 0
        self.train_time_s = 0.0  # time inside training steps, across resumptions
        self.earlier_sessions_s = 0.0  # wall time of the sessions before this one
        self.session_start = time.perf_counter()
        self.session_first_step = 0  # the step this session started from
        self.last_progress_s: float | None = None  # when the last progress line was logged
        self.last_checkpoint_step: int | None = None

    def elapsed_s(self) -> float:
        return self.earlier_sessions_s + time.perf_counter() - self.session_start

    # -- checkpoints --------------------------------------------------------------------------

    def restore_or_seed(self) -> int | None:
        """Continue from the checkpoint if there is one (returning its step), else seed.

        Every process reads the checkpoint; none can write one before all have read it (a
        step needs all of them).
        """
        if self.ranks.is_main:
            remove_stale_temporaries(self.checkpoint_path)
        if not self.checkpoint_path.exists():
            seed_everything(rank_seed(self.config.seed, self.ranks.rank))
            return None
        try:
            payload = read_checkpoint(self.checkpoint_path)
        except UnreadableCheckpointError as err:
            wait_for_all(self.ranks)  # every process has tried to read it before it moves
            if self.ranks.is_main:
                aside = set_aside(self.checkpoint_path)
                logger.warning("%s; set aside as %s, training starts afresh", err, aside.name)
            wait_for_all(self.ranks)
            seed_everything(rank_seed(self.config.seed, self.ranks.rank))
            return None
        check_fingerprint(self.checkpoint_path, payload["fingerprint"], self.fingerprint)
        rng_states = payload["rng"]  # one per process of the run that wrote it
        if len(rng_states) != self.ranks.world_size:
            raise CheckpointError(
                f"{self.checkpoint_path} was written by {len(rng_states)} training process(es) "
                f"and this run has {self.ranks.world_size}: resume it with the same number, or "
                "train into a fresh checkpoint directory"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.stream.load_state_dict(payload["data"])
        restore_rng_state(rng_states[self.ranks.rank])
        self.history = TrainingHistory.from_dict(payload["history"])
        self.step = self.last_checkpoint_step = self.session_first_step = payload["step"]
        counters = payload["counters"]
        self.tokens_seen = counters["tokens_seen"]
        self.train_time_s = counters["train_time_s"]
        self.earlier_sessions_s = counters["elapsed_s"]
        self.session_start = time.perf_counter()
        if self.ranks.is_main:
            logger.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return self.step

    def save(self) -> None:
        """Rank 0 writes the checkpoint; every process returns once it is on disk."""
        rng_states = gather_objects(capture_rng_state(), self.ranks)
        if self.ranks.is_main:
            self.write(rng_states)
        wait_for_all(self.ranks)
        self.last_checkpoint_step = self.step

    def write(self, rng_states: list[dict[str, Any]]) -> None:
        write_checkpoint(
            self.checkpoint_path,
            {
                "fingerprint": self.fingerprint,
                "step": self.step,
                "counters": {
                    "tokens_seen": self.tokens_seen,
                    "train_time_s": self.train_time_s,
                    "elapsed_s": self.elapsed_s(),
                },
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": rng_states,
                "data": self.stream.state_dict(),
                "history": self.history.to_dict(),
            },
        )

    # -- the loop -----------------------------------------------------------------------------

    def run(self, bar: tqdm, on_eval: EvalCallback | None) -> None:
        config = self.config
        if self.step == 0 and not self.history.evals:
            self.evaluate(on_eval)
        interval_tokens, interval_time = 0, 0.0
        self.model.train()
        while self.step < self.total_steps:
            lr = self.learning_rate(self.step)
            batch = next(self.stream)
            _check_batch(batch, config.batch_size)
            started = time.perf_counter()
            loss, grad_norm = self.train_step(batch, lr)
            seconds = time.perf_counter() - started
            self.step += 1
            self.tokens_seen += batch.inputs.numel()
            self.train_time_s += seconds
            interval_tokens += batch.inputs.numel()
            interval_time += seconds
            bar.update(1)
            last = self.step == self.total_steps
            if self.step % config.log_interval == 0 or last:
                self.record(lr, loss, grad_norm, interval_tokens / interval_time, bar)
                interval_tokens, interval_time = 0, 0.0
            if self.step % config.eval_interval == 0 or last:
                self.evaluate(on_eval)
            if last:
                self.evaluate_final()
            checkpoint_every = config.checkpoint_interval
            if last or (checkpoint_every and self.step % checkpoint_every == 0):
                self.save()

    def learning_rate(self, step: int) -> float:
        config = self.config
        return learning_rate_at(
            step,
            peak=config.learning_rate,
            warmup_steps=config.warmup_steps,
            total_steps=self.total_steps,
            min_ratio=config.min_lr_ratio,
        )

    def train_step(self, batch: Batch, lr: float) -> tuple[float, float]:
        """One AdamW update at learning rate ``lr``; returns (batch loss, gradient norm).

        The loss is the mean over the whole batch's counted targets; with N processes, each
        computes its rows' share of it (see ``distributed``).
        """
        set_learning_rate(self.optimizer, lr)
        ranks = self.ranks
        # this process's b = B / N rows of the batch
        inputs = rows_of_rank(batch.inputs, ranks).to(self.device, non_blocking=True)  # (b, T)
        targets = rows_of_rank(batch.targets, ranks).to(self.device, non_blocking=True)  # (b, T)
        counted = (batch.targets != IGNORE_INDEX).sum()  # over all B rows
        with autocast(self.device, self.autocast_dtype):
            logits = self.forward(inputs)  # (b, T, V)
        share = next_token_loss(logits, targets, counted)  # float32: its part of the mean
        (share * ranks.world_size).backward()  # DDP averages the N processes' gradients
        loss = sum_over_ranks(share.detach(), ranks)  # the batch's mean loss
        grad_norm = clip_gradients(self.model.parameters(), self.config.grad_clip)
        loss_value, norm_value = torch.stack([loss, grad_norm.float()]).tolist()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            raise TrainingDivergedError(self.divergence_message(loss_value, norm_value, lr))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value, norm_value

    def divergence_message(self, loss: float, grad_norm: float, lr: float) -> str:
        if self.last_checkpoint_step is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = (
                f"the last good checkpoint {self.checkpoint_path} "
                f"(step {self.last_checkpoint_step}) is kept"
            )
        clip = "set grad_clip (e.g. 1.0), " if self.config.grad_clip == 0 else ""
        precision = ", or dtype float32" if self.autocast_dtype is not None else ""
        return (
            f"training diverged at step {self.step + 1}: loss {loss}, gradient norm {grad_norm} "
            f"at learning rate {lr:.3g}; {kept}. Try a lower learning_rate, {clip}"
            f"more warmup_steps{precision}."
        )

    def record(
        self, lr: float, loss: float, grad_norm: float, tokens_per_s: float, bar: tqdm
    ) -> None:
        record = StepRecord(
            step=self.step,
            tokens_seen=self.tokens_seen,
            lr=lr,
            train_loss=loss,
            grad_norm=grad_norm,
            tokens_per_s=tokens_per_s,
            elapsed_s=self.elapsed_s(),
        )
        self.history.steps.append(record)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        now = time.perf_counter()
        due = self.last_progress_s is None or now - self.last_progress_s >= PROGRESS_INTERVAL_S
        if not self.ranks.is_main or not (due or self.step == self.total_steps):
            return
        self.last_progress_s = now
        session_s = now - self.session_start
        left_s = session_s / (self.step - self.session_first_step) * (self.total_steps - self.step)
        logger.info(
            "step %d/%d  loss %.4f  lr %.3g  grad norm %.3g  %.0f tokens/s  elapsed %s  "
            "time left %s",
            self.step, self.total_steps, loss, lr, grad_norm, tokens_per_s,
            clock(self.elapsed_s()), clock(left_s),
        )  # fmt: skip

    def evaluate(self, on_eval: EvalCallback | None) -> None:
        """Mean loss on each fixed eval set; then ``on_eval``, with the RNG state shielded."""
        losses = {name: self.eval_loss(batches) for name, batches in self.eval_sets.items()}
        self.history.evals.append(EvalRecord(self.step, self.tokens_seen, losses))
        if not self.ranks.is_main:
            return
        logger.info(
            "eval at step %d: %s",
            self.step, "  ".join(f"{k} {v:.4f}" for k, v in losses.items()),
        )  # fmt: skip
        if on_eval is not None:
            rng_state = capture_rng_state()
            try:
                on_eval(self.step, dict(losses))
            finally:
                restore_rng_state(rng_state)

    def evaluate_final(self) -> None:
        """Each final eval set's loss and standard error, into ``history.final``."""
        for name, batches in self.final_eval_sets.items():
            mine = itertools.islice(batches, self.ranks.rank, None, self.ranks.world_size)
            sums, counts = window_sums(self.model, mine, self.device, self.autocast_dtype)
            parts = gather_objects((sums, counts), self.ranks)  # every process's windows
            estimate = LossEstimate.from_window_sums(
                torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            )
            self.history.final[name] = estimate.to_dict()
        if self.final_eval_sets and self.ranks.is_main:
            logger.info(
                "final evaluation: %s",
                "  ".join(
                    f"{k} {v['loss']:.4f} +- {v['stderr']:.4f} ({v['tokens']} tokens)"
                    for k, v in self.history.final.items()
                ),
            )

    def eval_loss(self, batches: Sequence[Batch]) -> float:
        """Mean loss per counted target on ``batches``; process r evaluates batches r, r + N, ..."""
        ranks = self.ranks
        mine = itertools.islice(batches, ranks.rank, None, ranks.world_size)
        total, counted = evaluation_sums(self.model, mine, self.device, self.autocast_dtype)
        sums = sum_over_ranks(torch.stack([total, counted.to(torch.float64)]), ranks)
        return (sums[0] / sums[1].clamp(min=1)).item()


def clock(seconds: float) -> str:
    """``seconds`` as h:mm:ss."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _check_eval_sets(eval_sets: Mapping[str, Sequence[Batch]]) -> None:
    if not isinstance(eval_sets, Mapping) or not eval_sets:
        raise ValueError("eval_sets must be a non-empty mapping of split name -> list of batches")
    for name, batches in eval_sets.items():
        if not isinstance(name, str) or len(batches) == 0:
            raise ValueError(f"eval_sets[{name!r}] must be a non-empty list of batches")


def _check_batch(batch: Batch, batch_size: int) -> None:
    inputs, targets = batch.inputs, batch.targets
    if inputs.dim() != 2 or inputs.shape != targets.shape:
        raise ValueError(
            f"a training batch must have inputs and targets of one shape (B, T); got "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if inputs.shape[0] != batch_size:
        raise ValueError(
            f"the training stream yields batches of {inputs.shape[0]} sequences but "
            f"batch_size is {batch_size}"
        )
