"""The ESTAG speed table says where its reference figures come from, and the same-run helpers
(benchmarks/reference_estag.py) alternate the two models and reshape inputs like the reference."""

from __future__ import annotations

import torch

from benchmarks.model_timing import Timing
from benchmarks.reference_estag import _einops_stand_in, _interleaved_medians
from benchmarks.speed_models import REFERENCE_ESTAG_MS, row


def test_rows_label_spec_figures_and_same_run_figures() -> None:
    timing = Timing(threads=1, batch_size=100, forward_ms=20.0, forward_backward_ms=60.0)
    spec = row("estag", timing)
    assert spec["reference_source"] == "spec figures, not re-measured"
    assert spec["reference_forward_ms"] == REFERENCE_ESTAG_MS[1][0]
    measured = row("estag", timing, (40.0, 120.0))
    assert measured["reference_source"] == "same run"
    assert (measured["forward_ratio"], measured["forward_backward_ratio"]) == (0.5, 0.5)
    assert "reference_source" not in row("egnn", timing)


def test_interleaved_medians_alternate_the_two_functions() -> None:
    calls: list[str] = []
    _interleaved_medians(lambda: calls.append("ours"), lambda: calls.append("ref"), 3, 1)
    assert calls == ["ours", "ref"] * 4


def test_einops_stand_in_matches_the_reference_layouts() -> None:
    rearrange = _einops_stand_in().rearrange
    frames, graphs, nodes = 4, 3, 5
    x = torch.randn(frames, graphs * nodes, 3)
    grouped = rearrange(x, "t (b n) d -> t b n d", n=nodes)
    assert torch.equal(grouped[:, 1, 2], x[:, 1 * nodes + 2])
    per_node = rearrange(grouped, "t b n d -> (b n) d t")
    assert torch.equal(per_node[1 * nodes + 2], x[:, 1 * nodes + 2].t())


def test_rows_say_whether_the_model_was_compiled() -> None:
    timing = Timing(threads=1, batch_size=100, forward_ms=20.0, forward_backward_ms=60.0)
    eager = row("egnn", timing)
    assert eager["mode"] == "eager" and "compile_s" not in eager
    fast = row("estag", timing, (40.0, 120.0), mode="compile", compile_s=12.34)
    assert (fast["mode"], fast["compile_s"], fast["reference_source"]) == (
        "compile",
        12.3,
        "same run",
    )
