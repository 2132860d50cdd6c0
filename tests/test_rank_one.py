"""`dynforecast.ops.rank_one`: the same values and gradients as the plain torch expressions.

The ops exist only for speed (benchmarks/speed_models.py), so what must hold is exactness:
float64 gradcheck (first and second order), equality with the expressions they replace in
float32, the in-place contract of `add_outer_`, and refused shapes.
"""

from __future__ import annotations

import pytest
import torch

from dynforecast.ops.rank_one import add_outer_, project


def _inputs(dtype=torch.float64, shape=(7, 3, 5)):
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(shape, dtype=dtype, generator=generator)
    column = torch.randn((*shape[:-1], 1), dtype=dtype, generator=generator)
    row = torch.randn(shape[-1], dtype=dtype, generator=generator)
    return target, column, row


def test_add_outer_gradients_pass_gradcheck():
    target, column, row = (t.requires_grad_() for t in _inputs())

    def f(target, column, row):
        return add_outer_(target * 1.0, column, row)  # a fresh tensor, as the contract asks

    assert torch.autograd.gradcheck(f, (target, column, row))
    assert torch.autograd.gradgradcheck(f, (target, column, row))


def test_project_gradients_pass_gradcheck():
    features, _, row = _inputs()
    features.requires_grad_()
    row.requires_grad_()
    assert torch.autograd.gradcheck(project, (features, row))
    assert torch.autograd.gradgradcheck(project, (features, row))


def test_float32_values_and_gradients_equal_the_plain_expressions():
    target, column, row = (t.float() for t in _inputs(shape=(50, 10, 16)))
    leaves = [t.clone().requires_grad_() for t in (target, column, row)]
    plain = [t.clone().requires_grad_() for t in (target, column, row)]
    mine = project(torch.sin(add_outer_(leaves[0] * 1.0, leaves[1], leaves[2])), leaves[2])
    theirs = torch.sin(plain[0] * 1.0 + plain[1] * plain[2]) @ plain[2].unsqueeze(1)
    torch.testing.assert_close(mine, theirs)
    mine.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    for a, b in zip(leaves, plain, strict=True):  # float32 sums in another order
        torch.testing.assert_close(a.grad, b.grad, rtol=2e-5, atol=1e-6 * b.grad.abs().max())


def test_add_outer_writes_into_its_target():
    target, column, row = _inputs()
    expected = target + column * row
    result = add_outer_(target, column, row)
    assert result.data_ptr() == target.data_ptr()
    torch.testing.assert_close(target, expected)


@pytest.mark.parametrize(
    ("column_shape", "row_shape"), [((7, 3, 2), (5,)), ((7, 1), (5,)), ((7, 3, 1), (4,))]
)
def test_add_outer_refuses_mismatched_shapes(column_shape, row_shape):
    with pytest.raises(ValueError, match=r"expected column \(7, 3, 1\) and row \(5,\)"):
        add_outer_(torch.zeros(7, 3, 5), torch.zeros(column_shape), torch.zeros(row_shape))


def test_project_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"expected features \[\.\.\., 4\] and weight \[H\]"):
        project(torch.zeros(3, 5), torch.zeros(4))


def test_add_outer_compiles_without_graph_breaks_and_the_same_gradients():
    """Under torch.compile (``train --compile``) the op must not split the graph: a break per
    layer cost the compiled ESTAG step most of its fusion. Dynamo and AOT autograd only (no C++
    build), compared with eager on values and all three gradients."""

    def f(target, column, row):
        pre = target * 2.0
        add_outer_(pre, column, row)
        return (pre.sin() * pre).sum()

    explanation = torch._dynamo.explain(f)(*_inputs(torch.float32))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0)
    eager_inputs = [t.requires_grad_() for t in _inputs(torch.float32)]
    compiled_inputs = [t.requires_grad_() for t in _inputs(torch.float32)]
    eager = f(*eager_inputs)
    eager.backward()
    torch._dynamo.reset()
    compiled = torch.compile(f, backend="aot_eager")(*compiled_inputs)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    for ours, expected in zip(compiled_inputs, eager_inputs, strict=True):
        torch.testing.assert_close(ours.grad, expected.grad)
