"""Issue 9 item 5: rollouts of skeletons keep their bone lengths (dynforecast/rigid_bones.py).

The projection itself (lengths, directions, roots, equivariance, zero-length bones, bad
hierarchies), then through the CLI on the BVH arm clip of `data_kinds`: predict and
evaluate --rollout keep every bone within 1% of its length over 60 steps by default, record the
choice, and drift without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from data_kinds import make_kind
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.errors import UsageError
from dynforecast.io.h5md import read_h5md
from dynforecast.models.symmetry import random_orthogonal
from dynforecast.rigid_bones import (
    RigidBones,
    bone_length_error,
    concatenated_bonds,
    depth_levels,
    parent_array,
    resolve_rigid_bones,
)

runner = CliRunner()
#: A branching tree: 0 -> 1 -> 2 -> 3, 1 -> 4, 0 -> 5 (depths 1, 2, 3).
BONES = np.array([[0, 1], [1, 2], [2, 3], [1, 4], [0, 5]])


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _given(rng: np.random.Generator, frames: int = 3) -> torch.Tensor:
    base = rng.normal(size=(6, 3)) * 5.0
    return torch.as_tensor(base[None] + 0.01 * rng.normal(size=(frames, 6, 3)))


def _lengths(frames: torch.Tensor, bonds: np.ndarray) -> torch.Tensor:
    return (frames[..., bonds[:, 1], :] - frames[..., bonds[:, 0], :]).norm(dim=-1)


def test_projection_restores_every_bone_length_and_keeps_directions_and_roots(rng):
    given = _given(rng)
    bones = RigidBones.from_bonds(BONES, given)
    predicted = given[-1] + torch.as_tensor(
        rng.normal(size=(4, 7, 6, 3))
    )  # [4, 7] leading frames/rollouts
    projected = bones.project(predicted)
    reference = _lengths(given, BONES).mean(dim=0)
    torch.testing.assert_close(_lengths(projected, BONES), reference.expand(4, 7, -1))
    torch.testing.assert_close(projected[..., 0, :], predicted[..., 0, :])  # the root stays
    direction = lambda x: torch.nn.functional.normalize(  # noqa: E731
        x[..., BONES[:, 1], :] - x[..., BONES[:, 0], :], dim=-1
    )
    torch.testing.assert_close(direction(projected), direction(predicted))
    assert float(bone_length_error(projected.reshape(-1, 6, 3), bones).max()) < 1e-12


def test_projection_commutes_with_rotations_reflections_and_translations(rng):
    given = _given(rng)
    predicted = given[-1] + torch.as_tensor(rng.normal(size=(5, 6, 3)))
    rotation = random_orthogonal(given.dtype, torch.Generator().manual_seed(3), reflection=True)
    shift = torch.as_tensor(rng.normal(size=3))
    moved = RigidBones.from_bonds(BONES, given @ rotation.T + shift)
    expected = RigidBones.from_bonds(BONES, given).project(predicted) @ rotation.T + shift
    torch.testing.assert_close(moved.project(predicted @ rotation.T + shift), expected)


def test_a_bone_predicted_with_zero_length_keeps_its_last_given_direction(rng):
    given = _given(rng)
    bones = RigidBones.from_bonds(BONES, given)
    predicted = given[-1].clone()
    predicted[3] = predicted[2]  # bone 2 -> 3 collapsed
    projected = bones.project(predicted)
    last = given[-1, 3] - given[-1, 2]
    torch.testing.assert_close(projected[3] - projected[2], bones.length[3] * last / last.norm())


def test_hierarchy_levels_and_refusals():
    parent = parent_array(BONES, 6)
    assert parent.tolist() == [-1, 0, 1, 2, 1, 0]
    assert [level.tolist() for level in depth_levels(parent)] == [[1, 5], [2, 4], [3]]
    with pytest.raises(UsageError, match="two parent bones"):
        parent_array(np.array([[0, 1], [2, 1]]), 3)
    with pytest.raises(UsageError, match="cycle"):
        depth_levels(parent_array(np.array([[0, 1], [1, 2], [2, 0]]), 3))


def test_rollouts_of_several_systems_are_laid_out_like_the_batcher():
    from dataclasses import replace

    from datafactory import make_system

    arm = replace(make_system("arm", 2, 3), bonds=np.array([[0, 1], [1, 2]], np.int32))
    stick = replace(make_system("stick", 2, 2), bonds=np.array([[0, 1]], np.int32))
    # rollouts: stick (nodes 0-1), arm (2-4), stick (5-6)
    bonds = concatenated_bonds([arm, stick], np.array([1, 0, 1]))
    assert bonds.tolist() == [[2, 3], [3, 4], [0, 1], [5, 6]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("arm")
    data = make_kind("clip", root)
    assert data is not None
    run = root / "run"
    result = invoke("train", data, "--epochs", 3, "--out", run)
    assert result.exit_code == 0, result.stderr
    return data, run


def _bone_deviation(path: Path) -> float:
    """Largest |length / hierarchy length - 1| over the predicted frames of a forecast file."""
    (forecast,) = read_h5md(path)
    offsets = np.asarray(forecast.parameters["bvh_offsets"], dtype=np.float64).reshape(-1, 3)
    bonds = np.asarray(forecast.bonds, dtype=np.int64)
    hierarchy = np.linalg.norm(offsets[bonds[:, 1]], axis=1)
    positions = np.asarray(forecast.positions, dtype=np.float64)
    lengths = np.linalg.norm(positions[:, bonds[:, 1]] - positions[:, bonds[:, 0]], axis=-1)
    return float(np.abs(lengths / hierarchy - 1.0).max())


def test_a_60_step_rollout_keeps_every_bone_within_1_percent(trained, tmp_path):
    data, run = trained
    result = invoke("predict", data, "--checkpoint", run, "--steps", 60, "-o", tmp_path / "f.h5")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.rstrip().endswith("+ 60 predicted, every stored frame, bones kept rigid")
    assert "rigid bones: on" in result.stderr
    assert _bone_deviation(tmp_path / "f.h5") < 0.01
    (forecast,) = read_h5md(tmp_path / "f.h5")
    assert int(np.asarray(forecast.parameters["rigid_bones"]).ravel()[0]) == 1


def test_without_rigid_bones_the_bones_drift_and_the_output_says_so(trained, tmp_path):
    data, run = trained
    out = tmp_path / "free.h5"
    result = invoke(
        "predict", data, "--checkpoint", run, "--steps", 60, "-o", out, "--no-rigid-bones"
    )
    assert result.exit_code == 0, result.stderr
    assert "bones kept rigid" not in result.stdout
    (forecast,) = read_h5md(out)
    assert int(np.asarray(forecast.parameters["rigid_bones"]).ravel()[0]) == 0
    drift = _bone_deviation(out)
    print(f"60-step bone drift without rigid bones: {drift:.3g}")
    assert drift > 0.01  # what the projection removes


def test_evaluate_rollout_measures_bone_error_with_rigid_bones_by_default(trained):
    data, run = trained
    reports = {}
    for flag in ((), ("--no-rigid-bones",)):
        result = invoke("evaluate", run, data, "--rollout", 60, "--split", "all", "--json", *flag)
        assert result.exit_code == 0, result.stderr
        reports[flag] = json.loads(result.stdout)
    rigid, free = reports[()], reports[("--no-rigid-bones",)]
    assert rigid["rigid_bones"] is True and free["rigid_bones"] is False
    assert max(rigid["metrics"]["model"]["bond_error"]) < 1e-3
    assert free["metrics"]["model"]["bond_error"][-1] > 10 * max(
        rigid["metrics"]["model"]["bond_error"]
    )
    table = invoke("evaluate", run, data, "--rollout", 5)
    assert "bones kept rigid" in table.stdout.splitlines()[0]


def test_rigid_bones_are_refused_on_data_that_is_not_a_skeleton(tmp_path):
    path = make_kind("molecule", tmp_path)
    assert path is not None
    run = tmp_path / "run"
    assert invoke("train", path, "--epochs", 1, "--out", run).exit_code == 0
    result = invoke(
        "predict", path, "--checkpoint", run, "--steps", 2, "-o", tmp_path / "f.h5", "--rigid-bones"
    )
    assert result.exit_code == 2
    assert "--rigid-bones: the data is not a skeleton (BVH or ASF/AMC input)" in result.stderr
    assert not (tmp_path / "f.h5").exists()
    plain = invoke("predict", path, "--checkpoint", run, "--steps", 2, "-o", tmp_path / "g.h5")
    assert plain.exit_code == 0, plain.stderr
    assert "rigid" not in plain.stderr
    result = invoke("evaluate", run, path, "--no-rigid-bones")
    assert result.exit_code == 2 and "needs --rollout K" in result.stderr


def test_asf_amc_input_counts_as_a_skeleton():
    from dataclasses import replace

    from datafactory import make_system

    system = make_system("s", 3, 4)
    assert resolve_rigid_bones(None, [system]) is False
    assert resolve_rigid_bones(None, [replace(system, parameters={"asf_text": "x"})]) is True
    assert resolve_rigid_bones(False, [replace(system, parameters={"bvh_parents": [0]})]) is False
