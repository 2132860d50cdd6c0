"""Same-run speed comparison of our ESTAG with the reference implementation (not in this repo).

The reference (ManlioWu/ESTAG, ``models/model.py`` ESTAG + ``models/gcl.py`` E_GCL, E_GCL_AT) is
loaded from a directory the user provides, e.g. ``--reference-dir /tmp/estag_ref`` holding
``models/model.py`` and ``models/gcl.py``; its code is never copied into dynforecast. Only the
module ``models.model`` is imported; its unused imports of other reference modules (a GUI
toolkit, ``models.layer``, ``transformer.Models``) must be absent or importable, and ``einops``
is replaced by a two-pattern stand-in when it is not installed.

Our model's weights are copied into the reference model, so both compute the same function
(checked before timing), and the two are timed alternately call by call in one process, so
that the load of a shared machine falls on both equally.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.model_timing import timed_calls, torch_threads
from benchmarks.timing import alternate
from dynforecast.models import WindowBatch
from dynforecast.models.estag import ESTAG


def _einops_stand_in() -> types.ModuleType:
    """The two ``rearrange`` patterns the reference ESTAG uses, for machines without einops."""

    def rearrange(tensor: Tensor, pattern: str, **sizes: int) -> Tensor:
        if pattern == "t (b n) d -> t b n d":
            frames, _, dims = tensor.shape
            return tensor.view(frames, -1, sizes["n"], dims)
        if pattern == "t b n d -> (b n) d t":
            frames, graphs, nodes, dims = tensor.shape
            return tensor.permute(1, 2, 3, 0).reshape(graphs * nodes, dims, frames)
        raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")

    module = types.ModuleType("einops")
    module.rearrange = rearrange  # type: ignore[attr-defined]
    return module


def load_reference_class(reference_dir: Path) -> type[nn.Module]:
    """The reference ``ESTAG`` class from ``reference_dir/models/model.py``."""
    if not (reference_dir / "models" / "model.py").is_file():
        raise FileNotFoundError(f"{reference_dir}: no models/model.py (the reference ESTAG code)")
    try:
        importlib.import_module("einops")
    except ImportError:
        sys.modules["einops"] = _einops_stand_in()
    sys.path.insert(0, str(reference_dir))
    try:
        return importlib.import_module("models.model").ESTAG
    finally:
        sys.path.remove(str(reference_dir))


def _copy_linear(target: nn.Linear, source: nn.Linear) -> None:
    target.weight.copy_(source.weight)
    if target.bias is not None:
        target.bias.copy_(source.bias)


@torch.no_grad()
def reference_from(ours: ESTAG, reference_class: type[nn.Module], nodes_per_graph: int):
    """A reference ESTAG in the README configuration carrying ``ours``'s weights.

    Our fused q/k/v first Linear is split back into three; the reference's unused modules keep
    their random initialisation (they do not affect the output).
    """
    hidden = ours.node_embedding.out_features
    frames = ours.num_past_frames
    reference = reference_class(
        num_past=frames,
        num_future=1,
        in_node_nf=1,
        in_edge_nf=frames - 1,
        hidden_nf=hidden,
        fft=True,
        eat=True,
        device="cpu",
        n_layers=len(ours.spatial),
        n_nodes=nodes_per_graph,
        nodes_att_dim=frames - 1,
        with_mask=True,
    ).to(ours.node_embedding.weight.dtype)
    _copy_linear(reference.embedding, ours.node_embedding)
    reference.TimeEmbedding.weight.copy_(ours.frame_embedding.weight)
    _copy_linear(reference.attn_mlp[0], ours.frequency_gate)
    reference.theta.copy_(ours.pooling.theta.view(1, -1))
    for index, (spatial, temporal) in enumerate(zip(ours.spatial, ours.temporal, strict=True)):
        esm = getattr(reference, f"egcl_{2 * index + 1}")
        _copy_linear(esm.edge_mlp[0], spatial.message.first)
        _copy_linear(esm.edge_mlp[2], spatial.message.second)
        for position in (0, 2):
            _copy_linear(esm.node_mlp[position], spatial.node[position])
            _copy_linear(esm.coord_mlp[position], spatial.coordinate[position])
        etm = getattr(reference, f"egcl_at_{2 * index + 2}")
        for part, (mlp, second) in enumerate(
            [(etm.q_mlp, temporal.query), (etm.k_mlp, temporal.key), (etm.v_mlp, temporal.value)]
        ):
            rows = slice(part * hidden, (part + 1) * hidden)
            mlp[0].weight.copy_(temporal.first.weight[rows])
            mlp[0].bias.copy_(temporal.first.bias[rows])
            _copy_linear(mlp[2], second)
        for position in (0, 2):
            _copy_linear(etm.coord_mlp[position], temporal.coordinate[position])
    return reference


def reference_call(reference: nn.Module, batch: WindowBatch) -> Callable[[], Tensor]:
    """The reference's forward on ``batch``: inputs (T, V, 3), z as a float, receiver first."""
    node_input = batch.species.to(batch.positions.dtype).unsqueeze(1)
    positions = batch.positions.transpose(0, 1).contiguous()
    edges = torch.stack([batch.edge_dst, batch.edge_src])
    return lambda: reference(node_input, positions, edges, None)


@dataclass(frozen=True)
class PairTiming:
    """Median ms per batch of ours and of the reference, forward and forward+backward."""

    threads: int
    ours_forward_ms: float
    reference_forward_ms: float
    ours_forward_backward_ms: float
    reference_forward_backward_ms: float


def _interleaved_medians(
    first: Callable[[], object], second: Callable[[], object], repeats: int, warmup: int
) -> tuple[float, float]:
    """Median ms of each function, calling them alternately so both see the same load."""
    ours, reference = alternate(first, second, repeats, warmup)
    return ours.median_ms, reference.median_ms


def time_pair(
    ours: ESTAG,
    reference: nn.Module,
    batch: WindowBatch,
    threads: int,
    repeats: int = 20,
    warmup: int = 5,
    rounds: int = 3,
) -> PairTiming:
    """Forward (no grad) and forward+backward (MSE to batch.target) of both models, interleaved.

    Each figure is the lowest of ``rounds`` medians (the quietest period of a shared machine).
    """
    ours_forward, ours_step = timed_calls(ours, lambda: ours(batch), batch)
    reference_forward, reference_step = timed_calls(
        reference, reference_call(reference, batch), batch
    )
    with torch_threads(threads):
        fwd = [
            _interleaved_medians(ours_forward, reference_forward, repeats, warmup)
            for _ in range(rounds)
        ]
        bwd = [
            _interleaved_medians(ours_step, reference_step, repeats, warmup) for _ in range(rounds)
        ]
    return PairTiming(
        threads,
        min(t[0] for t in fwd),
        min(t[1] for t in fwd),
        min(t[0] for t in bwd),
        min(t[1] for t in bwd),
    )


@torch.no_grad()
def max_output_difference(ours: ESTAG, reference: nn.Module, batch: WindowBatch) -> float:
    """max |ours - reference| over the forecast, to prove both compute the same function."""
    return (ours(batch) - reference_call(reference, batch)()).abs().max().item()
