"""Data-parallel training (DDP) when launched by ``torchrun`` or ``srun``; a no-op otherwise.

The loop calls these few functions unconditionally, so single-process CPU/GPU runs and
multi-process runs share one code path: each rank takes every ``world_size``-th window of the
epoch's permutation (padded so that all ranks run the same number of steps, which DDP's
collective gradient averaging needs), sums of errors are all-reduced before they become metrics,
and only rank 0 writes files. Where a run is in its epoch is counted in windows of the epoch's
permutation, not in per-rank batches, so a checkpoint resumes under any number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dynforecast.errors import DistributedError, UsageError
from dynforecast.train.launch import Launch, detect_launch

#: Default collective timeout (s): long enough for rank 0 to write a checkpoint or validate
#: while the others wait, short enough that a job with a hung rank does not burn its allocation.
DEFAULT_TIMEOUT_S = 600.0
#: Default join timeout (s) of an srun launch: how long the ranks wait for each other to form
#: the group. The group is formed before the data is read, so only the start of the processes
#: (Python and torch imports, tens of seconds on a cold parallel file system) must fit; a rank
#: that died before joining cannot be noticed any sooner, because it never opened a socket.
DEFAULT_JOIN_TIMEOUT_S = 180.0

#: Set once a collective failed because a peer went away: the process group is broken.
_group_broken = False


@dataclass(frozen=True)
class DistContext:
    """rank/world_size of this process; local_rank picks its GPU.

    ``launched`` is True under torchrun/srun even for a world of one process, so that a
    one-GPU job exercises the same process group and DDP wrapper as a multi-GPU one;
    ``launcher`` says which ("torchrun", "slurm"); ``local_world_size`` counts the ranks on
    this node (they share its CPUs).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False
    launcher: str | None = None
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group of a torchrun or srun launch (`dynforecast.train.launch`), else run
    as a single process without one.

    The backend is NCCL for CUDA devices, gloo for the CPU. Every collective times out after
    `collective_timeout` seconds, so a rank whose peer hangs ends instead of waiting forever (a
    peer that dies is noticed at once: its sockets close). Under srun the ranks meet at rank 0's
    TCP store, which waits `join_timeout` seconds for all of them (a rank killed before it
    joined ends the others then); torchrun's own rendezvous and agent handle that case for its
    workers. Raises DistributedError when the group cannot be formed, UsageError for malformed
    launch variables.
    """
    launch = detect_launch()
    if launch is None:
        return DistContext()
    import torch.distributed as dist

    if not dist.is_initialized():
        # NCCL's watchdog then aborts a rank stuck in a collective past the timeout (the default
        # of recent torch releases; set for older ones).
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        options: dict[str, object] = {
            "backend": "nccl" if device.type == "cuda" else "gloo",
            "timeout": timedelta(seconds=collective_timeout()),
        }
        try:
            if launch.init_method is not None:
                store = _join_store(launch, join_timeout())
                options.update(store=store, rank=launch.rank, world_size=launch.world_size)
            dist.init_process_group(**options)  # type: ignore[arg-type]
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(
                f"{launch.describe()}: cannot join the process group ({_reason(exc)}); all "
                "ranks stop"
            ) from None
        if launch.init_method is not None:
            store.set_timeout(timedelta(seconds=collective_timeout()))
    return DistContext(
        rank=launch.rank,
        world_size=launch.world_size,
        local_rank=launch.local_rank,
        launched=True,
        launcher=launch.launcher,
        local_world_size=launch.local_world_size,
    )


def _join_store(launch: Launch, seconds: float) -> Any:
    """Rank 0's TCP store at the launch's address, every rank connected (rank 0 waits for all
    ``world_size`` ranks, the others retry connecting) within ``seconds``; RuntimeError
    (DistStoreError) past that."""
    import torch.distributed as dist

    if launch.rank != 0:  # wait quietly: torch's own retries log a C++ stack trace each
        _wait_for_listener(launch.master_addr, launch.master_port, seconds)
    return dist.TCPStore(
        launch.master_addr,
        launch.master_port,
        launch.world_size,
        is_master=launch.rank == 0,
        timeout=timedelta(seconds=seconds),
        wait_for_workers=True,
    )


def _wait_for_listener(host: str, port: int, seconds: float) -> None:
    """Return once ``host:port`` accepts a TCP connection; RuntimeError after ``seconds``."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, seconds)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"rank 0's store at {host}:{port} did not answer within {seconds:g} s "
                    f"({exc.strerror or exc}; DYNFORECAST_DDP_JOIN_TIMEOUT)"
                ) from None
            time.sleep(0.25)


def close(context: DistContext) -> None:
    """Leave the process group (end of a run); nothing without one."""
    if context.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def collective_timeout() -> float:
    """Seconds a rank waits for its peers: $DYNFORECAST_DDP_TIMEOUT, default `DEFAULT_TIMEOUT_S`.

    It must exceed the longest time one rank can spend alone: reading the data, rank 0 writing a
    checkpoint, compiling. Raises UsageError for a value that is not a positive number.
    """
    return _seconds("DYNFORECAST_DDP_TIMEOUT", DEFAULT_TIMEOUT_S)


def join_timeout() -> float:
    """Seconds the ranks of an srun launch wait for each other to form the group:
    $DYNFORECAST_DDP_JOIN_TIMEOUT, default `DEFAULT_JOIN_TIMEOUT_S` (UsageError if malformed)."""
    return _seconds("DYNFORECAST_DDP_JOIN_TIMEOUT", DEFAULT_JOIN_TIMEOUT_S)


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable, "")
    if text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(
            f"environment variable {variable}: expected a positive number of seconds (got {text!r})"
        )
    return value


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because a peer ended, hung or went away."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    markers = ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset", "timed out")
    return isinstance(exc, RuntimeError) and any(word in text for word in markers)


def peer_failure(
    exc: BaseException, context: DistContext, run_dir: Path | None = None
) -> DistributedError:
    """The one-line error of a rank whose collective failed (a peer ended or timed out).

    It names the checkpoint a rerun resumes from, ``run_dir``/last.pt, where one was written,
    and says that a rerun starts afresh where none was. The process group is then broken
    (`group_broken`).
    """
    global _group_broken
    _group_broken = True
    last = None if run_dir is None else Path(run_dir) / "last.pt"
    then = (
        f"rerun the job to resume from {last}"
        if last is not None and last.is_file()
        else "no checkpoint was written yet: rerunning the job starts the run afresh"
    )
    return DistributedError(
        f"rank {context.rank} of {context.world_size}: another rank ended or stopped answering "
        f"({_reason(exc)}); all ranks stop; {then}"
    )


def group_broken() -> bool:
    """Whether a collective of this process failed because a peer went away. Such a process
    must end without the interpreter's normal teardown: gloo's threads, still bound to the dead
    peer, can abort it there (SIGABRT, "terminate called without an active exception") after
    the error line was printed, turning exit 7 into 134 at random."""
    return _group_broken


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def local_device(device: torch.device, context: DistContext) -> torch.device:
    """One GPU per process: cuda -> cuda:<local_rank> under DDP, modulo the GPUs this process
    sees (``srun --gpus-per-task=1`` leaves each task one visible GPU: cuda:0), made current."""
    if context.enabled and device.type == "cuda" and device.index is None:
        count = max(torch.cuda.device_count(), 1)
        device = torch.device("cuda", context.local_rank % count)
        torch.cuda.set_device(device)
    return device


def epoch_remainder(order: np.ndarray, done: int, world_size: int) -> np.ndarray:
    """The epoch's windows still to visit, padded to a multiple of ``world_size``.

    ``order`` is the epoch's permutation, ``done`` how many of its windows earlier steps
    consumed (under any world size). Padding repeats windows from the permutation's start, so
    that for a fixed world size a resumed epoch pads exactly as the uninterrupted one did.
    """
    rest = order[done:]
    missing = -len(rest) % world_size
    if missing == 0 or len(order) == 0:
        return rest
    return np.concatenate([rest, np.resize(order, missing)])


def shard(window_ids: np.ndarray, context: DistContext) -> np.ndarray:
    """This rank's share of an ordered id array, wrapped around so every rank gets equally many.

    Batch i of rank r holds the global positions [i B W, (i + 1) B W) of the padded order, so
    after k steps of a per-rank batch B, k B W windows of the order are done.
    """
    if not context.enabled or len(window_ids) == 0:
        return window_ids
    padded = epoch_remainder(window_ids, 0, context.world_size)
    return padded[context.rank :: context.world_size]


def rank_windows(
    order: np.ndarray, done: int, context: DistContext
) -> tuple[np.ndarray, np.ndarray]:
    """This rank's windows of an epoch whose first ``done`` windows of ``order`` are visited,
    and a bool mask of the real ones (False: padding that makes the ranks' shares equal).

    Shapes: order [n] -> ([m], [m]) with m = ceil((n - done) / W). Batch i (rows [i B, (i+1) B))
    of every rank together is the positions [i B W, (i + 1) B W) of ``order[done:]``, as one
    process with batch B W would take them; the real windows of all ranks are ``order[done:]``,
    each exactly once.
    """
    remaining = epoch_remainder(order, done, context.world_size)
    mine = shard(remaining, context)
    positions = context.rank + np.arange(len(mine)) * max(context.world_size, 1)
    return mine, positions < len(order) - done


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
