"""`dynforecast train` as a library call: data file + configuration -> a run directory.

A run directory holds:

    config.json   the resolved configuration, seed, versions, data file and its SHA-256,
                  data signature, the baselines' validation MSE (written once, before the
                  first epoch); `--config` accepts it as it is
    metrics.csv   one row per epoch: epoch, train_mse, val_mse (empty when the epoch ended
                  without validation), lr, seconds, validated
    best.pt       the checkpoint with the lowest validation MSE so far
    last.pt       the latest checkpoint (end of an epoch, or the step a stop signal arrived)
    .lock         held by the live training (`dynforecast.train.lock`)

Without ``--out`` the run directory is ``runs/<model>-<digest>``, the digest of the data file's
checksum and the resolved configuration except the keys a resume may change, so running the same
command again finds the same directory. Running it again resumes from last.pt: the same epoch,
batch, optimiser, scheduler and RNG states; a larger ``optim.epochs`` continues a finished run.
Resuming refuses another model, a different configuration (only the `RESUMABLE_CHANGES` may
differ) and a data file with a different checksum; a stop message names the exact command.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynforecast import console
from dynforecast.console import counted
from dynforecast.data.loading import load_systems
from dynforecast.errors import CompatibilityError, Interrupted, OutputError, UsageError
from dynforecast.io.atomic import atomic_output, check_directory_creatable, create_directory
from dynforecast.io.checksum import file_checksum
from dynforecast.train import setup
from dynforecast.train.checkpoint import load_checkpoint, versions
from dynforecast.train.config import TrainConfig, config_from_dict
from dynforecast.train.distributed import (
    any_rank,
    barrier,
    close,
    init_from_env,
    is_peer_failure,
    local_device,
    peer_failure,
)
from dynforecast.train.init_scale import resolve_initial_scales
from dynforecast.train.launch import batch_script_note
from dynforecast.train.lock import RunLock
from dynforecast.train.loop import LAST, EpochHook, fit
from dynforecast.train.metrics import evaluate_errors
from dynforecast.train.parallel import prepare_threads
from dynforecast.train.precision import choose_precision
from dynforecast.train.threads import ThreadChoice, usable_cpus
from dynforecast.train.trained import run_files

CONFIG_FILE = "config.json"
#: Keys a resumed run may change.
RESUMABLE_CHANGES = (
    "optim.epochs",
    "optim.early_stopping_patience",
    "device",
    "optim.compile",
    "optim.precision",
    "optim.amp",
    # per process: a run resumed under another number of processes keeps its --batch-size
    "optim.batch_size",
    "optim.workers",  # where batches are built, not what they hold
)
#: config.json key of the baselines' validation MSE (`dynforecast report` draws them).
BASELINES_KEY = "baselines_val_mse"


@dataclass(frozen=True)
class TrainSummary:
    """What `train` reports: where the run is and how good its best checkpoint is."""

    run_dir: Path
    model: str
    epochs_completed: int
    best_epoch: int
    best_val_mse: float
    baselines_val_mse: dict[str, float | None]
    unit: str
    resumed_from_epoch: int | None
    seconds: float
    #: False on DDP ranks other than 0, which print no result line.
    is_main: bool = True

    def line(self) -> str:
        """One result line for stdout."""
        baselines = ", ".join(
            f"{name} {'n/a' if value is None else format(value, '.6g')}"
            for name, value in self.baselines_val_mse.items()
        )
        return (
            f"{self.run_dir}: {self.model}, {self.epochs_completed} "
            f"epoch{'' if self.epochs_completed == 1 else 's'}, best val MSE "
            f"{self.best_val_mse:.6g} [{self.unit}] at epoch {self.best_epoch} "
            f"(baselines on val: {baselines}); {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model": self.model,
            "epochs": self.epochs_completed,
            "best_epoch": self.best_epoch,
            "best_val_mse": self.best_val_mse,
            "baselines": self.baselines_val_mse,
            "unit": self.unit,
            "resumed_from_epoch": self.resumed_from_epoch,
            "seconds": round(self.seconds, 2),
        }


def run_digest(config: TrainConfig, data_checksum: str, leave_out: Sequence[str] = ()) -> str:
    """12 hex digits of SHA-256 over the data file's checksum and the configuration's keys.

    Keys in `RESUMABLE_CHANGES` and ``leave_out`` (dotted names) are not covered, so that a
    rerun that changes only them finds the same digest.
    """
    skipped = set(RESUMABLE_CHANGES) | set(leave_out)
    flat = {k: v for k, v in _flatten(config.to_dict()).items() if k not in skipped}
    text = json.dumps({"data": data_checksum, "config": flat}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_run_dir(config: TrainConfig, data_checksum: str) -> Path:
    """runs/<model>-<digest> in the working directory, the same for the same data and configuration.

    The digest (`run_digest`) covers the data file's checksum and every resolved key except
    `RESUMABLE_CHANGES`, so that a rerun with a larger ``--epochs`` or another device continues
    the run, and any other change starts a new one.
    """
    return Path("runs") / f"{config.model.name}-{run_digest(config, data_checksum)}"


def resume_command(argv: Sequence[str], run_dir: Path) -> str:
    """The shell command that resumes: ``dynforecast`` + ``argv`` with ``--out run_dir``.

    ``argv`` is the command line after the program name (``["train", "data.h5", ...]``); an
    existing ``--out X`` / ``--out=X`` is replaced, else ``--out run_dir`` is added.
    """
    words = list(argv)
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "--out":
            skip = True
            continue
        if word.startswith("--out="):
            continue
        out.append(word)
    return shlex.join(["dynforecast", *out, "--out", str(run_dir)])


def seed_everything(seed: int) -> None:
    """Seed every RNG a model's initialisation or a library might draw from."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code draws from the legacy global RNG
    torch.manual_seed(seed)


def naming_resume(stop: Interrupted, command: Sequence[str], out: Path) -> Interrupted:
    """``stop`` with the command that resumes it (`resume_command` of ``command`` and ``out``)."""
    return Interrupted(f"{stop}; resume with: {resume_command(command, out)}", stop.exit_code)


def train(
    data: Path | None,
    config: TrainConfig,
    run_dir: Path | None = None,
    *,
    on_epoch_end: EpochHook | None = None,
    command: Sequence[str] | None = None,
    threads: int | None = None,
) -> TrainSummary:
    """Train (or resume) a run; see the module docstring for what the run directory holds.

    ``command`` (the CLI's argv after the program name) makes a stop message name the exact
    resume command. Raises OutputError if a live process holds the run directory, UsageError for
    another model or configuration in it, CompatibilityError for other data, `Interrupted` on a
    stop signal or Ctrl-C (after writing last.pt), DistributedError when another rank of a DDP
    run ended or stopped answering. ``threads`` overrides the CPU thread count
    (`dynforecast.train.threads`).
    """
    started = time.perf_counter()
    device = setup.resolve_device(config.device)
    choose_precision(config.optim.precision, config.optim.amp, device, config.dtype)
    context = init_from_env(device)
    quiet = console.stderr.quiet
    if not context.is_main:  # one log per run: rank 0's (errors are still printed by every rank)
        console.set_quiet(True)
    try:
        choice, previous_threads = prepare_threads(context, threads)
    except BaseException:
        close(context)
        console.set_quiet(quiet)
        raise
    try:
        return _train_in_group(
            data, config, run_dir, context, device, started, on_epoch_end, command, choice
        )
    except (RuntimeError, ValueError) as exc:  # a collective failed: a peer ended or hung
        if context.enabled and is_peer_failure(exc):
            raise peer_failure(exc, context) from None
        raise
    finally:
        close(context)
        console.set_quiet(quiet)
        torch.set_num_threads(previous_threads)


def _train_in_group(
    data: Path | None,
    config: TrainConfig,
    run_dir: Path | None,
    context: Any,
    device: torch.device,
    started: float,
    on_epoch_end: EpochHook | None,
    command: Sequence[str] | None,
    threads: ThreadChoice,
) -> TrainSummary:
    """`train` once this process is in its process group (or alone), ``threads`` applied."""
    device = local_device(device, context)
    note = batch_script_note()
    if note is not None:
        console.log(note)
    if run_dir is not None and context.is_main:  # before minutes of loading and setup
        check_directory_creatable(run_dir)
    data_path, builtin = setup.data_path_or_builtin(data)
    if run_dir is not None:
        _check_data_is_not_a_run_file(data_path, run_dir)
    systems = load_systems(data_path, config.data.systems)
    notes: list[str] = []
    resolved = setup.resolve_config(config, systems, builtin=builtin, notes=notes)
    dataset = setup.build_dataset(systems, resolved)
    splits = setup.build_splits(dataset, resolved)
    if len(splits["train"]) == 0 or len(splits["val"]) == 0:
        raise UsageError(
            f"configuration key 'data.split.fractions': training needs train and validation "
            f"windows (got {len(splits['train'])} and {len(splits['val'])}); give both a "
            "positive fraction"
        )
    setup.check_recorded_split(systems, dataset, splits, resolved)
    resolved = setup.resolve_batch_size(
        resolved, len(splits["train"]), notes, world_size=context.world_size
    )
    resolved = resolve_initial_scales(resolved, dataset, splits["train"], notes)
    cpus = usable_cpus(ranks_on_node=context.local_world_size, launcher=context.launcher)
    resolved = setup.resolve_workers(
        resolved, dataset, notes, threads=threads.count, usable_cpus=cpus.count
    )
    resolved = setup.resolve_precision(resolved, device)
    seed_everything(resolved.seed)
    model = setup.build_model(resolved).to(dtype=getattr(torch, resolved.dtype))
    resolved = setup.with_model_config(resolved, model)
    checksum = file_checksum(data_path)
    run_dir = run_dir or default_run_dir(resolved, checksum)
    given = config.to_dict()
    lock = RunLock(run_dir, enabled=context.is_main)
    refused: OutputError | None = None
    try:
        lock.__enter__()
    except OutputError as exc:
        refused = exc
    if any_rank(refused is not None, device, context):  # every rank stops, none waits
        raise refused or OutputError(f"{run_dir}: in use by another training (seen by rank 0)")
    try:
        return _train_locked(
            run_dir, resolved, systems, dataset, splits, model, context, device,
            data_path, checksum, started, on_epoch_end, given, notes, threads,
        )  # fmt: skip
    except Interrupted as stop:
        if command is None:
            raise
        raise naming_resume(stop, command, run_dir) from None
    except (RuntimeError, ValueError) as exc:  # a collective failed: name what a rerun resumes
        if context.enabled and is_peer_failure(exc):
            raise peer_failure(exc, context, run_dir) from None
        raise
    finally:
        lock.__exit__(None, None, None)


def _check_data_is_not_a_run_file(data: Path, run_dir: Path) -> None:
    """OutputError when the data file is one of the files the run writes (`RUN_FILES` in
    ``run_dir``: best.pt, last.pt, metrics.csv, config.json, .lock, under any name or link):
    training would replace (or truncate, for the lock) the data it reads. Also when ``run_dir``
    holds a config.json that is not a dynforecast run's: training would replace the user's file."""
    for target in run_files(run_dir):
        if target.exists() and os.path.samefile(target, data):
            raise OutputError(
                f"{data}: the data file is the run's {target.name} ({target}); give the run "
                "another directory (--out) or move the data"
            )
    config = run_dir / CONFIG_FILE
    if config.is_file() and not _is_run_record(config):
        raise OutputError(
            f"{config}: not a dynforecast run's config.json; training would replace it: give "
            "the run another directory (--out)"
        )


def _is_run_record(path: Path) -> bool:
    """Whether ``path`` is a config.json that a dynforecast run wrote (it has train_config)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("train_config"), dict)


def resolve_for_data(data: Path | None, config: TrainConfig) -> TrainConfig:
    """The configuration `train` would run with on ``data``: every "auto" resolved and every
    model hyperparameter filled in (what ``train --print-config`` prints)."""
    data_path, builtin = setup.data_path_or_builtin(data)
    systems = load_systems(data_path, config.data.systems)
    resolved = setup.resolve_config(config, systems, builtin=builtin)
    dataset = setup.build_dataset(systems, resolved)
    splits = setup.build_splits(dataset, resolved)
    resolved = setup.resolve_batch_size(resolved, len(splits["train"]), [])
    resolved = resolve_initial_scales(resolved, dataset, splits["train"], [])
    seed_everything(resolved.seed)
    return setup.with_model_config(resolved, setup.build_model(resolved))


def _train_locked(
    run_dir: Path,
    resolved: TrainConfig,
    systems: Sequence[Any],
    dataset: Any,
    splits: dict[str, np.ndarray],
    model: Any,
    context: Any,
    device: torch.device,
    data_path: Path,
    checksum: str,
    started: float,
    on_epoch_end: EpochHook | None,
    given: dict[str, Any],
    notes: Sequence[str] = (),
    threads: ThreadChoice | None = None,
) -> TrainSummary:
    """The part of `train` that runs while the run directory's lock is held."""
    resume = None
    if (run_dir / LAST).is_file():
        resume = load_checkpoint(run_dir / LAST)
        _check_resumable(resume, resolved, checksum, run_dir, data_path)
        if context.is_main:
            console.log(
                f"resuming {run_dir / LAST}: {counted(resume['epoch'], 'epoch')} done"
                + (
                    f", {counted(resume['batch_in_epoch'], 'batch')} into the next"
                    if resume["batch_in_epoch"]
                    else ""
                )
                + _nothing_left(resume, resolved)
            )
        _log_batch_change(resume, resolved, context)
    elif context.is_main:
        console.log(f"run directory {run_dir}")
    signature = setup.data_signature(
        systems, dataset, velocities_used=setup.uses_velocities(model, dataset, splits["train"])
    )
    dtype = getattr(torch, resolved.dtype)
    baselines = evaluate_errors(
        setup.baseline_models(dataset),
        dataset,
        splits["val"],
        len(systems),
        batch_size=resolved.optim.batch_size,
        device=device,
        dtype=dtype,
        context=context,
    )
    baselines_mse = {
        name: baselines[name].mse if name in baselines else None for name in setup.BASELINES
    }
    if context.is_main:
        from dynforecast.train.summary import start_block

        for line in start_block(
            device=device,
            config=resolved,
            n_parameters=sum(p.numel() for p in model.parameters()),
            dataset=dataset,
            splits=splits,
            time_unit=systems[0].time_unit,
            baselines=baselines_mse,
            mse_unit=setup.squared_unit(signature.length_unit),
            notes=notes,
            threads=threads,
            context=context,
            kernels=model.cpu_kernels(),
        ):
            console.log(line)
    metadata = {
        "train_config": setup.recorded_config(resolved),
        "data_signature": signature.to_dict(),
        "data_checksum": checksum,
        "data_path": str(Path(data_path).resolve()),  # evaluate without DATA finds it from any cwd
        "versions": versions(),
        BASELINES_KEY: baselines_mse,  # the divergence guard's "stay" (train/divergence.py)
    }
    if context.is_main:
        create_directory(run_dir)
        if resume is None:
            _write_json(
                run_dir / CONFIG_FILE,
                {
                    **metadata,
                    "seed": resolved.seed,
                    BASELINES_KEY: baselines_mse,
                    "given_config": given,
                },
            )
        else:
            _record_resumable_changes(run_dir / CONFIG_FILE, resolved, given)
    barrier(context)
    result = fit(
        model,
        dataset,
        splits,
        resolved,
        run_dir,
        n_systems=len(systems),
        device=device,
        metadata=metadata,
        resume=resume,
        context=context,
        on_epoch_end=on_epoch_end,
    )
    return TrainSummary(
        run_dir=run_dir,
        model=resolved.model.name,
        epochs_completed=result.epochs_completed,
        best_epoch=result.best_epoch,
        best_val_mse=result.best_val_mse,
        baselines_val_mse=baselines_mse,
        unit=setup.squared_unit(signature.length_unit),
        resumed_from_epoch=int(resume["epoch"]) if resume is not None else None,
        seconds=time.perf_counter() - started,
        is_main=context.is_main,
    )


def _log_batch_change(resume: dict[str, Any], config: TrainConfig, context: Any) -> None:
    """Say so when a resumed run steps on another global batch than the one that wrote the
    checkpoint (another --batch-size, or the same one under another number of processes)."""
    saved = config_from_dict(resume["train_config"]).optim.batch_size
    before = resume.get("global_batch", saved)
    now = int(config.optim.batch_size or 0) * context.world_size
    if context.is_main and before is not None and int(before) != now:
        console.log(
            f"note: global batch {now} ({config.optim.batch_size} per process x "
            f"{context.world_size}), was {before} when {LAST} was written"
        )


def _check_resumable(
    checkpoint: dict[str, Any], config: TrainConfig, checksum: str, run_dir: Path, data: Path
) -> None:
    saved_config = config_from_dict(checkpoint["train_config"])
    if saved_config.model.name != config.model.name:
        raise UsageError(
            f"{run_dir}: holds a run of model {saved_config.model.name!r}, not "
            f"{config.model.name!r}; give another --out for a new {config.model.name} run"
        )
    saved = _flatten(saved_config.to_dict())
    wanted = _flatten(config.to_dict())
    differing = sorted(
        key
        for key in set(saved) | set(wanted)
        if saved.get(key) != wanted.get(key) and key not in RESUMABLE_CHANGES
    )
    if differing:
        key = differing[0]
        raise UsageError(
            f"{run_dir}: holds a run with {key}={saved.get(key)!r}, not {wanted.get(key)!r}; "
            "use the same configuration to resume, or another --out for a new run"
        )
    if checkpoint["data_checksum"] != checksum:
        raise CompatibilityError(
            f"{data}: differs from the data file the run in {run_dir} was trained on "
            f"({checkpoint['data_path']}, checksum {checkpoint['data_checksum'][:12]}...)"
        )


def _nothing_left(checkpoint: dict[str, Any], config: TrainConfig) -> str:
    """The note a resume adds when the run has nothing left to train."""
    done, planned = int(checkpoint["epoch"]), config.optim.epochs
    patience = config.optim.early_stopping_patience
    if done >= planned:
        return f"; nothing to train (give --epochs above {done} to continue)"
    if patience is not None and int(checkpoint["bad_epochs"]) >= patience:
        return (
            f"; nothing to train: it stopped early after {counted(patience, 'validation')} "
            "without improvement (raise optim.early_stopping_patience to continue)"
        )
    return ""


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and not (prefix == "" and key == "model"):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, dict):
            out.update({f"model.{k}": v for k, v in value.items()})
        else:
            out[prefix + key] = value
    return out


def _record_resumable_changes(path: Path, resolved: TrainConfig, given: dict[str, Any]) -> None:
    """Rewrite config.json's resumable keys (`RESUMABLE_CHANGES`) with the resumed run's values.

    A resume with a larger ``--epochs`` (or another patience or device) must leave a config.json
    that describes the run as it now is: `dynforecast report` reads its planned epochs from it,
    and ``--config config.json`` must repeat the run actually done. Other keys are unchanged (a
    resume with other values is refused before this point).
    """
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # an unreadable config.json is reported by `report`; training goes on
    for section, now in (("train_config", resolved.to_dict()), ("given_config", given)):
        recorded = meta.get(section)
        if not isinstance(recorded, dict):
            continue
        for key in RESUMABLE_CHANGES:
            *parents, leaf = key.split(".")
            source, target = now, recorded
            for part in parents:
                source = source.get(part, {})
                target = target.setdefault(part, {}) if isinstance(target, dict) else None
            if isinstance(target, dict) and isinstance(source, dict) and leaf in source:
                target[leaf] = source[leaf]
    _write_json(path, meta)


def _write_json(path: Path, values: dict[str, Any]) -> None:
    with atomic_output(path, overwrite=True) as scratch:
        scratch.write_text(json.dumps(values, indent=2) + "\n")
