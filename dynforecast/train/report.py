"""`dynforecast report RUN`: what a run directory holds, as text, JSON and a plot of its curves.

Everything comes from the run's own files (config.json, metrics.csv, last.pt / best.pt), so a
report needs neither the data nor a GPU. The summary names the data (file and checksum), the
model and its parameter count, the epochs done and planned, the best epoch and its validation
MSE beside the baselines', the time spent, the state (finished, stopped early, interrupted) and
the configuration's differences from the defaults (of the configuration as given, so values
that "auto" resolved are not listed as changes; runs without that record show the resolved one). `plot_curves` draws train and validation MSE
per epoch (validation only where the epoch was validated) with the baselines as horizontal
lines, with matplotlib's Agg canvas (no display needed, nothing global changed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynforecast.errors import InputError
from dynforecast.io.atomic import atomic_output

#: config.json key of the configuration as given (before "auto" was resolved), if recorded.
GIVEN_KEY = "given_config"
CONFIG_FILE, METRICS_FILE, BEST_FILE, LAST_FILE = "config.json", "metrics.csv", "best.pt", "last.pt"


@dataclass(frozen=True)
class EpochRow:
    """One metrics.csv row; ``val_mse`` is None for an epoch that ended without validation."""

    epoch: int
    train_mse: float
    val_mse: float | None
    lr: float
    seconds: float


@dataclass(frozen=True)
class RunReport:
    """The summary of one run directory (see the module docstring); `to_dict` is the JSON form."""

    run_dir: Path
    data_path: str
    data_checksum: str
    model: str
    parameters: int | None
    epochs_done: int
    epochs_planned: int
    state: str
    best_epoch: int | None
    best_val_mse: float | None
    unit: str
    baselines: dict[str, float | None]
    seconds: float
    changed: dict[str, dict[str, Any]]
    rows: list[EpochRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "data": self.data_path,
            "data_checksum": self.data_checksum,
            "model": self.model,
            "parameters": self.parameters,
            "epochs": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "state": self.state,
            "best_epoch": self.best_epoch,
            "best_val_mse": self.best_val_mse,
            "unit": self.unit,
            "baselines": self.baselines,
            "seconds": round(self.seconds, 2),
            "changed_from_defaults": self.changed,
        }

    def text(self) -> str:
        """The human-readable summary (several lines)."""
        best = (
            "none yet"
            if self.best_val_mse is None
            else f"{self.best_val_mse:.6g} [{self.unit}] at epoch {self.best_epoch}"
        )
        baselines = ", ".join(
            f"{name} {'n/a' if value is None else format(value, '.6g')}"
            for name, value in self.baselines.items()
        )
        parameters = "?" if self.parameters is None else f"{self.parameters:,}"
        lines = [
            f"run        {self.run_dir}",
            f"data       {self.data_path} (sha256 {self.data_checksum[:12]}...)",
            f"model      {self.model}, {parameters} parameters",
            f"epochs     {self.epochs_done} of {self.epochs_planned} ({self.state})",
            f"best val   {best}",
            f"baselines  {baselines or 'not recorded'} (val)",
            f"time       {self.seconds:.1f} s of training",
        ]
        if self.changed:
            lines.append("changed from the defaults:")
            width = max(len(key) for key in self.changed)
            for key, change in self.changed.items():
                lines.append(
                    f"  {key:<{width}} = {_show(change['value'])} (default {_show(change['default'])})"
                )
        else:
            lines.append("changed from the defaults: nothing")
        return "\n".join(lines)


def run_directory(path: Path) -> Path:
    """The run directory of ``path`` (a run directory or a checkpoint file in one)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such run directory or checkpoint")
    run_dir = path if path.is_dir() else path.parent
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(f"{path}: not a run directory (no {CONFIG_FILE} in {run_dir})")
    return run_dir


def describe_run(path: Path) -> RunReport:
    """Read a run directory (or the directory of a checkpoint); InputError if it is not one."""
    from dynforecast.train.checkpoint import load_checkpoint
    from dynforecast.train.config import config_from_dict
    from dynforecast.train.setup import squared_unit

    run_dir = run_directory(path)
    try:
        meta = json.loads((run_dir / CONFIG_FILE).read_text())
        saved = meta["train_config"]
        config = config_from_dict(saved)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{run_dir / CONFIG_FILE}: not a readable run configuration ({exc})"
        ) from None
    rows = read_rows(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else []
    state, epochs, best_epoch, best_val, parameters = "not started", 0, None, None, None
    if (run_dir / LAST_FILE).is_file():
        last = load_checkpoint(run_dir / LAST_FILE)
        epochs = int(last["epoch"])
        if epochs >= config.optim.epochs:
            state = "finished"
        elif last["finished"]:
            state = "stopped early"
        elif epochs or last["batch_in_epoch"]:
            state = "interrupted"
        if last["best_epoch"]:
            best_epoch, best_val = int(last["best_epoch"]), float(last["best_val"])
        parameters = _parameter_count(last["model_config"])
    return RunReport(
        run_dir=run_dir,
        data_path=str(meta.get("data_path", "?")),
        data_checksum=str(meta.get("data_checksum", "?")),
        model=config.model.name,
        parameters=parameters,
        epochs_done=epochs,
        epochs_planned=config.optim.epochs,
        state=state,
        best_epoch=best_epoch,
        best_val_mse=best_val,
        unit=squared_unit(str(meta.get("data_signature", {}).get("length_unit", "1"))),
        baselines=dict(meta.get("baselines_val_mse") or {}),
        seconds=sum(row.seconds for row in rows),
        changed=config_changes(meta.get(GIVEN_KEY) or saved),
        rows=rows,
    )


def read_rows(path: Path) -> list[EpochRow]:
    """metrics.csv as rows; an empty ``val_mse`` cell (epoch without validation) becomes None."""
    from dynforecast.train.metrics import read_metrics_csv

    try:
        return [
            EpochRow(
                epoch=int(row["epoch"]),
                train_mse=float(row["train_mse"]),
                val_mse=float(row["val_mse"]) if row.get("val_mse") not in (None, "") else None,
                lr=float(row["lr"]),
                seconds=float(row.get("seconds") or 0.0),
            )
            for row in read_metrics_csv(path)
        ]
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a dynforecast metrics file ({exc})") from None


def config_changes(saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{dotted key: {"value", "default"}} for every key of ``saved`` that differs from the
    defaults (model hyperparameters against the model's constructor defaults)."""
    from dynforecast.models.base import create_model
    from dynforecast.train.config import TrainConfig
    from dynforecast.train.run import _flatten

    defaults = _flatten(TrainConfig().to_dict())
    name = saved.get("model", {}).get("name")
    try:
        model_defaults = {k: v for k, v in create_model(name).config.items() if k != "name"}
    except (ValueError, TypeError):
        model_defaults = {}
    defaults.update({f"model.{k}": _plain(v) for k, v in model_defaults.items()})
    values = _flatten(saved)
    return {
        key: {"value": value, "default": defaults.get(key)}
        for key, value in values.items()
        if _plain(value) != _plain(defaults.get(key))
    }


def plot_curves(report: RunReport, output: Path, *, overwrite: bool = False) -> Path:
    """Write a PNG of `curves_figure` atomically; UsageError if ``output`` is not a .png name,
    OutputError if it exists (without ``overwrite``), is one of the run's files or cannot be
    written, InputError if the run has no epochs yet."""
    from dynforecast.io.atomic import reading_inputs
    from dynforecast.plot import check_plot_path
    from dynforecast.train.trained import run_files

    with reading_inputs(run_files(report.run_dir)):
        check_plot_path(output, overwrite=overwrite)
        figure = curves_figure(report)
        with atomic_output(output, overwrite=overwrite) as scratch:
            figure.savefig(scratch, format="png")
    return output


def curves_figure(report: RunReport) -> Any:
    """A matplotlib Figure (Agg canvas): lines labelled "train", "validation", "<baseline> (val)"
    and "best epoch"; log y axis when every value is positive."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not report.rows:
        raise InputError(f"{report.run_dir}: no epochs in {METRICS_FILE} yet; nothing to plot")
    figure = Figure(figsize=(7.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = [row.epoch for row in report.rows]
    axes.plot(epochs, [row.train_mse for row in report.rows], "o-", ms=3, label="train")
    validated = [row for row in report.rows if row.val_mse is not None]
    axes.plot(
        [row.epoch for row in validated],
        [row.val_mse for row in validated],
        "s-",
        ms=3,
        label="validation",
    )
    styles = {"stay": ":", "constant_velocity": "--"}
    for name, value in report.baselines.items():
        if value is not None and math.isfinite(value) and value > 0:
            axes.axhline(
                value, color="grey", ls=styles.get(name, "-."), lw=1, label=f"{name} (val)"
            )
    if report.best_epoch is not None:
        axes.axvline(report.best_epoch, color="black", lw=0.6, alpha=0.4, label="best epoch")
    values = [v for row in report.rows for v in (row.train_mse, row.val_mse) if v is not None]
    if values and min(values) > 0:
        axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"MSE [{report.unit}]")
    axes.set_title(f"{report.run_dir.name}: {report.model}", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _parameter_count(model_config: dict[str, Any]) -> int | None:
    """Trainable parameters of the model a checkpoint rebuilds (None if it cannot be built)."""
    from dynforecast.models.base import model_from_config

    try:
        model = model_from_config(dict(model_config))
    except (ValueError, TypeError, KeyError):
        return None
    return int(sum(p.numel() for p in model.parameters()))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _show(value: Any) -> str:
    return "none" if value is None else json.dumps(value)
