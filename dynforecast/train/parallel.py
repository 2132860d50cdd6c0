"""What a run does in parallel, for the start-of-run block: processes, per-process and global
batch, CPU threads; and choosing and applying the thread count.

``--batch-size`` is per process (as in Lightning and MACE): W processes step together on
W x batch_size windows, the global batch printed at the start, so a learning rate that suits a
global batch must be chosen with W in mind (docs/scaling.md).
"""

from __future__ import annotations

import torch

from dynforecast.train.distributed import DistContext
from dynforecast.train.threads import ThreadChoice, apply_threads, choose_threads


def prepare_threads(context: DistContext, requested: int | None) -> tuple[ThreadChoice, int]:
    """Choose this process's thread count (`choose_threads`, sharing the node's CPUs among the
    ranks on it) and apply it; returns the choice and torch's previous count (to restore).

    Raises UsageError for a bad ``requested`` or OMP_NUM_THREADS.
    """
    choice = choose_threads(
        requested, ranks_on_node=context.local_world_size, launcher=context.launcher
    )
    previous = torch.get_num_threads()
    apply_threads(choice)
    return choice, previous


def processes_line(context: DistContext, device: torch.device) -> str | None:
    """ "2 (slurm, gloo; 2 on this node)" under DDP, None for a single process."""
    if not context.enabled:
        return None
    backend = "nccl" if device.type == "cuda" else "gloo"
    return (
        f"{context.world_size} ({context.launcher}, {backend}; "
        f"{context.local_world_size} on this node)"
    )


def batch_line(batch_size: int, context: DistContext) -> str:
    """ "100" for one process; "100 windows per process x 4 processes = global batch 400"."""
    if not context.enabled or context.world_size == 1:
        return f"{batch_size}"
    return (
        f"{batch_size} windows per process x {context.world_size} processes = global batch "
        f"{batch_size * context.world_size}"
    )
