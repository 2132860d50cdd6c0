"""Random window batches for model tests, and the one place that says how a model is built for them.

Windows are drifting, jittering point clouds (so every frame differs and spectra are non-zero),
on two graph kinds: "all_pairs" (N-body style) and "bonds" (a chain with its 2-hop pairs, the
sparse molecular style). Each window is built alone and `collate` concatenates them into a flat
big-graph batch, so tests can compare a batch with its windows called one by one.

`small_model(name, batch)` builds any registered model for a batch with small widths. A model
whose constructor needs other arguments (e.g. SAKE) gets its own branch there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dynforecast.models import ForecastModel, WindowBatch, create_model, model_names

GRAPH_KINDS = ("all_pairs", "bonds")
SPECIES = torch.tensor([1, 6, 7, 8])
PAST_DT = 0.5
TARGET_DT = 1.5


def graph_edges(num_nodes: int, kind: str) -> tuple[Tensor, Tensor]:
    """Directed edges (src, dst) of one window with local node indices."""
    index = torch.arange(num_nodes)
    if kind == "all_pairs":
        src, dst = torch.meshgrid(index, index, indexing="ij")
        keep = src != dst
        return src[keep], dst[keep]
    if kind == "bonds":
        pairs = [(index[:-hop], index[hop:]) for hop in (1, 2)]  # chain bonds + 2-hop pairs
        first = torch.cat([a for a, _ in pairs])
        second = torch.cat([b for _, b in pairs])
        return torch.cat([first, second]), torch.cat([second, first])
    raise ValueError(f"expected graph kind in {GRAPH_KINDS} (got {kind!r})")


def random_window(
    num_nodes: int,
    num_frames: int,
    generator: torch.Generator,
    *,
    graph: str = "all_pairs",
    velocities: bool = False,
    charges: bool = False,
    dtype: torch.dtype = torch.float64,
) -> WindowBatch:
    """One window: x(t) = x0 + t dt v + jitter, target = constant-velocity step, in ``dtype``."""

    def normal(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    start = 1.5 * normal(num_nodes, 1, 3) + 3.0 * normal(1, 1, 3)
    velocity = 0.4 * normal(num_nodes, 1, 3)
    times = PAST_DT * torch.arange(num_frames, dtype=torch.float64).view(1, -1, 1)
    positions = start + times * velocity + 0.05 * normal(num_nodes, num_frames, 3)
    src, dst = graph_edges(num_nodes, graph)
    species = SPECIES[torch.randint(0, len(SPECIES), (num_nodes,), generator=generator)]
    if charges:
        node_attrs = torch.randint(0, 2, (num_nodes, 1), generator=generator) * 2.0 - 1.0
    else:
        node_attrs = torch.zeros(num_nodes, 0)
    return WindowBatch(
        positions=positions.to(dtype),
        species=species,
        node_attrs=node_attrs.to(dtype),
        edge_src=src,
        edge_dst=dst,
        node_graph=torch.zeros(num_nodes, dtype=torch.long),
        num_graphs=1,
        past_dt=PAST_DT,
        target_dt=TARGET_DT,
        velocities=(velocity + 0.05 * normal(num_nodes, num_frames, 3)).to(dtype)
        if velocities
        else None,
        target=(positions[:, -1] + TARGET_DT * velocity[:, 0]).to(dtype),
    )


def collate(windows: list[WindowBatch]) -> WindowBatch:
    """Concatenate batches into one big graph (node indices offset, graphs renumbered)."""
    node_offsets = torch.tensor([0] + [w.num_nodes for w in windows]).cumsum(0)
    graph_offsets = torch.tensor([0] + [w.num_graphs for w in windows]).cumsum(0)

    def cat(name: str) -> Tensor | None:
        values = [getattr(w, name) for w in windows]
        if all(v is None for v in values):
            return None
        if name == "node_mask":
            values = [
                torch.ones(w.num_nodes, dtype=torch.bool) if v is None else v
                for w, v in zip(windows, values, strict=True)
            ]
        return torch.cat(values)

    first = windows[0]
    return WindowBatch(
        positions=cat("positions"),
        species=cat("species"),
        node_attrs=cat("node_attrs"),
        edge_src=torch.cat([w.edge_src + o for w, o in zip(windows, node_offsets, strict=False)]),
        edge_dst=torch.cat([w.edge_dst + o for w, o in zip(windows, node_offsets, strict=False)]),
        node_graph=torch.cat(
            [w.node_graph + o for w, o in zip(windows, graph_offsets, strict=False)]
        ),
        num_graphs=int(graph_offsets[-1]),
        past_dt=first.past_dt,
        target_dt=first.target_dt,
        velocities=cat("velocities"),
        node_mask=cat("node_mask"),
        target=cat("target"),
    )


def window_list(
    sizes: list[int],
    num_frames: int = 4,
    *,
    seed: int = 0,
    graph: str = "all_pairs",
    velocities: bool = False,
    charges: bool = False,
    dtype: torch.dtype = torch.float64,
) -> list[WindowBatch]:
    """Independent random windows with the given node counts."""
    generator = torch.Generator().manual_seed(seed)
    return [
        random_window(
            n,
            num_frames,
            generator,
            graph=graph,
            velocities=velocities,
            charges=charges,
            dtype=dtype,
        )
        for n in sizes
    ]


def make_batch(sizes: list[int], num_frames: int = 4, **options: object) -> WindowBatch:
    """A collated batch of random windows (options as `window_list`)."""
    return collate(window_list(sizes, num_frames, **options))  # type: ignore[arg-type]


def pad_batch(batch: WindowBatch, pads_per_graph: int, generator: torch.Generator) -> WindowBatch:
    """Append ``pads_per_graph`` masked nodes (node_mask False, no edges) to every window.

    Pads sit far away with large velocities, so any leak into real nodes would show.
    """
    count = pads_per_graph * batch.num_graphs
    dtype = batch.positions.dtype

    def far(*shape: int) -> Tensor:
        return (50.0 + 10.0 * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(
            dtype
        )

    real_mask = batch.node_mask
    if real_mask is None:
        real_mask = torch.ones(batch.num_nodes, dtype=torch.bool)
    changes: dict[str, object] = {
        "positions": torch.cat([batch.positions, far(count, batch.num_frames, 3)]),
        "species": torch.cat([batch.species, torch.full((count,), 6)]),
        "node_attrs": torch.cat([batch.node_attrs, torch.ones(count, batch.node_attrs.shape[1])]),
        "node_graph": torch.cat(
            [batch.node_graph, torch.arange(batch.num_graphs).repeat_interleave(pads_per_graph)]
        ),
        "node_mask": torch.cat([real_mask, torch.zeros(count, dtype=torch.bool)]),
    }
    if batch.velocities is not None:
        changes["velocities"] = torch.cat([batch.velocities, far(count, batch.num_frames, 3)])
    if batch.target is not None:
        changes["target"] = torch.cat([batch.target, far(count, 3)])
    return batch.replace(**changes)


def small_model(name: str, batch: WindowBatch, **overrides: object) -> ForecastModel:
    """Build model ``name`` for ``batch`` with small widths (fast tests), in the batch's dtype."""
    if name == "estag":
        options: dict[str, object] = {
            "hidden_dim": 8,
            "num_layers": 2,
            "num_past_frames": batch.num_frames,
            "extrapolation_init": 1.0,  # what `dynforecast train` sets (train/init_scale.py)
        }
    elif name == "egnn":
        options = {"hidden_dim": 16, "num_layers": 2, "node_attr_dim": batch.node_attrs.shape[1]}
    elif name == "sake":
        options = {
            "hidden_dim": 8,
            "num_heads": 2,
            "num_layers": 2,
            "num_basis": 8,
            "node_attr_dim": batch.node_attrs.shape[1],
            "delta_scale": 0.5,  # what `dynforecast train` sets (train/init_scale.py)
        }
    elif name == "linear":  # fitted weights (unfitted it is constant velocity)
        weights = [0.7 - 0.3 * k for k in range(batch.num_frames - 1)]
        options = {
            "weights": weights,
            "velocity_weight": 0.4 if batch.velocities is not None else 0.0,
        }
    else:
        options = {}
    options.update(overrides)
    model = create_model(name, **options)
    return model.to(batch.positions.dtype)


def learnable_model_names() -> list[str]:
    """Registered models that have parameters to train."""
    probe = make_batch([3], num_frames=4, velocities=True, charges=True)
    return [name for name in model_names() if small_model(name, probe).learnable]
