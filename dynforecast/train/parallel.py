"""The start-of-run lines on parallelism (processes, per-process and global batch, threads,
precision), and applying the thread count.

``--batch-size`` is per process (as in Lightning and MACE): W processes step together on
W x batch_size windows, the global batch printed here, so the learning rate that suits a
global batch must be chosen with W in mind (docs/scaling.md).
"""

from __future__ import annotations

import torch

from dynforecast.train.config import TrainConfig
from dynforecast.train.distributed import DistContext
from dynforecast.train.launch import batch_script_note
from dynforecast.train.precision import resolve_precision
from dynforecast.train.threads import ThreadChoice, apply_threads, choose_threads


def setup_lines(
    config: TrainConfig, context: DistContext, device: torch.device, threads: ThreadChoice
) -> list[str]:
    """What `log_parallel_setup` prints (rank 0), one item per line."""
    batch = config.optim.batch_size
    lines = []
    if context.enabled:
        backend = "nccl" if device.type == "cuda" else "gloo"
        lines.append(
            f"distributed: {context.world_size} processes ({context.launcher}, {backend}, "
            f"{context.local_world_size} on this node); batch {batch} windows per process, "
            f"global batch {batch * context.world_size}"
        )
    else:
        lines.append(f"batch {batch} windows per step (one process)")
    precision = resolve_precision(config.optim.precision, config.optim.amp, device, config.dtype)
    lines.append(f"threads: {threads.describe()}; precision {precision.name} on {device}")
    if config.optim.amp:
        lines.append("note: optim.amp (--amp) is deprecated; it means --precision bf16")
    return lines


def prepare_parallel_setup(
    config: TrainConfig, context: DistContext, device: torch.device, requested: int | None
) -> list[str]:
    """Choose and apply the thread count; return the lines rank 0 logs (none on other ranks)."""
    choice = choose_threads(requested, ranks_on_node=context.local_world_size)
    apply_threads(choice)
    if not context.is_main:
        return []
    note = batch_script_note()
    return ([note] if note else []) + setup_lines(config, context, device, choice)
