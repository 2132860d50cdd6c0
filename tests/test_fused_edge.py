"""The fused CPU edge kernel (dynforecast.ops.fused_edge) computes the torch path's function.

Values and every gradient are compared with the plain torch layers (EdgeMessageMLP, the
coordinate head and scatter_sum) in float64, on ESTAG-like [V, T, H] and EGNN-like [V, H]
inputs, for the specialised hidden sizes and a generic one, with and without edge features and
aggregation, on one and two threads; plus gradcheck, the fallback when the kernel is off or
cannot be built, the errors it raises, and the claim that it keeps no [E, T, H] tensor for the
backward.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dynforecast.models import create_model
from dynforecast.models.layers import (
    EdgeMessageMLP,
    coordinate_head,
    fused_messages_and_coordinate_weights,
    messages_and_coordinate_weights,
)
from dynforecast.ops import c_kernels
from dynforecast.ops.fused_edge import fused_edge_available, fused_edge_mlp, use_fused_edge
from dynforecast.ops.scatter import scatter_sum
from tests.model_batches import make_batch

pytestmark = pytest.mark.skipif(
    not fused_edge_available(torch.float64)[0],
    reason=f"fused edge kernel not built here: {fused_edge_available(torch.float64)[1]}",
)


def layer_inputs(nodes, frames, hidden, edges, edge_features, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    message = EdgeMessageMLP(hidden, edge_features).to(dtype)
    head = coordinate_head(hidden).to(dtype)
    with torch.no_grad():  # an O(1) head weight, so its gradients are not near zero
        head[2].weight.normal_(generator=generator)
    shape = (nodes, frames, hidden) if frames else (nodes, hidden)
    h = torch.randn(shape, dtype=dtype, generator=generator).requires_grad_()
    dst = torch.randint(0, nodes, (edges,), generator=generator)
    src = torch.randint(0, nodes, (edges,), generator=generator)
    radial_shape = (edges, frames, 1) if frames else (edges, 1)
    radial = torch.rand(radial_shape, dtype=dtype, generator=generator).requires_grad_()
    features = None
    if edge_features:
        features = torch.randn(edges, edge_features, dtype=dtype, generator=generator)
        features.requires_grad_()
    return message, head, h, src, dst, radial, features


def torch_path(message, head, h, src, dst, radial, features, aggregate=True):
    messages = message(h, src, dst, radial, features)
    aggregated = scatter_sum(messages, dst, h.shape[0]) if aggregate else None
    return aggregated, head(messages)


def run_both(inputs, aggregate=True):
    """(torch path, fused kernel) outputs of the edge half of a layer on the same inputs."""
    message, head, h, src, dst, radial, features = inputs
    fused = fused_messages_and_coordinate_weights(
        message, head, h, src, dst, radial, features, aggregate=aggregate
    )
    reference = torch_path(message, head, h, src, dst, radial, features, aggregate=aggregate)
    return reference, fused


def gradients(outputs, inputs, seed=1):
    generator = torch.Generator().manual_seed(seed)
    message, head, h, _, _, radial, features = inputs
    leaves = [*message.parameters(), *head.parameters(), h, radial]
    if features is not None:
        leaves.append(features)
    present = [o for o in outputs if o is not None]
    seeds = [torch.randn(o.shape, dtype=o.dtype, generator=generator) for o in present]
    return torch.autograd.grad(present, leaves, seeds, allow_unused=True)


@pytest.mark.parametrize("hidden", [16, 12, 64])
@pytest.mark.parametrize("frames", [10, 0])
@pytest.mark.parametrize("edge_features", [0, 9])
def test_fused_path_equals_torch_path_values_and_all_gradients(hidden, frames, edge_features):
    inputs = layer_inputs(23, frames, hidden, 97, edge_features, torch.float64)
    (ref_agg, ref_weight), (agg, weight) = run_both(inputs)
    assert agg.shape == ref_agg.shape and weight.shape == ref_weight.shape
    torch.testing.assert_close(agg, ref_agg, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weight, ref_weight, rtol=1e-12, atol=1e-12)
    for got, expected in zip(
        gradients((agg, weight), inputs), gradients((ref_agg, ref_weight), inputs), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_without_aggregation_only_the_weights_come_back():
    inputs = layer_inputs(11, 0, 16, 40, 0, torch.float64)
    (ref_agg, ref_weight), (agg, weight) = run_both(inputs, aggregate=False)
    assert agg is None and ref_agg is None
    torch.testing.assert_close(weight, ref_weight, rtol=1e-12, atol=1e-12)
    for got, expected in zip(
        gradients((weight,), inputs), gradients((ref_weight,), inputs), strict=True
    ):
        if expected is None:  # the edge MLP's second bias still feeds the weight
            assert got is None or torch.count_nonzero(got) == 0
        else:
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_float32_within_float32_tolerance():
    inputs = layer_inputs(130, 10, 16, 600, 9, torch.float32)
    (ref_agg, ref_weight), (agg, weight) = run_both(inputs)
    torch.testing.assert_close(agg, ref_agg, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight, ref_weight, rtol=1e-5, atol=1e-6)
    for got, expected in zip(
        gradients((agg, weight), inputs), gradients((ref_agg, ref_weight), inputs), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_two_threads_give_the_one_thread_result():
    inputs = layer_inputs(40, 10, 16, 300, 9, torch.float64)
    message, head, h, src, dst, radial, features = inputs
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outputs = messages_and_coordinate_weights(message, head, h, src, dst, radial, features)
            results.append((outputs, gradients(outputs, inputs)))
    finally:
        torch.set_num_threads(before)
    (one, one_grads), (two, two_grads) = results
    for got, expected in zip([*two, *two_grads], [*one, *one_grads], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_gradcheck_of_the_kernel():
    generator = torch.Generator().manual_seed(3)
    nodes, frames, hidden, edges = 5, 3, 16, 12

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=generator).requires_grad_()

    dst = torch.randint(0, nodes, (edges,), generator=generator)
    src = torch.randint(0, nodes, (edges,), generator=generator)
    args = (
        leaf(nodes, frames, hidden),
        leaf(nodes, frames, hidden),
        dst,
        src,
        leaf(edges, frames),
        leaf(hidden),
        leaf(edges, hidden),
        leaf(hidden, hidden),
        leaf(hidden),
        leaf(hidden, hidden),
        leaf(hidden),
        leaf(hidden),
    )
    assert torch.autograd.gradcheck(lambda *a: fused_edge_mlp(*a), args)


def test_the_backward_keeps_no_edge_by_frame_by_feature_tensor(monkeypatch):
    nodes, frames, hidden, edges = 50, 10, 16, 400
    inputs = layer_inputs(nodes, frames, hidden, edges, 9, torch.float32)
    message, head, h, src, dst, radial, features = inputs
    edge_tensor_bytes = edges * frames * hidden * 4

    def saved_bytes():
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            messages_and_coordinate_weights(message, head, h, src, dst, radial, features)
        return total

    fused = saved_bytes()
    monkeypatch.setenv("DYNFORECAST_FUSED", "0")
    unfused = saved_bytes()
    assert fused < edge_tensor_bytes  # only node projections, radial [E, T] and weights
    assert unfused > 3 * edge_tensor_bytes


def test_estag_and_egnn_forecasts_and_gradients_do_not_depend_on_the_path(monkeypatch):
    for name, batch in (
        ("estag", make_batch([5, 7, 6], num_frames=10, graph="bonds")),
        ("egnn", make_batch([5, 7, 6], num_frames=1, velocities=True, charges=True)),
    ):
        torch.manual_seed(0)
        # EGNN at width 16: its default 64 takes the torch path (FUSED_MAX_HIDDEN)
        options = {"node_attr_dim": 1, "hidden_dim": 16} if name == "egnn" else {}
        model = create_model(name, **options).double()
        results = []
        for switch in ("1", "0"):
            monkeypatch.setenv("DYNFORECAST_FUSED", switch)
            model.zero_grad()
            forecast = model(batch)
            forecast.square().sum().backward()
            results.append((forecast, [p.grad.clone() for p in model.parameters()]))
        (fused, fused_grads), (plain, plain_grads) = results
        torch.testing.assert_close(fused, plain, rtol=1e-10, atol=1e-12)
        for got, expected in zip(fused_grads, plain_grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-12)


def test_switch_autocast_and_compile_paths_use_torch(monkeypatch):
    tensor = torch.zeros(2, 2)
    assert use_fused_edge(tensor, 16)
    monkeypatch.setenv("DYNFORECAST_FUSED", "0")
    assert not use_fused_edge(tensor, 16)
    assert fused_edge_available() == (False, "DYNFORECAST_FUSED=0")
    monkeypatch.delenv("DYNFORECAST_FUSED")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not use_fused_edge(tensor, 16)
    assert not use_fused_edge(tensor.to(torch.bfloat16), 16)
    assert not use_fused_edge(tensor, 32)  # wider layers: torch's path is faster


def test_a_failed_build_falls_back_and_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv("DYNFORECAST_KERNELS", raising=False)
    monkeypatch.setattr(c_kernels, "_builds", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "cache"))
    available, reason = fused_edge_available(torch.float32)
    assert not available
    assert "no-such-compiler" in reason
    assert not use_fused_edge(torch.zeros(1), 16)
    with pytest.raises(RuntimeError, match=r"^fused edge kernel unavailable: .*no-such-compiler"):
        fused_edge_mlp(*[torch.zeros(1)] * 12)
    monkeypatch.delenv("CC")
    monkeypatch.setattr(c_kernels, "_builds", {})
    available, reason = fused_edge_available(torch.float32)  # a fresh build in the new cache
    assert available, reason
    assert list((tmp_path / "cache" / "kernels").glob("edge_mlp-*.so"))


def test_inputs_that_do_not_fit_are_refused():
    hidden = 16
    good = dict(
        receiver=torch.zeros(4, 2, hidden),
        sender=torch.zeros(4, 2, hidden),
        edge_dst=torch.tensor([0, 3]),
        edge_src=torch.tensor([1, 2]),
        radial=torch.zeros(2, 2),
        radial_weight=torch.zeros(hidden),
        edge_term=None,
        w2=torch.zeros(hidden, hidden),
        b2=torch.zeros(hidden),
        w3=torch.zeros(hidden, hidden),
        b3=torch.zeros(hidden),
        w4=torch.zeros(hidden),
    )
    fused_edge_mlp(**good)
    cases = [
        (dict(edge_dst=torch.tensor([0, 4])), r"^edge indices outside \[0, 4\)$"),
        (dict(edge_src=torch.tensor([-1, 0])), r"^edge indices outside \[0, 4\)$"),
        (dict(radial=torch.zeros(2, 3)), r"^expected edge_src \[2\] and radial \[2, 2\]"),
        (dict(sender=torch.zeros(4, 2, 8)), "^expected receiver and sender"),
        (dict(edge_term=torch.zeros(3, hidden)), r"^expected edge_term \[2, 16\]"),
        (dict(w2=torch.zeros(hidden, 8)), r"^expected \[16, 16\] weights"),
        (dict(edge_dst=torch.tensor([0, 3], dtype=torch.int32)), "^expected int64"),
        (dict(radial=torch.zeros(2, 2, dtype=torch.float64)), "^expected CPU tensors of one"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            fused_edge_mlp(**{**good, **change})


def test_the_start_of_run_block_names_the_kernels_each_model_runs(monkeypatch):
    from dataclasses import replace

    from dynforecast.train.config import TrainConfig
    from dynforecast.train.summary import kernel_line

    config = TrainConfig()
    cpu = torch.device("cpu")
    estag, wide_egnn = create_model("estag"), create_model("egnn")
    assert estag.cpu_kernels() == ["edge MLP", "edge geometry", "temporal attention"]
    assert create_model("egnn", hidden_dim=16).cpu_kernels() == ["edge MLP"]
    assert wide_egnn.cpu_kernels() == []
    line = kernel_line(cpu, config, estag.cpu_kernels())
    assert line.startswith("fused C: edge MLP, edge geometry, temporal attention (built with ")
    assert kernel_line(cpu, config, wide_egnn.cpu_kernels()) is None
    assert kernel_line(torch.device("cuda"), config, estag.cpu_kernels()) is None
    compiled = replace(config, optim=replace(config.optim, compile=True))
    assert kernel_line(cpu, compiled, ["edge MLP"]) == (
        "torch ops, compiled by torch.compile (--compile)"
    )
    monkeypatch.setenv("DYNFORECAST_FUSED", "0")
    assert kernel_line(cpu, config, ["edge MLP"]) == "torch ops (DYNFORECAST_FUSED=0)"


def test_an_unwritable_kernel_cache_falls_back_and_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv("DYNFORECAST_KERNELS", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(c_kernels, "_builds", {})
    monkeypatch.setenv("DYNFORECAST_CACHE", str(blocker))
    available, reason = fused_edge_available(torch.float32)
    assert not available
    assert reason.startswith(f"cannot write the kernel cache {blocker / 'kernels'}: ")


def _build_in_a_fresh_process(cache: Path) -> subprocess.CompletedProcess:
    """Load (building if needed) the float64 edge kernel in a new Python process with ``cache``
    as the project cache; its stdout is the build's reason, exit 0 when the kernel loaded."""
    check = (
        "import torch; from dynforecast.ops.fused_edge import fused_edge_available as a; "
        "ok, why = a(torch.float64); print(why); raise SystemExit(0 if ok else 1)"
    )
    env = {**os.environ, "DYNFORECAST_CACHE": str(cache)}
    env.pop("DYNFORECAST_KERNELS", None)
    return subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)


def test_a_truncated_cached_build_is_rebuilt_not_loaded(tmp_path):
    # Each step in a fresh process, as a crash or a full disk would leave the cache between runs
    # (a library already mapped into this process must not be cut under it).
    assert _build_in_a_fresh_process(tmp_path).returncode == 0
    (built,) = (tmp_path / "kernels").glob("edge_mlp-*.so")
    built.write_bytes(built.read_bytes()[:4096])
    result = _build_in_a_fresh_process(tmp_path)
    assert result.returncode == 0, result.stderr  # loading the stub would have been SIGBUS
    assert "building the fused CPU kernel edge_mlp" in result.stderr
    assert built.stat().st_size > 4096


def test_cc_is_split_like_a_shell_and_a_silent_compiler_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("DYNFORECAST_KERNELS", raising=False)
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "a"))
    monkeypatch.setattr(c_kernels, "_builds", {})
    monkeypatch.setenv("CC", "cc -w")  # a command with arguments, as make's convention
    available, reason = fused_edge_available(torch.float32)
    assert available and reason.startswith("built with cc -w "), reason
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "b"))
    monkeypatch.setattr(c_kernels, "_builds", {})
    monkeypatch.setenv("CC", "true")  # exits 0, writes nothing
    available, reason = fused_edge_available(torch.float32)
    assert not available
    assert reason.startswith("true exited with 0 but wrote no edge_mlp-")
    assert reason.count("true exited") == len(c_kernels.FLAG_CHOICES)  # one per flag choice
    monkeypatch.setattr(c_kernels, "_builds", {})
    monkeypatch.setenv("CC", "/nonexistent")
    available, reason = fused_edge_available(torch.float32)
    # the same cause once, not once per flag choice
    assert reason == "/nonexistent: [Errno 2] No such file or directory: '/nonexistent'"


def test_dynforecast_kernels_places_the_builds(monkeypatch, tmp_path):
    monkeypatch.setenv("DYNFORECAST_KERNELS", str(tmp_path / "node-local"))
    assert c_kernels.cache_dir() == tmp_path / "node-local"
    monkeypatch.delenv("DYNFORECAST_KERNELS")
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "cache"))
    assert c_kernels.cache_dir() == tmp_path / "cache" / "kernels"


def test_the_switch_reads_the_usual_words_and_refuses_others(monkeypatch):
    from dynforecast.errors import UsageError

    for off in ("0", "false", "No", "OFF"):
        monkeypatch.setenv("DYNFORECAST_FUSED", off)
        assert c_kernels.kernels_switched_off(), off
        assert fused_edge_available() == (False, f"DYNFORECAST_FUSED={off}")
    for on in ("", "1", "true", "yes", "On"):
        monkeypatch.setenv("DYNFORECAST_FUSED", on)
        assert not c_kernels.kernels_switched_off(), on
    monkeypatch.setenv("DYNFORECAST_FUSED", "flase")
    with pytest.raises(UsageError) as caught:
        fused_edge_available()
    assert str(caught.value) == (
        "environment variable DYNFORECAST_FUSED: expected 0/false/no/off or 1/true/yes/on "
        "(got 'flase')"
    )
    assert caught.value.exit_code == 2


def test_a_failed_build_is_announced_and_quiet_silences_the_notices(monkeypatch, tmp_path, capsys):
    from dynforecast.console import set_quiet

    monkeypatch.delenv("DYNFORECAST_KERNELS", raising=False)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(c_kernels, "_builds", {})
    fused_edge_available(torch.float32)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("building the fused CPU kernel edge_mlp (torch.float32) with ")
    assert lines[1].startswith("the fused CPU kernel edge_mlp (torch.float32) could not be built (")
    assert lines[1].endswith("no-such-compiler'); torch ops run")
    monkeypatch.setattr(c_kernels, "_builds", {})
    set_quiet(True)
    try:
        fused_edge_available(torch.float32)
    finally:
        set_quiet(False)
    assert capsys.readouterr().err == ""


def test_a_cached_build_that_does_not_load_is_rebuilt_with_the_same_flags(tmp_path):
    # A file with a matching sidecar that is not a library (overwritten by hand, a foreign file):
    # it must be rebuilt as it was, not replaced by a weaker build (without OpenMP, say).
    first = _build_in_a_fresh_process(tmp_path)
    assert first.returncode == 0, first.stderr
    (built,) = (tmp_path / "kernels").glob("edge_mlp-*.so")
    built.write_bytes(os.urandom(20000))
    sidecar = built.with_name(built.name + ".sha256")
    sidecar.write_text(c_kernels._digest(built) + "\n")
    again = _build_in_a_fresh_process(tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout  # the same build ("built with ... -fopenmp" here)
    notice, building = again.stderr.strip().splitlines()
    assert notice.startswith(f"the cached kernel {built} does not load (")
    assert notice.endswith("; rebuilding it")
    assert building.startswith("building the fused CPU kernel edge_mlp (torch.float64) with ")
    assert [p.name for p in (tmp_path / "kernels").glob("edge_mlp-*.so")] == [built.name]


def test_the_kernels_line_names_each_build(monkeypatch):
    from dynforecast.ops import fused_edge, fused_geometry, fused_temporal
    from dynforecast.train.config import TrainConfig
    from dynforecast.train.summary import kernel_line

    monkeypatch.setattr(fused_edge, "fused_edge_available", lambda dtype: (True, "built with A"))
    monkeypatch.setattr(
        fused_geometry, "fused_geometry_available", lambda dtype: (True, "built with B")
    )
    monkeypatch.setattr(
        fused_temporal, "fused_temporal_available", lambda dtype: (True, "built with A")
    )
    line = kernel_line(torch.device("cpu"), TrainConfig(), create_model("estag").cpu_kernels())
    assert (
        line == "fused C: edge MLP, temporal attention (built with A); edge geometry (built with B)"
    )
