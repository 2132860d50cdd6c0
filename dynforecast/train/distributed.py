"""Data-parallel training (DDP) when launched by ``torchrun``/``srun``; a no-op otherwise.

The loop calls these few functions unconditionally, so single-process CPU/GPU runs and
multi-process runs share one code path: each rank takes every ``world_size``-th window of the
epoch's permutation (padded so that all ranks run the same number of steps, which DDP's
collective gradient averaging needs), sums of errors are all-reduced before they become metrics,
and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """rank/world_size of this process; local_rank picks its GPU.

    ``launched`` is True under torchrun/srun even for a world of one process, so that a
    one-GPU job exercises the same process group and DDP wrapper as a multi-GPU one.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def enabled(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group described by torchrun's environment (RANK and WORLD_SIZE set),
    else run as a single process without one."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistContext()
    world_size = int(os.environ["WORLD_SIZE"])
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, launched=True)


def local_device(device: torch.device, context: DistContext) -> torch.device:
    """One GPU per process: cuda -> cuda:<local_rank> under DDP."""
    if context.enabled and device.type == "cuda" and device.index is None:
        return torch.device("cuda", context.local_rank)
    return device


def shard(window_ids: np.ndarray, context: DistContext) -> np.ndarray:
    """This rank's share of an ordered id array, wrapped around so every rank gets equally many."""
    if not context.enabled or len(window_ids) == 0:
        return window_ids
    per_rank = -(-len(window_ids) // context.world_size)
    padded = np.resize(window_ids, per_rank * context.world_size)
    return padded[context.rank :: context.world_size]


def shard_exact(window_ids: np.ndarray, context: DistContext) -> np.ndarray:
    """This rank's share without padding (for metrics: every window counted exactly once)."""
    if not context.enabled:
        return window_ids
    return window_ids[context.rank :: context.world_size]


def wrap_model(model: nn.Module, device: torch.device, context: DistContext) -> nn.Module:
    """DistributedDataParallel around the model under DDP, the model itself otherwise."""
    if not context.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (identity without DDP)."""
    if context.enabled:
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values)
    return values


def any_rank(flag: bool, device: torch.device, context: DistContext) -> bool:
    """True if ``flag`` is set on any rank, so that all ranks stop at the same step."""
    if not context.enabled:
        return flag
    total = all_reduce_sum(torch.tensor([float(flag)], device=device), context)
    return bool(total.item() > 0)


def barrier(context: DistContext) -> None:
    if context.enabled:
        import torch.distributed as dist

        dist.barrier()
