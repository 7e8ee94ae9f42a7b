"""One run in several processes, with PyTorch's own distributed runtime.

``torchrun --nproc-per-node N run_benchmark.py ...`` (multi-node: ``--nnodes`` and a rendezvous
endpoint) starts N processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their
environment. ``start`` joins them into one process group (gloo on CPU, NCCL on CUDA, each rank on
GPU ``LOCAL_RANK``). Every rank trains together with DistributedDataParallel (``parallel``,
``epoch_batches``): rank 0 writes the cached checkpoint, the others wait and load it
(``checkpoints.cached_training``). Then each rank evaluates a disjoint, deterministic share of the
batches (``shard``) and rank 0 merges the ranks' rows and writes the tables.
A single process (plain ``python run_benchmark.py``) is world size 1 and needs no process group.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

WAIT = datetime.timedelta(hours=48)
"""How long a rank waits for the others at a barrier: rank 0 may train paper-size models meanwhile."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` in 0 … ``world_size`` − 1, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """Rank 0: trains, merges and writes the tables."""
        return self.rank == 0


def ranks() -> Ranks:
    """The ranks from torchrun's environment variables (world size 1 without them)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def start(device: str) -> Ranks:
    """Join the process group of a torchrun launch (no-op for one process) and return the ranks.

    Args:
        device: the run's ``--device``: "cpu" uses gloo; "cuda" uses NCCL with this rank on
            ``cuda:LOCAL_RANK`` (the caller uses ``device_of``).
    """
    current = ranks()
    if current.world_size > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(current.local_rank)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=WAIT)
    return current


def device_of(device: str, current: Ranks) -> str:
    """``cuda:LOCAL_RANK`` for a plain "cuda" in a launch of several processes; else ``device``."""
    return f"cuda:{current.local_rank}" if device == "cuda" and current.world_size > 1 else device


def barrier(current: Ranks) -> None:
    """Wait until every rank gets here (no-op for one process)."""
    if current.world_size > 1:
        dist.barrier()


def stop() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process() -> int:
    """torch's intra-op threads for this process: the node's cores shared by the processes torchrun
    started on it (``LOCAL_WORLD_SIZE``), all of them for a single process."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def shard(batches: list, current: Ranks) -> list:
    """This rank's share of ``batches``: every ``world_size``-th batch from ``rank`` on (disjoint, all
    covered, the same on every run)."""
    return batches[current.rank::current.world_size]


def epoch_batches(count: int, batch_size: int, generator: torch.Generator, epoch: int, seed: int,
                  current: Ranks) -> list[torch.Tensor]:
    """This process's training batches of one epoch: index tensors (CPU, long) into ``count`` items.

    One process: a permutation drawn from ``generator``, in batches of ``batch_size`` (the draws of a
    single-process run, unchanged). Several (DDP): PyTorch's ``DistributedSampler`` (shuffled with
    ``seed`` and ``epoch``, padded to equal shares), in batches of ``batch_size / world_size``, so that
    the gradient DDP averages is that of a global batch of ``batch_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the number of processes.
    """
    if current.world_size == 1:
        return list(torch.randperm(count, generator=generator).split(batch_size))
    if batch_size % current.world_size:
        raise ValueError(f"the profile's training batch size {batch_size} is not a multiple of the "
                         f"{current.world_size} processes; start torchrun with a divisor of it")
    sampler = DistributedSampler(range(count), num_replicas=current.world_size, rank=current.rank, shuffle=True,
                                 seed=seed)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler)).split(batch_size // current.world_size))


def parallel(module: torch.nn.Module, current: Ranks) -> torch.nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` in a launch of several processes (gradients
    averaged over the ranks at each backward pass, buffers broadcast from rank 0); else ``module``.
    Train through the returned module's ``forward``; read and save ``module`` itself."""
    if current.world_size == 1:
        return module
    on_gpu = next(module.parameters()).is_cuda
    return DistributedDataParallel(module, device_ids=[current.local_rank] if on_gpu else None)
