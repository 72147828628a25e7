"""Data-parallel training (DDP) across the processes that ``torchrun`` starts.

``torchrun --nproc_per_node N`` starts N copies of a program and tells each, through the
environment, its ``RANK`` (0 .. N-1 over all machines), the ``WORLD_SIZE`` N and its
``LOCAL_RANK`` on its own machine. :func:`torchrun_ranks` reads them; :func:`process_group`
joins the processes (gloo on the CPU, NCCL on CUDA, each process on GPU ``cuda:LOCAL_RANK``);
inside it, ``train`` trains data-parallel. Without those variables, or with one process,
nothing here does anything and training is the plain single-process run.

How one optimiser step is shared (so that N processes compute the single-process update):

* every process draws the same global batch of ``batch_size`` sequences from the same seeded
  stream and keeps its own contiguous chunk of ``batch_size / N`` rows (:func:`rows_of_rank`);
* the single-process loss is the mean over the global batch's counted targets, so each process
  takes the sum of its rows' losses divided by the *global* count. DDP averages gradients over
  processes, so each process back-propagates N times that share: the average of N such
  gradients is the gradient of the global mean, whatever each chunk counts;
* the gradients arrive all-reduced, so clipping, the gradient norm and the AdamW update are the
  same on every process. Only float summation order differs from a single process;
* each process evaluates every N-th fixed eval batch and the summed losses are all-reduced.

Rank 0 keeps the seed, the others get their own (``rng.rank_seed``), so dropout masks are
independent across the batch as in one process; a run with dropout therefore matches the
single-process run in distribution, not number for number. Rank 0 alone writes checkpoints
(holding every process's generator states), and all read them on resumption, so several
machines need a shared file system for the checkpoint directory.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from picollm.training.device import resolve_device

ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
T = TypeVar("T")
# recent torch (2.13 here) calls it ``forward_sync_buffers`` and warns about the old name
NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the processes of one data-parallel run."""

    rank: int = 0  # 0 .. world_size - 1 over all machines
    world_size: int = 1  # processes in the run
    local_rank: int = 0  # index among the processes on this machine: its GPU

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(
                f"ranks must satisfy 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; got RANK="
                f"{self.rank}, WORLD_SIZE={self.world_size}, LOCAL_RANK={self.local_rank}"
            )

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files, logs and shows progress."""
        return self.rank == 0


def torchrun_ranks() -> Ranks:
    """This process's ranks from torchrun's environment; ``Ranks()`` (one process) without it."""
    values = {name: os.environ.get(name) for name in ENVIRONMENT}
    if values["WORLD_SIZE"] is None:
        return Ranks()
    try:
        world_size, rank = int(values["WORLD_SIZE"]), int(values["RANK"])
        local_rank = int(values["LOCAL_RANK"] if values["LOCAL_RANK"] is not None else rank)
    except (TypeError, ValueError):
        shown = ", ".join(f"{name}={value!r}" for name, value in values.items())
        raise ValueError(
            f"torchrun's environment must give integers WORLD_SIZE and RANK (and LOCAL_RANK); "
            f"got {shown}"
        ) from None
    return Ranks(rank=rank, world_size=world_size, local_rank=local_rank)


def current_ranks() -> Ranks:
    """The ranks of the initialised default process group; ``Ranks()`` when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    rank = dist.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return Ranks(rank=rank, world_size=dist.get_world_size(), local_rank=local_rank)


def process_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device this process trains on: ``device`` itself, but GPU ``cuda:LOCAL_RANK`` when
    several processes train on CUDA. ValueError for a device that DDP cannot share."""
    if ranks.world_size == 1 or device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(
            f"data-parallel training runs on 'cpu' (gloo) or 'cuda' (NCCL), not on {device}"
        )
    if device.index is not None:
        raise ValueError(
            f"device {str(device)!r} would put all {ranks.world_size} processes on one GPU; "
            "use 'auto' or 'cuda': each process then takes GPU cuda:LOCAL_RANK"
        )
    if ranks.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {ranks.local_rank} has no GPU: this machine has "
            f"{torch.cuda.device_count()}; start at most that many processes per node"
        )
    return torch.device("cuda", ranks.local_rank)


@contextlib.contextmanager
def process_group(
    ranks: Ranks,
    device: str = "auto",
    *,
    init_method: str = "env://",
    timeout_s: float = 1800.0,
) -> Iterator[None]:
    """Join the run's processes for the enclosed block, then leave; a no-op for one process.

    ``device`` is the training device setting (``TrainConfig.device``): CUDA picks the NCCL
    backend and makes ``cuda:LOCAL_RANK`` this process's current GPU, the CPU picks gloo.
    ``init_method`` says how the processes find each other (``env://``: torchrun's
    ``MASTER_ADDR`` and ``MASTER_PORT``; ``file://PATH`` for a shared file). A collective that
    waits longer than ``timeout_s`` seconds (a process died) fails instead of hanging.
    """
    if ranks.world_size == 1:
        yield
        return
    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already initialised")
    target = process_device(resolve_device(device), ranks)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    dist.init_process_group(
        backend="nccl" if target.type == "cuda" else "gloo",
        init_method=init_method,
        rank=ranks.rank,
        world_size=ranks.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=target if target.type == "cuda" else None,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_batch_divisible(batch_size: int, ranks: Ranks) -> None:
    """ValueError unless every process can take the same number of each batch's rows."""
    if batch_size % ranks.world_size:
        raise ValueError(
            f"batch_size ({batch_size}) must be divisible by the number of processes "
            f"({ranks.world_size}): each process trains on batch_size / processes rows of "
            "every batch"
        )


def rows_of_rank(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This process's rows of a global batch: chunk ``rank`` of ``world_size`` equal,
    contiguous chunks along dim 0. (B, ...) -> (B / world_size, ...)"""
    check_batch_divisible(tensor.shape[0], ranks)
    rows = tensor.shape[0] // ranks.world_size
    return tensor[ranks.rank * rows : (ranks.rank + 1) * rows]


def wrap_model(model: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """``model`` in DDP, which all-reduces gradients during ``backward``; ``model`` itself for
    one process.

    Buffers are not re-broadcast before each forward pass: every process computes its own
    identical ones (position tables that grow on demand, so a broadcast could even meet
    tables of different lengths after an evaluation that some processes sat out).
    """
    if ranks.world_size == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **NO_FORWARD_BUFFER_SYNC)


def sum_over_ranks(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The elementwise sum of ``tensor`` over all processes (``tensor`` itself for one)."""
    if ranks.world_size == 1:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gather_objects(value: T, ranks: Ranks) -> list[T]:
    """Every process's ``value`` (picklable), in rank order, on every process."""
    if ranks.world_size == 1:
        return [value]
    values: list[T] = [None] * ranks.world_size  # type: ignore[list-item]
    dist.all_gather_object(values, value)
    return values


def wait_for_all(ranks: Ranks) -> None:
    """Return once every process got here (a no-op for one process)."""
    if ranks.world_size > 1:
        dist.barrier()
