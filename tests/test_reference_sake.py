"""The pure helpers of the same-run SAKE comparison (benchmarks/reference_sake.py, no JAX here):
our weights under the reference's Flax names and shapes, the dense reshape, the alternating
timer, and the speed table's labelling of its reference figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.model_timing import Timing
from benchmarks.reference_sake import (
    CallSamples,
    alternate,
    dense,
    flax_parameters,
    one_hot_joints,
    overlay,
)
from benchmarks.speed_sake import REFERENCE_MS, motion_batch, result_row
from dynforecast.models import create_model

# Spec Appendix A: per-leaf shapes of one reference layer (F 64, H 4, K 50, no edge attributes).
LAYER_SHAPES = {
    "edge_model/kernel/means": (50,),
    "edge_model/kernel/betas": (50,),
    "edge_model/mlp_in/kernel": (128, 50),
    "edge_model/mlp_in/bias": (50,),
    "edge_model/mlp_out/layers_0/kernel": (179, 64),
    "edge_model/mlp_out/layers_2/kernel": (64, 64),
    "semantic_attention_mlp/layers_0/kernel": (64, 4),
    "x_mixing/layers_0/kernel": (256, 256),
    "v_mixing/kernel": (256, 1),
    "post_norm_mlp/layers_0/kernel": (256, 64),
    "node_mlp/layers_0/kernel": (384, 64),
    "velocity_mlp/layers_0/kernel": (64, 64),
    "velocity_mlp/layers_2/kernel": (64, 1),
}


def leaves(tree: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            shapes.update(leaves(value, f"{prefix}{key}/"))
        else:
            shapes[f"{prefix}{key}"] = tuple(value.shape)
    return shapes


def test_our_weights_take_the_reference_names_and_kernel_layout() -> None:
    torch.manual_seed(0)
    model = create_model("sake", species="none", node_attr_dim=1)
    tree = flax_parameters(model)
    shapes = leaves(tree["d3"])
    for name, shape in LAYER_SHAPES.items():
        assert shapes[name] == shape, name
    assert "bias" not in tree["d0"]["x_mixing"]["layers_0"]
    assert "bias" not in tree["d0"]["velocity_mlp"]["layers_2"]
    assert leaves(tree["embedding_in"]) == {"kernel": (2, 64), "bias": (64,)}
    # Flax kernels are (in, out): the transpose of torch's weight, values unchanged
    weight = model.layers[1].coefficient_mixing.weight.detach().numpy()
    assert np.array_equal(tree["d1"]["x_mixing"]["layers_0"]["kernel"], weight.T)


def test_overlay_keeps_reference_only_leaves_and_drops_ours_only() -> None:
    reference = {
        "d0": {"log_gamma": np.zeros(4), "v_mixing": {"kernel": np.zeros((3, 1))}},
        "embedding_out": {"bias": np.ones(2)},
    }
    ours = {
        "d0": {"v_mixing": {"kernel": np.full((3, 1), 7.0)}, "velocity_mlp": {"x": np.ones(1)}},
    }
    merged = overlay(reference, ours)
    assert np.array_equal(merged["d0"]["v_mixing"]["kernel"], np.full((3, 1), 7.0))
    assert np.array_equal(merged["d0"]["log_gamma"], np.zeros(4))
    assert np.array_equal(merged["embedding_out"]["bias"], np.ones(2))
    assert "velocity_mlp" not in merged["d0"]
    with pytest.raises(ValueError, match=r"expected /d0/v_mixing/kernel of shape \(3, 1\)"):
        overlay(reference, {"d0": {"v_mixing": {"kernel": np.zeros((4, 1))}}})


def test_dense_splits_graph_major_nodes_into_systems() -> None:
    values = torch.arange(12.0).view(6, 2)  # 3 systems of 2 nodes
    array = dense(values, 3)
    assert array.shape == (3, 2, 2)
    assert np.array_equal(array[1, 0], values[2].numpy())
    with pytest.raises(ValueError, match=r"expected a multiple of 4 node rows \(got 6\)"):
        dense(values, 4)


def test_motion_input_is_speed_then_joint_one_hot() -> None:
    batch = motion_batch(2)
    node_input = one_hot_joints(batch)
    assert node_input.shape == (62, 32)
    speed = batch.velocities[:, -1].norm(dim=1)
    assert torch.allclose(node_input[:, 0], speed)
    assert torch.equal(node_input[31 + 5, 1:], torch.eye(31)[5])


def test_alternate_interleaves_calls_and_records_cpu_time() -> None:
    calls: list[str] = []
    ours, reference = alternate(lambda: calls.append("ours"), lambda: calls.append("ref"), 3, 1)
    assert calls == ["ours", "ref"] * 4
    assert len(ours.wall) == len(reference.cpu) == 3
    busy = CallSamples(wall=[0.5, 0.5], cpu=[1.0, 0.8])
    assert busy.cores_used == pytest.approx(1.8)
    assert busy.median_ms == pytest.approx(500.0)


def test_rows_label_spec_figures_and_same_run_figures() -> None:
    timing = Timing(threads=2, batch_size=100, forward_ms=10.0, forward_backward_ms=50.0)
    spec = result_row("nbody", "eager", timing, None)
    assert spec["reference_source"] == "spec figures, not re-measured"
    assert spec["reference_forward_ms"] == REFERENCE_MS["nbody"][0]
    assert spec["speedup_forward"] == 1.5  # fastest spec figure 15 ms / ours 10 ms
    measured = result_row("nbody", "eager", timing, None, (30.0, 200.0))
    assert measured["reference_source"] == "same run"
    assert measured["reference_forward_ms"] == (30.0, 30.0)
    assert (measured["speedup_forward"], measured["speedup_forward_backward"]) == (3.0, 4.0)
