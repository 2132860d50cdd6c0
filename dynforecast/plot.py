"""Error-versus-horizon plots of a rollout evaluation (matplotlib, Agg backend, no display).

One figure: median MSE per step on a log scale for the model (or ensemble mean), the baselines
stay / constant velocity / linear, the band between the best and worst ensemble member, the
trust threshold (dotted) and the model's trust horizon (dashed vertical). The x axis is the
forecast time in the data's time unit (steps on the top axis).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynforecast.console import counted
from dynforecast.errors import UsageError
from dynforecast.io.atomic import atomic_output, check_output_path

#: Colours and labels of the curves; the JSON keys are the report's model names.
STYLE = {
    "model": ("C0", "-"),
    "stay": ("C7", ":"),
    "constant_velocity": ("C1", "--"),
    "linear": ("C2", "-."),
}


def check_plot_path(path: Path, *, overwrite: bool) -> None:
    """Refuse a plot path that is not .png or cannot be written, before any work."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot {path}: expected a .png file name")
    check_output_path(path, overwrite=overwrite)


def plot_rollout(report: dict[str, Any], path: Path, *, overwrite: bool = False) -> list[str]:
    """Draw ``report`` (`dynforecast.evaluate_rollout.evaluate_rollout`) to ``path`` atomically.

    Returns the legend's labels in drawing order (band, curves, threshold, trust horizon).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_plot_path(path, overwrite=overwrite)
    steps = np.arange(1, report["steps"] + 1)
    time = steps * report["step_time"]
    time_unit = report["time_unit"]
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    metrics = report["metrics"]
    members = [k for k in metrics if k.startswith("member_")]
    if members:
        curves = np.array([_values(metrics[k]["median_mse"]) for k in members])
        axes.fill_between(
            time,
            np.nanmin(curves, axis=0),
            np.nanmax(curves, axis=0),
            color="C0",
            alpha=0.2,
            label=f"{len(members)} members (range)",
        )
    for name, (colour, line) in STYLE.items():
        if name not in metrics:
            continue
        label = (
            f"{report['model']}" + (" ensemble mean" if members else "")
            if name == "model"
            else name.replace("_", " ")
        )
        axes.plot(time, _values(metrics[name]["median_mse"]), line, color=colour, label=label)
    axes.axhline(report["threshold"], color="k", linestyle=":", linewidth=0.8, label="threshold")
    horizon = report["trust_horizon"]["model"]
    if horizon["steps"] > 0:
        axes.axvline(
            horizon["time"],
            color="C3",
            linestyle="--",
            linewidth=1.0,
            label=f"trust horizon {counted(horizon['steps'], 'step')}",
        )
    axes.set_yscale("log")
    axes.set_xlabel(f"forecast time ({time_unit if time_unit != '1' else 'dimensionless'})")
    unit = report["unit"]
    axes.set_ylabel("median MSE" + (f" ({unit})" if unit != "1" else " (dimensionless)"))
    figure.suptitle(
        f"{report['model']}: {report['starts']} rollouts of the {report['split']} split",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    top = axes.secondary_xaxis(
        "top",
        functions=(lambda t: t / report["step_time"], lambda k: k * report["step_time"]),
    )
    top.set_xlabel("steps")
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    figure.tight_layout()
    with atomic_output(path, overwrite=overwrite) as scratch:
        figure.savefig(scratch, format="png")
    plt.close(figure)
    return labels


def _values(values: list[float | None]) -> np.ndarray:
    """JSON nulls (stopped rollouts, infinities) as NaN, which matplotlib leaves out."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
