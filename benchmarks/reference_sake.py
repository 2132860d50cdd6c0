"""Same-run speed comparison of our SAKE with the reference JAX/Flax DenseSAKEModel.

The reference (choderalab/sake 0a25409, ``sake/models.py`` DenseSAKEModel, ``sake/layers.py``,
``sake/utils.py``, ``sake/functional.py``) is loaded from a directory the user provides, e.g.
``--reference-dir /tmp/sake_ref`` holding the package ``sake/``; its code is never copied into
dynforecast. The README's figures were taken with the author's upstream repository
yuanqing-wang/sake (``models.py`` at 10bf813, ``layers.py``/``utils.py``/``functional.py`` at
00d8eae), whose DenseSAKEModel lacks 0a25409's ``n_heads`` field: add ``n_heads: int = 4`` and pass
it to each DenseSAKELayer (the layer's default is 4 already), and drop the ``flows`` import from
its ``__init__.py`` if that module is not present. It needs ``jax`` and ``flax``, which are not
dependencies of dynforecast: this module imports them only when a reference is actually built, so
its pure helpers (parameter layout, dense reshapes) load without them.

The reference is dense: inputs are (B, N, ·) arrays, all ordered pairs of each system. Our batches
are flat graph-major node lists (copy b holds nodes b·N .. b·N + N - 1), so a reshape gives the
reference's layout. Forward and value_and_grad of the MSE are ``jax.jit``-compiled once (compile
time reported separately) and every timed call ends in ``block_until_ready``; ours and the
reference's calls alternate one by one in one process, so that the load of a shared machine falls
on both equally. The process CPU time of each call is recorded too: CPU seconds per wall second
says how many cores each side really used (XLA sizes its thread pool from the machine's cores and
cannot be changed once JAX has started; torch uses the thread count asked for).

With ``same_function=True`` our weights are transplanted into the reference (spec §8 item 17:
Flax kernels are (in, out); our stored mixing weight is already feature-major, like the reference's
multi-head flattening), and the two forecasts are compared before timing.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks.model_timing import timed_calls, torch_threads
from benchmarks.timing import CallSamples, alternate
from dynforecast.models import WindowBatch
from dynforecast.models.sake import Sake, input_velocity

FLAX_INIT_SEED = 2666  # the reference N-body script's PRNG key (spec §7.1)


# -- pure helpers (no JAX) ----------------------------------------------------------------------
def dense(values: Tensor, num_graphs: int) -> np.ndarray:
    """Flat graph-major node rows as the reference's dense per-system array.

    Shapes: [B·N, D] -> [B, N, D] (float32 NumPy).
    """
    if values.shape[0] % num_graphs:
        raise ValueError(f"expected a multiple of {num_graphs} node rows (got {values.shape[0]})")
    array = values.detach().to(torch.float32).cpu().numpy()
    return array.reshape(num_graphs, -1, *array.shape[1:])


def _dense_leaf(linear: nn.Linear) -> dict[str, np.ndarray]:
    """A torch Linear as a Flax Dense: kernel (in, out) and, if any, bias."""
    leaf = {"kernel": linear.weight.detach().t().numpy().copy()}
    if linear.bias is not None:
        leaf["bias"] = linear.bias.detach().numpy().copy()
    return leaf


def flax_parameters(ours: Sake) -> dict[str, Any]:
    """Our weights under the reference's Flax names (spec Appendix A), as NumPy arrays.

    Every layer gets a velocity MLP here; the reference creates it only once a v reaches the
    layer, so `overlay` keeps only the leaves the reference has. ``embedding_out`` (the unused
    output head) and the dead ``log_gamma`` have no counterpart in our model.
    """
    layers: dict[str, Any] = {}
    for index, layer in enumerate(ours.layers):
        layers[f"d{index}"] = {
            "edge_model": {
                "kernel": {
                    "means": layer.basis.means.detach().numpy().copy(),
                    "betas": layer.basis.betas.detach().numpy().copy(),
                },
                "mlp_in": _dense_leaf(layer.edge_filter),
                "mlp_out": {
                    "layers_0": _dense_leaf(layer.edge_in),
                    "layers_2": _dense_leaf(layer.edge_out),
                },
            },
            "semantic_attention_mlp": {"layers_0": _dense_leaf(layer.semantic)},
            "x_mixing": {"layers_0": _dense_leaf(layer.coefficient_mixing)},
            "v_mixing": _dense_leaf(layer.velocity_mixing),
            "post_norm_mlp": {
                "layers_0": _dense_leaf(layer.spatial_mlp[0]),
                "layers_2": _dense_leaf(layer.spatial_mlp[2]),
            },
            "node_mlp": {
                "layers_0": _dense_leaf(layer.node_mlp[0]),
                "layers_2": _dense_leaf(layer.node_mlp[2]),
            },
            "velocity_mlp": {
                "layers_0": _dense_leaf(layer.velocity_mlp[0]),
                "layers_2": _dense_leaf(layer.velocity_mlp[2]),
            },
        }
    return {"embedding_in": _dense_leaf(ours.embedding), **layers}


def overlay(reference: Mapping[str, Any], ours: Mapping[str, Any], path: str = "") -> dict:
    """``reference``'s parameter tree with every leaf that ``ours`` also has replaced by ours.

    Leaves only the reference has (``embedding_out``, ``log_gamma``) keep its values; leaves
    only ours has (a velocity MLP the reference did not create) are dropped. Shapes must agree.
    """
    merged: dict[str, Any] = {}
    for key, value in reference.items():
        name = f"{path}/{key}"
        if isinstance(value, Mapping):
            merged[key] = overlay(value, ours.get(key, {}), name)
        elif key in ours:
            if tuple(ours[key].shape) != tuple(value.shape):
                raise ValueError(
                    f"expected {name} of shape {tuple(value.shape)} (got {ours[key].shape})"
                )
            merged[key] = ours[key]
        else:
            merged[key] = value
    return merged


def one_hot_joints(batch: WindowBatch) -> Tensor:
    """The reference motion recipe's node input [|v| ‖ one-hot(joint id)] (D_in = 1 + N).

    Shapes: batch (B systems of N nodes) -> [B·N, 1 + N].
    """
    nodes = batch.num_nodes // batch.num_graphs
    joints = torch.eye(nodes, dtype=batch.positions.dtype).repeat(batch.num_graphs, 1)
    return torch.cat([input_velocity(batch).norm(dim=1, keepdim=True), joints], dim=1)


# -- the reference (needs JAX and Flax) -----------------------------------------------------------
def load_reference_model(reference_dir: Path) -> type:
    """The reference ``DenseSAKEModel`` class from ``reference_dir/sake/models.py``."""
    if not (reference_dir / "sake" / "models.py").is_file():
        raise FileNotFoundError(f"{reference_dir}: no sake/models.py (the reference SAKE code)")
    sys.path.insert(0, str(reference_dir))
    try:
        return importlib.import_module("sake.models").DenseSAKEModel
    finally:
        sys.path.remove(str(reference_dir))


@dataclass(frozen=True)
class DenseInputs:
    """One batch in the reference's layout: h [B, N, D_in], x, v (or None), target [B, N, 3]."""

    h: np.ndarray
    x: np.ndarray
    v: np.ndarray | None
    target: np.ndarray

    @classmethod
    def from_batch(cls, batch: WindowBatch, node_input: Tensor, use_velocity: bool):
        if batch.target is None:
            raise ValueError("expected a batch with a target for the backward timing (got none)")
        velocity = input_velocity(batch)
        graphs = batch.num_graphs
        return cls(
            dense(node_input, graphs),
            dense(batch.positions[:, -1], graphs),
            dense(velocity, graphs) if use_velocity and velocity is not None else None,
            dense(batch.target, graphs),
        )


class ReferenceSake:
    """The reference DenseSAKEModel (F, L, H as ours), jitted forward and value_and_grad.

    ``parameters``: a tree from `flax_parameters` to transplant, or None to keep the Flax init
    (PRNG key 2666, as the reference scripts).
    """

    def __init__(
        self,
        model_class: type,
        ours: Sake,
        inputs: DenseInputs,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        import jax
        import jax.numpy as jnp

        first = ours.layers[0]
        self.model = model_class(
            hidden_features=first.hidden,
            out_features=1,
            depth=len(ours.layers),
            n_heads=first.heads,
        )
        self.inputs = tuple(
            None if a is None else jnp.asarray(a) for a in (inputs.h, inputs.x, inputs.v)
        )
        self.target = jnp.asarray(inputs.target)
        variables = self.model.init(jax.random.PRNGKey(FLAX_INIT_SEED), *self.inputs)
        if parameters is not None:
            tree = overlay(variables["params"], parameters)
            variables = {"params": jax.tree_util.tree_map(jnp.asarray, tree)}
        self.variables = variables
        self.num_parameters = sum(a.size for a in jax.tree_util.tree_leaves(variables))

        def positions(variables, h, x, v):
            return self.model.apply(variables, h, x, v)[1]

        def loss(variables, h, x, v, target):
            return jnp.mean((positions(variables, h, x, v) - target) ** 2)

        self._forward = jax.jit(positions)
        self._value_and_grad = jax.jit(jax.value_and_grad(loss))
        self._block = jax.block_until_ready
        start = time.perf_counter()
        self.forward()
        self.forward_compile_s = time.perf_counter() - start
        start = time.perf_counter()
        self.forward_backward()
        self.forward_backward_compile_s = time.perf_counter() - start

    def forward(self) -> np.ndarray:
        """Predicted positions [B, N, 3] (computed, then waited for)."""
        return np.asarray(self._block(self._forward(self.variables, *self.inputs)))

    def forward_backward(self) -> None:
        """MSE to the target and its gradient in every parameter (waited for)."""
        self._block(self._value_and_grad(self.variables, *self.inputs, self.target))


def max_output_difference(ours: Sake, reference: ReferenceSake, batch: WindowBatch) -> float:
    """max |ours - reference| over the forecast positions."""
    with torch.no_grad():
        mine = dense(ours(batch), batch.num_graphs)
    return float(np.abs(mine - reference.forward()).max())


def same_function_check(ours: Sake, model_class: type, batch: WindowBatch) -> float:
    """Transplant ``ours`` into the reference and return max |ours - reference| on ``batch``."""
    velocity = input_velocity(batch)
    inputs = DenseInputs.from_batch(
        batch, ours.node_scalars(batch, velocity), use_velocity=ours.use_velocity
    )
    reference = ReferenceSake(model_class, ours, inputs, flax_parameters(ours))
    return max_output_difference(ours, reference, batch)


@dataclass(frozen=True)
class SakePairTiming:
    """Median ms per batch of ours and of the reference, and the cores each used."""

    threads: int
    ours_forward: CallSamples
    reference_forward: CallSamples
    ours_forward_backward: CallSamples
    reference_forward_backward: CallSamples


def time_pair(
    ours: nn.Module,
    reference: ReferenceSake,
    batch: WindowBatch,
    threads: int,
    repeats: int = 10,
    warmup: int = 2,
) -> SakePairTiming:
    """Forward (no grad) and forward+backward (MSE to batch.target) of both, call by call.

    ``ours`` may be a compiled wrapper of our model. torch runs with ``threads`` intra-op
    threads (restored afterwards); XLA with its own pool.
    """
    forward, forward_backward = timed_calls(ours, lambda: ours(batch), batch)
    with torch_threads(threads):
        fwd = alternate(forward, reference.forward, repeats, warmup)
        bwd = alternate(forward_backward, reference.forward_backward, repeats, warmup)
    return SakePairTiming(threads, fwd[0], fwd[1], bwd[0], bwd[1])


def xla_threads_note() -> str:
    """What XLA was given: its CPU devices and the machine's cores (for the report)."""
    import jax

    return f"jax {jax.__version__}, devices {jax.devices()}, machine cores {os.cpu_count()}"
