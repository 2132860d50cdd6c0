"""The start-of-run block `train` prints on stderr, and the window/split line of evaluate/predict.

Why: every choice "auto" makes (graph, window, split, batch, node inputs) decides what a number
means; a user must see them before epoch 1, not find them later in config.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.train.config import TrainConfig
from dynforecast.train.distributed import DistContext
from dynforecast.train.threads import ThreadChoice

#: Windows sampled to measure the graph's mean in-degree (one batch; radius graphs vary).
DEGREE_SAMPLE = 64


def device_line(device: torch.device, threads: ThreadChoice | None = None) -> str:
    """ "cpu, 2 threads" or "cuda:0 (NVIDIA H200), 16 threads"; with ``threads``, the count
    torch uses followed by the limit it came from: "cpu, 2 threads (CPU affinity)"."""
    name = str(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = f"{name} ({torch.cuda.get_device_name(index)})"
    count = torch.get_num_threads()
    source = f" ({threads.source})" if threads is not None else ""
    return f"{name}, {count} thread{'' if count == 1 else 's'}{source}"


def kernel_line(device: torch.device, config: TrainConfig, kernels: Sequence[str]) -> str | None:
    """Which fused CPU kernels the model's layers run, or why none run; None off the CPU or for
    models without kernels. E.g. "fused C: edge MLP, edge geometry, temporal attention (built
    with /usr/bin/cc -march=native -fopenmp)"."""
    from dynforecast.ops.fused_edge import fused_edge_available
    from dynforecast.ops.fused_geometry import fused_geometry_available
    from dynforecast.ops.fused_temporal import fused_temporal_available

    if device.type != "cpu" or not kernels:
        return None
    if config.optim.compile:
        return "torch ops, compiled by torch.compile (--compile)"
    if config.optim.precision != "fp32":
        return f"torch ops (precision {config.optim.precision} runs under autocast)"
    checks = {
        "edge MLP": fused_edge_available,
        "edge geometry": fused_geometry_available,
        "temporal attention": fused_temporal_available,
    }
    # Built here, at the start of the run (with a notice), rather than silently in epoch 1.
    results = {name: checks[name](torch.float32) for name in kernels}
    built = [name for name, (available, _) in results.items() if available]
    missing = {name: reason for name, (available, reason) in results.items() if not available}
    if not built:
        return f"torch ops ({next(iter(missing.values()))})"
    # Kernels can come from different builds (one without OpenMP, say): group them by build.
    by_build: dict[str, list[str]] = {}
    for name in built:
        by_build.setdefault(results[name][1], []).append(name)
    line = "fused C: " + "; ".join(f"{', '.join(names)} ({how})" for how, names in by_build.items())
    if missing:
        line += "; torch ops: " + "; ".join(f"{name} ({why})" for name, why in missing.items())
    return line


def window_line(spec: WindowSpec, step: float, time_unit: str) -> str:
    """The window in frames and time units, e.g. "T=10 frames 5 apart, target 5 frames after
    the last (past 45 ps, horizon 5 ps)"; ``step`` is the time between stored frames (0 when
    unknown), in ``time_unit``."""
    unit = "" if time_unit == "1" else f" {time_unit}"
    text = (
        f"T={spec.past_frames} frame{'s' if spec.past_frames > 1 else ''}"
        f"{f' {spec.spacing} apart' if spec.past_frames > 1 else ''}, target "
        f"{spec.target_offset} frame{'s' if spec.target_offset > 1 else ''} after the last"
    )
    if spec.anchor_frame is not None:
        text += f", last past frame {spec.anchor_frame}"
    if step > 0:
        past = spec.last_past_offset * step
        text += f" (past {past:.4g}{unit}, horizon {spec.target_offset * step:.4g}{unit})"
    return text


def mean_in_degree(dataset: WindowDataset, window_ids: np.ndarray) -> float:
    """Edges per node over up to `DEGREE_SAMPLE` evenly spaced windows."""
    if len(window_ids) == 0:
        return 0.0
    picks = window_ids[np.linspace(0, len(window_ids) - 1, DEGREE_SAMPLE).astype(np.int64)]
    batch = dataset.batch(np.unique(picks))
    return float(batch.edge_src.numel()) / max(int(batch.positions.shape[0]), 1)


def split_line(config: TrainConfig, splits: Mapping[str, np.ndarray]) -> str:
    split = config.data.split
    counts = ", ".join(f"{name} {len(ids)}" for name, ids in splits.items())
    fractions = "" if split.fractions is None else f" {'/'.join(f'{f:g}' for f in split.fractions)}"
    return f"{split.mode}{fractions}: {counts} windows"


def start_block(
    *,
    device: torch.device,
    config: TrainConfig,
    n_parameters: int,
    dataset: WindowDataset,
    splits: Mapping[str, np.ndarray],
    time_unit: str,
    baselines: Mapping[str, float | None],
    mse_unit: str,
    notes: Sequence[str],
    threads: ThreadChoice | None = None,
    context: DistContext | None = None,
    kernels: Sequence[str] = (),
) -> list[str]:
    """The lines of the start-of-run block (without a trailing newline). ``threads`` and
    ``context`` add where the thread count came from and, under DDP, the processes and the
    global batch (`dynforecast.train.parallel`); ``kernels`` (the model's `cpu_kernels`) a line
    naming the fused CPU kernels that run."""
    from dynforecast.train.parallel import batch_line, processes_line

    context = context or DistContext()
    graph = config.data.graph
    kind = graph.kind + (f" + {graph.hops} hops" if graph.kind == "bonds" else "")
    if graph.kind == "radius":
        kind += f" < {graph.cutoff:.4g}"
    degree = mean_in_degree(dataset, splits["train"])
    shown = ", ".join(
        f"{name} {'n/a' if value is None else format(value, '.6g')}"
        for name, value in baselines.items()
    )
    processes = processes_line(context, device)
    kernels_text = kernel_line(device, config, kernels)
    lines = [
        f"device     {device_line(device, threads)}, precision {config.optim.precision}",
        *([f"processes  {processes}"] if processes else []),
        f"model      {config.model.name}, {n_parameters:,} parameters"
        + (f" (protocol {config.protocol})" if config.protocol else ""),
        *([f"kernels    {kernels_text}"] if kernels_text else []),
        f"frames     {dataset.frames_description}",
        f"window     {window_line(dataset.spec, dataset.time_step, time_unit)}",
        f"graph      {kind}, mean in-degree {degree:.3g}",
        f"split      {split_line(config, splits)}",
        f"batch      {batch_line(int(config.optim.batch_size or 0), context)}",
        f"baselines  val MSE [{mse_unit}]: {shown}",
    ]
    lines.extend(f"  auto     {note}" for note in notes)
    return lines
