"""The training loop: Adam, optional schedule, clipping, early stopping, checkpoints, resumption.

`fit` trains a model on a `BatchSource` (anything with ``batch(window_ids) -> WindowBatch``) with
given train/validation window ids, so it is independent of file formats; `dynforecast.train.run`
builds those from a data file.

Reproducibility is exact, also across interruptions: the order of the training windows in epoch
``e`` is a permutation drawn from ``numpy.random.default_rng([seed, e])`` (not from a running RNG),
and a checkpoint stores the epoch, how many batches of the next epoch are done, the running loss
sums, the optimiser and scheduler state and every RNG state. A run stopped by SIGTERM/SIGUSR1
after any optimiser step and resumed therefore produces the same weights and metrics as one that
was never stopped (on the same device and thread count).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dynforecast.data.prefetch import batches
from dynforecast.errors import DivergenceError, Interrupted
from dynforecast.models.base import ForecastModel
from dynforecast.train.checkpoint import FORMAT, capture_rng, restore_rng, save_checkpoint
from dynforecast.train.config import OptimSection, TrainConfig
from dynforecast.train.distributed import (
    DistContext,
    all_reduce_sum,
    rank_windows,
    wrap_model,
)
from dynforecast.train.divergence import DivergenceGuard, divergence_action, with_event_column
from dynforecast.train.ema import WeightAverage
from dynforecast.train.metrics import (
    BatchSource,
    evaluate_errors,
    format_mse,
    node_squared_errors,
    write_metrics_csv,
)
from dynforecast.train.precision import backward, choose_precision, optimizer_step
from dynforecast.train.progress import EpochProgress
from dynforecast.train.signals import STOP_SIGNALS, StopFlag, catch_stop_signals

BEST, LAST, METRICS = "best.pt", "last.pt", "metrics.csv"
#: Checkpoint key of the raw training weights when model_state holds their moving average.
TRAINING_STATE = "training_model_state"

#: Called after every epoch with (epoch, metrics row); tests use it to send signals.
EpochHook = Callable[[int, dict[str, Any]], None]


@dataclass
class FitState:
    """Counters that, with the model/optimiser/RNG states, make a checkpoint resumable."""

    epoch: int = 0
    batch_in_epoch: int = 0
    #: Windows of the current epoch's order consumed so far, over all ranks: what makes a
    #: checkpoint resumable under another number of ranks.
    windows_done: int = 0
    partial_sums: list[float] = field(default_factory=lambda: [0.0, 0.0])
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: int = 0  # divergence-guard rollbacks so far (train/divergence.py)

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], batch_size: int = 1) -> FitState:
        """The counters of a checkpoint; one written before windows_done was stored (by one
        process) consumed ``batch_in_epoch * batch_size`` windows."""
        return cls(
            epoch=int(state["epoch"]),
            batch_in_epoch=int(state["batch_in_epoch"]),
            windows_done=int(state.get("windows_done", state["batch_in_epoch"] * batch_size)),
            partial_sums=[float(v) for v in state["partial_sums"]],
            best_val=float(state["best_val"]),
            best_epoch=int(state["best_epoch"]),
            bad_epochs=int(state["bad_epochs"]),
            finished=bool(state["finished"]),
            history=with_event_column([dict(row) for row in state["history"]]),
            rollbacks=int(state.get("rollbacks", 0)),
        )


@dataclass(frozen=True)
class FitResult:
    epochs_completed: int
    best_val_mse: float
    best_epoch: int
    stopped_early: bool
    history: list[dict[str, Any]]


def epoch_order(train_ids: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training windows of ``epoch`` in the order they are visited (depends on seed, epoch only)."""
    return np.random.default_rng([seed, epoch]).permutation(np.asarray(train_ids, dtype=np.int64))


def make_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimSection
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """ "cosine": to 0 over the planned epochs; "plateau": halve after 5 epochs without a better
    validation MSE; "none": constant learning rate."""
    if optim.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optim.epochs)
    if optim.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    return None


def fit(
    model: ForecastModel,
    dataset: BatchSource,
    splits: dict[str, np.ndarray],
    config: TrainConfig,
    run_dir: Path,
    *,
    n_systems: int,
    device: torch.device,
    metadata: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    context: DistContext | None = None,
    on_epoch_end: EpochHook | None = None,
    progress: EpochProgress | None = None,
) -> FitResult:
    """Train ``model`` in place; write best.pt, last.pt and metrics.csv into ``run_dir``.

    ``metadata`` (resolved config, data signature, checksum, versions) is stored in every
    checkpoint. ``resume`` is a loaded last.pt to continue from. Raises `Interrupted` after
    writing last.pt when SIGTERM/SIGUSR1 arrives, `DivergenceError` on a non-finite loss.
    """
    context = context or DistContext()
    optim = config.optim
    dtype = getattr(torch, config.dtype)
    model.to(device=device, dtype=dtype)
    precision = choose_precision(optim.precision, optim.amp, device, config.dtype)
    scaler = precision.scaler()
    optimizer = torch.optim.Adam(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    scheduler = make_scheduler(optimizer, optim)
    state = FitState()
    average = WeightAverage(model, optim.ema_decay) if optim.ema_decay is not None else None
    if resume is not None:
        # With an EMA, model_state is the average and training_model_state the raw weights.
        model.load_state_dict(resume.get(TRAINING_STATE) or resume["model_state"])
        if average is not None:
            average.load(resume["model_state"], int(resume.get("ema_updates", 0)))
        optimizer.load_state_dict(resume["optimizer_state"])
        if scheduler is not None and resume["scheduler_state"] is not None:
            scheduler.load_state_dict(resume["scheduler_state"])
        if scaler is not None and resume.get("grad_scaler_state"):
            scaler.load_state_dict(resume["grad_scaler_state"])
        restore_rng(resume["rng"])
        state = FitState.from_checkpoint(resume, optim.batch_size)
        if not context.is_main:  # the stored partial sums are the sums over all ranks
            state.partial_sums = [0.0, 0.0]
        state.finished = _still_finished(state, optim)
        extend_schedule(scheduler, optim, state.epoch)
    network = wrap_model(model, device, context)
    if optim.compile:
        # Checkpoints keep saving ``model``: the compiled wrapper's state_dict has other key names.
        network = torch.compile(network)
    progress = progress or EpochProgress(enabled=context.is_main)

    # Informational (resumption does not need them): who wrote the checkpoint, in what steps.
    layout = {
        "world_size": context.world_size,
        "global_batch": int(optim.batch_size or 0) * context.world_size,
    }

    def checkpoint(path: Path) -> None:
        if context.is_main:
            stored = {**(metadata or {}), **layout}
            save_checkpoint(
                _checkpoint_dict(model, optimizer, scheduler, state, stored, average, scaler), path
            )

    guard = DivergenceGuard(optim, (metadata or {}).get("baselines_val_mse"))
    train_ids = np.asarray(splits["train"], dtype=np.int64)
    val_ids = np.asarray(splits["val"], dtype=np.int64)
    with catch_stop_signals() as stop, progress:
        while not state.finished and state.epoch < optim.epochs:
            started = time.perf_counter()
            epoch = state.epoch + 1
            order = epoch_order(train_ids, config.seed, epoch)
            # The epoch's windows not yet visited, dealt to this rank (all of them, in order,
            # for a single process): batch i of every rank together covers the global
            # positions [i B W, (i + 1) B W) of what is left.
            # Padding (windows repeated so every rank runs as many steps) weighs nothing: each
            # window counts once in the gradient and the training MSE, as in one process.
            mine, real = rank_windows(order, state.windows_done, context)
            per_step = optim.batch_size * context.world_size
            done_before = -(-state.windows_done // per_step)  # batches of this world size
            starts = range(0, len(mine), optim.batch_size)
            progress.start_epoch(epoch, optim.epochs, done_before + len(starts), done_before)
            running = torch.tensor(state.partial_sums, dtype=torch.float64, device=device)
            network.train()
            chunks = [mine[start : start + optim.batch_size] for start in starts]
            # closing: a stop or an error mid-epoch ends the DataLoader workers at once
            with closing(batches(dataset, chunks, optim.workers or 0)) as built:
                for index, (start, ready) in enumerate(zip(starts, built, strict=True)):
                    batch = ready.to(device, dtype)
                    with precision.autocast():
                        prediction = network(batch)
                    squared, coords = node_squared_errors(prediction.to(dtype), batch)
                    keep = real[start : start + optim.batch_size]
                    if not keep.all():
                        weight = torch.as_tensor(keep, dtype=dtype, device=device)[batch.node_graph]
                        squared, coords = squared * weight, coords * weight
                    sse, count = squared.sum(), coords.sum()
                    # DDP averages gradients over ranks: dividing by the coordinates of all ranks'
                    # batches (times W) makes the step that of one process with the global batch,
                    # whatever the system sizes on each rank.
                    total = all_reduce_sum(count.detach(), context) if context.enabled else count
                    loss = sse * context.world_size / total.clamp_min(1.0)
                    optimizer.zero_grad(set_to_none=True)
                    backward(loss, optimizer, scaler)
                    if optim.clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), optim.clip)
                    optimizer_step(optimizer, scaler)
                    if average is not None:
                        average.update()
                    running += torch.stack([sse.detach(), count]).double()
                    state.batch_in_epoch = done_before + index + 1
                    state.windows_done = min(state.windows_done + per_step, len(order))
                    progress.advance()
                    last_step = index + 1 == len(starts)
                    if _stop_requested(stop, device, context) and not last_step:
                        state.partial_sums = all_reduce_sum(running, context).tolist()
                        checkpoint(run_dir / LAST)
                        raise _interrupted(
                            stop, run_dir, epoch, state.batch_in_epoch, done_before + len(starts)
                        )
            totals = all_reduce_sum(running, context).tolist()
            train_mse = totals[0] / totals[1] if totals[1] else float("nan")
            if not math.isfinite(train_mse) and not guard.can_roll_back(run_dir / BEST):
                raise DivergenceError(
                    f"{run_dir}: training diverged (loss {train_mse}) in epoch {epoch}; "
                    "lower optim.lr or set optim.clip"
                )
            validated = validation_due(epoch, optim)
            val_mse: float | None = None
            if validated:
                with average.swapped_in() if average is not None else nullcontext():
                    val_mse = evaluate_errors(
                        {"model": model},
                        dataset,
                        val_ids,
                        n_systems,
                        batch_size=optim.batch_size,
                        device=device,
                        dtype=dtype,
                        context=context,
                    )["model"].mse
            lr = optimizer.param_groups[0]["lr"]
            event = divergence_action(
                guard, state, epoch, train_mse, val_mse, run_dir / BEST, context.is_main,
                (model, optimizer, scheduler, average, TRAINING_STATE),
            )  # fmt: skip
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if val_mse is not None and not event:
                    scheduler.step(val_mse)
            elif scheduler is not None:
                scheduler.step()
            improved = val_mse is not None and val_mse < state.best_val
            row = {
                "epoch": epoch,
                "train_mse": train_mse,
                "val_mse": val_mse,
                "lr": lr,
                "seconds": round(time.perf_counter() - started, 3),
                "validated": validated,
                "event": event,
            }
            state.history.append(row)
            state.epoch, state.batch_in_epoch, state.partial_sums = epoch, 0, [0.0, 0.0]
            state.windows_done = 0
            if improved:
                state.best_val, state.best_epoch, state.bad_epochs = val_mse, epoch, 0
            elif validated:
                state.bad_epochs += 1  # early stopping counts validations, not epochs
            patience = optim.early_stopping_patience
            stopped_early = patience is not None and state.bad_epochs >= patience
            state.finished = state.finished or stopped_early or epoch >= optim.epochs
            if improved:
                checkpoint(run_dir / BEST)
            checkpoint(run_dir / LAST)
            if context.is_main:
                write_metrics_csv(state.history, run_dir / METRICS)
            validations = "validation" if patience == 1 else "validations"
            progress.log(
                f"epoch {epoch}/{optim.epochs} train_mse {format_mse(train_mse)} "
                f"val_mse {'-' if val_mse is None else format_mse(val_mse)} lr {lr:.3g} "
                f"{row['seconds']:.1f}s"
                + (" *" if improved else "")
                + (
                    f" (early stop: {patience} {validations} without improvement)"
                    if stopped_early
                    else ""
                )
            )
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
            if not state.finished and _stop_requested(stop, device, context):
                raise _interrupted(stop, run_dir, epoch, 0, 0)
    return FitResult(
        epochs_completed=state.epoch,
        best_val_mse=state.best_val,
        best_epoch=state.best_epoch,
        stopped_early=state.finished and state.epoch < optim.epochs,
        history=state.history,
    )


def validation_due(epoch: int, optim: OptimSection) -> bool:
    """Whether epoch ``epoch`` (1-based) ends with a validation: every ``val_every``-th and the last."""
    return epoch % optim.val_every == 0 or epoch >= optim.epochs


def _still_finished(state: FitState, optim: OptimSection) -> bool:
    """Whether a resumed run has nothing left to do under the (possibly larger) epoch budget.

    A run that ended because it reached its epochs continues when ``optim.epochs`` grew; one that
    stopped early stays stopped unless ``optim.early_stopping_patience`` grew past its count.
    """
    patience = optim.early_stopping_patience
    return state.epoch >= optim.epochs or (patience is not None and state.bad_epochs >= patience)


def extend_schedule(scheduler: Any, optim: OptimSection, epochs_done: int) -> None:
    """Stretch a cosine schedule restored from a checkpoint to a grown ``optim.epochs``.

    The restored scheduler still has the old ``T_max``; the learning rate is set to the cosine's
    closed form ``lr0 (1 + cos(pi e / T)) / 2`` at the epochs done with the new T, from which
    torch's recursive update continues the new curve (SGDR-like restart when the old one hit 0).
    """
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        return
    if scheduler.T_max == optim.epochs:
        return
    scheduler.T_max = optim.epochs
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
        lr = (
            scheduler.eta_min
            + (base - scheduler.eta_min) * (1 + math.cos(math.pi * epochs_done / optim.epochs)) / 2
        )
        group["lr"] = lr
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def _stop_requested(stop: StopFlag, device: torch.device, context: DistContext) -> bool:
    """Whether any rank got a stop signal; every rank then records the same signal (the first
    of STOP_SIGNALS that some rank got), so all stop with one message and exit code."""
    if not context.enabled:
        return stop.requested
    names = [sig.name for sig in STOP_SIGNALS]
    mine = torch.zeros(len(names), dtype=torch.float64, device=device)
    if stop.signal_name in names:
        mine[names.index(stop.signal_name)] = 1.0
    elif stop.requested:  # requested by code under another name: a plain stop (exit 75)
        mine[0] = 1.0
    seen = all_reduce_sum(mine, context).cpu().tolist()
    if not any(seen):
        return False
    if not stop.requested:
        stop.request(names[next(i for i, n in enumerate(seen) if n)])
    return True


def _interrupted(stop: StopFlag, run_dir: Path, epoch: int, done: int, total: int) -> Interrupted:
    where = f"in epoch {epoch} after batch {done} of {total}" if total else f"after epoch {epoch}"
    return Interrupted(
        f"{run_dir}: stopped by {stop.signal_name or 'a stop signal'} {where}; "
        f"checkpoint {run_dir / LAST} written",
        exit_code=130 if stop.signal_name == "SIGINT" else Interrupted.exit_code,
    )


def _checkpoint_dict(
    model: ForecastModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: FitState,
    metadata: dict[str, Any],
    average: WeightAverage | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    raw = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights: dict[str, Any] = {"model_state": raw}
    if average is not None:
        # model_state is what evaluate/predict load: the average (integer buffers as trained).
        weights = {
            "model_state": {**raw, **average.state_dict()},
            TRAINING_STATE: raw,
            "ema_updates": average.updates,
        }
    return {
        "format": FORMAT,
        "model_config": dict(model.config),
        **weights,
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "windows_done": state.windows_done,
        "grad_scaler_state": scaler.state_dict() if scaler is not None else None,
        "partial_sums": list(state.partial_sums),
        "best_val": state.best_val,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "finished": state.finished,
        "history": [dict(row) for row in state.history],
        "rollbacks": state.rollbacks,
        "rng": capture_rng(),
        **metadata,
    }
