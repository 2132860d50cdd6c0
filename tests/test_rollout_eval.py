"""evaluate --rollout, the batched rollout, the linear baseline, ensembles and the plot.

One small N-body file and two 1-epoch EGNN members (`train --seeds 2`, next-frame windows) are
shared by the module; the rest builds its data in memory.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.io.h5md import read_h5md, read_observable, write_h5md
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import create_model
from dynforecast.models.baselines import fit_linear
from dynforecast.models.symmetry import random_orthogonal
from dynforecast.predict import rollout
from dynforecast.rollout import RolloutBatcher, RolloutPlan, advance
from dynforecast.rollout_metrics import RolloutGeometry, step_errors, trust_horizon

runner = CliRunner()
ONE_FRAME_AHEAD = ("--set", "window.horizon=1")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 12, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    result = invoke(
        "train", data, "--model", "egnn", "--out", root / "ens", "--epochs", 1, "--seeds", 2,
        *ONE_FRAME_AHEAD,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("egnn, 1 epoch") == 2
    return root, data, root / "ens" / "seed-0", root / "ens" / "seed-1"


def rollout_json(*args: object) -> dict:
    result = invoke("evaluate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_step_one_of_a_rollout_is_evaluates_one_step_error(members):
    """Same windows (all, next-frame targets): rollout step 1 = evaluate's one-step MSE, for the
    model and every baseline."""
    _, data, run, _ = members
    one_step = rollout_json(run, data, "--split", "all")
    rolled = rollout_json(run, data, "--split", "all", "--rollout", 1)
    assert rolled["starts"] == one_step["windows"]
    np.testing.assert_allclose(rolled["metrics"]["model"]["mse"][0], one_step["mse"], rtol=1e-5)
    for name in ("stay", "constant_velocity", "linear"):
        np.testing.assert_allclose(
            rolled["metrics"][name]["mse"][0], one_step["baselines"][name], rtol=1e-5
        )


def test_rollout_report_shape_trust_horizon_and_plot(members, tmp_path):
    _, data, run, _ = members
    plot = tmp_path / "errors.png"
    report = rollout_json(run, data, "--rollout", 8, "--starts", 5, "--plot", plot)
    assert report["starts"] == 5 and report["steps"] == 8 and report["split"] == "test"
    assert report["window"] == {
        "past_frames": 10, "spacing": 1, "horizon": 1, "grid": 1, "frames_per_call": 1,
        "given_frames": 10,
    }  # fmt: skip
    assert set(report["metrics"]) == {"model", "stay", "constant_velocity", "linear"}
    for values in report["metrics"].values():
        assert len(values["mse"]) == 8 and values["stopped"] == [0.0] * 8
        assert values["rmsd_superposed"] is None  # N-body particles are not atoms
        assert values["bond_error"] is None  # nor bonded
    cv = np.array(report["metrics"]["constant_velocity"]["mse"])
    assert report["threshold"] == pytest.approx(cv[0])
    assert report["threshold_source"] == "constant_velocity one-step MSE"
    median = np.array(report["metrics"]["model"]["median_mse"])
    steps = report["trust_horizon"]["model"]["steps"]
    assert (median[:steps] < report["threshold"]).all()
    assert steps == 8 or median[steps] >= report["threshold"]
    assert report["trust_horizon"]["model"]["time"] == pytest.approx(steps * 0.1)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size < 200_000
    from dynforecast.plot import plot_rollout

    labels = plot_rollout(report, tmp_path / "again.png")
    assert labels == ["egnn", "stay", "constant velocity", "linear", "threshold"] + (
        [f"trust horizon {steps} steps"] if steps else []
    )
    table = invoke("evaluate", run, data, "--rollout", 8, "--starts", 5)
    assert "trust horizon (median MSE below" in table.stdout
    assert "vs constant_velocity" in table.stdout
    assert "(steps 1, 2, 3, 5, 8 of 8 shown; --json has every step)" in table.stdout


def test_rollout_table_words_a_baseline_never_beaten_and_one_step(members):
    from dynforecast.evaluate_rollout import table

    _, data, run, _ = members
    report = rollout_json(run, data, "--rollout", 3, "--starts", 2)
    report["stops_beating"] = {"stay": 1, "constant_velocity": 2, "linear": None}
    report["trust_horizon"]["model"] = {"steps": 1, "time": 1.0}
    lines = table(report).splitlines()
    assert "  vs stay            does not beat it (worse from step 1)" in lines
    assert "  vs constant_velocity stops beating it at step 2" in lines
    assert "  vs linear          beats it at every step" in lines
    model = report["model"]
    assert any(line.startswith(f"  {model:<18}      1 step  ") for line in lines), lines
    assert not any("shown; --json" in line for line in lines)  # 3 steps: every one is a row


def test_custom_trust_threshold(members):
    _, data, run, _ = members
    report = rollout_json(run, data, "--rollout", 4, "--starts", 3, "--trust-threshold", 1e9)
    assert report["threshold"] == 1e9 and report["trust_horizon"]["model"]["steps"] == 4
    assert report["threshold_source"] == "--trust-threshold"


def test_ensemble_of_two_identical_checkpoints_has_zero_spread_and_one_members_error(
    members, tmp_path
):
    _, data, run, _ = members
    twin = tmp_path / "twin.pt"
    shutil.copy(run / "best.pt", twin)
    single = rollout_json(run, data, "--rollout", 5, "--starts", 4)
    pair = rollout_json(run, "--checkpoint", twin, data, "--rollout", 5, "--starts", 4)
    assert pair["members"] == 2
    np.testing.assert_allclose(pair["metrics"]["model"]["mse"], single["metrics"]["model"]["mse"])
    assert pair["calibration"]["spread"] == [0.0] * 5
    assert pair["calibration"]["correlation"] == [None] * 5  # constant spread: undefined
    out = tmp_path / "f.h5"
    result = invoke(
        "predict", data, "--checkpoint", run, "--checkpoint", twin, "--steps", 3, "-o", out,
        "--export", tmp_path / "f.pdb",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    spread = read_observable(out, system.name, "spread")
    assert spread.shape == (system.n_frames, system.n_particles) and not spread.any()
    alone = tmp_path / "alone.h5"
    assert invoke("predict", data, "--checkpoint", run, "--steps", 3, "-o", alone).exit_code == 0
    np.testing.assert_array_equal(read_h5md(alone)[0].positions, system.positions)
    assert read_observable(alone, system.name, "spread") is None


def test_ensemble_of_two_seeds_reports_calibration_and_pdb_bfactors(members, tmp_path):
    _, data, first, second = members
    report = rollout_json(first, second, data, "--rollout", 4, "--starts", 6)
    calibration = report["calibration"]
    assert all(s > 0 for s in calibration["spread"])
    assert all(0.0 <= f <= 1.0 for f in calibration["inside_2sd"])
    assert all(-1.0 <= c <= 1.0 for c in calibration["correlation"])
    assert {"member_0", "member_1"} <= set(report["metrics"])
    out, pdb = tmp_path / "f.h5", tmp_path / "f.pdb"
    result = invoke(
        "predict", data, "--checkpoint", first, "--checkpoint", second, "--steps", 3, "-o", out,
        "--export", pdb,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    spread = read_observable(out, system.name, "spread")
    assert not spread[:-3].any() and (spread[-3:] > 0).all()
    atoms = [line for line in pdb.read_text().splitlines() if line.startswith("ATOM")]
    last_model = np.array([float(line[60:66]) for line in atoms[-system.n_particles :]])
    np.testing.assert_allclose(last_model, spread[-1], atol=0.006)  # F6.2, dimensionless data


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("--plot", "x.png"), "error: --plot needs --rollout K", 2),
        (("--rollout", 500), "error: --rollout 500: no start window of the split leaves room", 2),
        (("--rollout", 2, "--starts", 0), "error: --starts 0: expected at least 1", 2),
        (("--rollout", 0), "error: --rollout 0: expected at least 1", 2),
        (("--rollout", 2, "--plot", "x.jpg"), "error: --plot x.jpg: expected a .png file name", 2),
        (("--rollout", 2, "--trust-threshold", -1), "error: --trust-threshold -1.0: expected a", 2),
    ],
)
def test_rollout_option_errors(members, args, message, code):
    _, data, run, _ = members
    result = invoke("evaluate", run, data, *args)
    assert result.exit_code == code and result.stderr.startswith(message), result.stderr


def test_ensemble_errors(members, tmp_path):
    root, data, run, _ = members
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("evaluate", run, empty, data)
    assert result.exit_code == 3
    assert result.stderr == f"error: {empty}: not a run directory (no best.pt or last.pt in it)\n"
    result = invoke("evaluate", run, run / "best.pt", data)
    assert result.exit_code == 2 and "the same checkpoint is given twice" in result.stderr
    other = root / "other"
    trained = invoke(
        "train", data, "--model", "egnn", "--out", other, "--epochs", 1, "--set", "window.horizon=2"
    )
    assert trained.exit_code == 0, trained.stderr
    result = invoke("evaluate", run, other, data, "--rollout", 2)
    assert result.exit_code == 5
    assert result.stderr.startswith(f"error: {other / 'best.pt'}: its window differs from ")


# In memory -----------------------------------------------------------------------------------

DT = 0.5


def moving_system(name: str, n: int, frames: int, seed: int, *, rotate: bool = False) -> Trajectory:
    """Straight-line motion (or a rigid rotation about z with drift) of a bonded chain of atoms."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(n, 3))
    velocity = 0.3 * rng.normal(size=(1 if rotate else n, 3))
    time = DT * np.arange(frames)
    if rotate:
        angle = 0.2 * time
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.zeros((frames, 3, 3))
        rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = c, -s, s, c
        rotation[:, 2, 2] = 1.0
        positions = np.einsum("fij,nj->fni", rotation, start) + velocity * time[:, None, None]
    else:
        positions = start[None] + velocity[None] * time[:, None, None]
    return Trajectory(
        name=name,
        positions=positions.astype(np.float32),
        species=np.full(n, 6, np.int32),
        time=time,
        step=np.arange(frames, dtype=np.int64),
        length_unit="nm",
        time_unit="ps",
        bonds=np.stack([np.arange(n - 1), np.arange(1, n)], axis=1).astype(np.int32),
    )


def batched(model, systems, rollout_system, last, spec, steps, graph=GraphSpec("all_pairs")):
    plan = RolloutPlan.for_spec(spec)
    batcher = RolloutBatcher(
        systems, rollout_system, graph, node_attr_width=0, past_dt=spec.spacing * DT,
        target_dt=spec.target_offset * DT, device=torch.device("cpu"), dtype=torch.float32,
    )  # fmt: skip
    offsets = -plan.lead + plan.grid * np.arange(plan.given + steps)
    frames = [systems[s].positions[f + offsets] for s, f in zip(rollout_system, last, strict=True)]
    frames = torch.from_numpy(np.concatenate(frames, axis=1))
    result = advance(
        model, batcher, plan, frames[: plan.given], None, steps=steps, grid_dt=plan.grid * DT
    )
    return result, frames, batcher, plan


def test_batched_rollouts_equal_single_rollouts_of_predict():
    """Starts of systems of different sizes in one batch give exactly predict's rollouts."""
    torch.manual_seed(0)
    systems = [moving_system("a", 4, 30, 1), moving_system("b", 6, 30, 2)]
    spec = WindowSpec(3, 2, horizon=3)  # grid 1, three frames per call
    model = create_model("egnn", hidden_dim=8, num_layers=2)
    starts_system, starts_last = np.array([0, 0, 1]), np.array([9, 12, 10])
    result, *_ = batched(model, systems, starts_system, starts_last, spec, 7)
    node = 0
    for s, last in zip(starts_system, starts_last, strict=True):
        alone = rollout(model, systems[s], spec, GraphSpec("all_pairs"), start=int(last), steps=7)
        n = systems[s].n_particles
        np.testing.assert_allclose(
            result.positions[:, node : node + n].numpy(), alone.trajectory.positions, atol=1e-6
        )
        node += n


def test_stay_equals_last_frame_and_constant_velocity_is_exact_on_lines():
    systems = [moving_system("a", 3, 40, 3), moving_system("b", 5, 40, 4)]
    spec = WindowSpec(2, 1)
    starts = (np.array([0, 1, 1]), np.array([5, 9, 20]))
    stay, frames, batcher, plan = batched(create_model("stay"), systems, *starts, spec, 12)
    last_given = frames[plan.given - 1]
    assert torch.equal(stay.positions[plan.given :], last_given.expand(12, -1, -1))
    cv, frames, batcher, plan = batched(
        create_model("constant_velocity"), systems, *starts, spec, 12
    )
    geometry = RolloutGeometry(
        batcher.node_rollout, 3, np.zeros((0, 2)), frames[: plan.given], superpose=True
    )
    errors = step_errors(geometry, cv.positions[plan.given :], frames[plan.given :])
    assert errors.mse.shape == (12, 3) and errors.mse.max() < 1e-9
    assert errors.rmsd_superposed.max() < 1e-4


def test_bond_error_is_zero_for_a_rigid_rotation_and_superposed_rmsd_sees_through_it():
    system = moving_system("r", 6, 20, 5, rotate=True)
    given = torch.from_numpy(system.positions[:2])
    node_rollout = torch.zeros(6, dtype=torch.long)
    geometry = RolloutGeometry(node_rollout, 1, system.bonds, given, superpose=True)
    truth = given[1:].expand(4, -1, -1)
    rotation = random_orthogonal(torch.float32, torch.Generator().manual_seed(0))
    predicted = truth @ rotation.T + torch.tensor([1.0, -2.0, 0.5])
    errors = step_errors(geometry, predicted, truth)
    assert errors.bond_error.max() < 1e-6 and abs(errors.rg_drift).max() < 1e-6
    assert errors.rmsd.min() > 0.5 and errors.rmsd_superposed.max() < 1e-5
    stretched = step_errors(geometry, truth * 1.1, truth)
    np.testing.assert_allclose(stretched.bond_error, 0.1, rtol=1e-5)
    np.testing.assert_allclose(stretched.rg_drift, 0.1, rtol=1e-5)


class _NaNForBigSystems(torch.nn.Module):
    """Stays, except that windows with more than 4 nodes turn NaN from the 3rd call on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        out = batch.positions[:, -1].clone()
        sizes = torch.bincount(batch.node_graph)[batch.node_graph]
        if self.calls >= 3:
            out[sizes > 4] = float("nan")
        return out


def test_the_guard_stops_only_the_diverging_rollouts():
    systems = [moving_system("a", 3, 30, 3), moving_system("b", 5, 30, 4)]
    result, *_ = batched(
        _NaNForBigSystems(), systems, np.array([0, 1, 0, 1]), np.array([3, 4, 5, 6]),
        WindowSpec(2, 1), 6,
    )  # fmt: skip
    assert result.predicted.tolist() == [6, 2, 6, 2]
    assert result.divergence(1) == "step 3 of 6 gave non-finite coordinates"
    assert result.divergence(0) is None and torch.isfinite(result.positions).all()


def test_linear_baseline_recovers_autoregressive_weights():
    """x_{t+1} = x_t + 0.3 (x_{t-1} - x_{t-2}) + 0.5 (x_t - x_{t-1}): the fit finds (0.3, 0.5)."""
    rng = np.random.default_rng(0)
    frames, n = 40, 6
    x = np.zeros((frames, n, 3))
    x[:3] = rng.normal(size=(3, n, 3))
    for t in range(2, frames - 1):
        x[t + 1] = x[t] + 0.3 * (x[t - 1] - x[t - 2]) + 0.5 * (x[t] - x[t - 1])
    system = dataclasses_replace(moving_system("ar", n, frames, 0), positions=x.astype(np.float32))
    dataset = WindowDataset([system], WindowSpec(3, 1), GraphSpec("all_pairs"))
    model = fit_linear(dataset, np.arange(len(dataset)))
    np.testing.assert_allclose(model.config["weights"], [0.3, 0.5], atol=1e-4)
    assert model.config["velocity_weight"] == 0.0
    assert create_model("linear", **{k: v for k, v in model.config.items() if k != "name"})


def test_linear_without_fit_is_constant_velocity_and_refuses_other_window_lengths():
    systems = [moving_system("a", 3, 20, 3)]
    dataset = WindowDataset(systems, WindowSpec(3, 1), GraphSpec("all_pairs"))
    batch = dataset.batch(np.arange(4))
    assert torch.allclose(create_model("linear")(batch), create_model("constant_velocity")(batch))
    with pytest.raises(ValueError, match="expected 2 past frames for the fitted linear model"):
        create_model("linear", weights=[1.0])(batch)


def test_trust_horizon_counts_leading_steps_below_threshold():
    assert trust_horizon(np.array([0.1, 0.2, 5.0, 0.1]), 1.0) == 2
    assert trust_horizon(np.array([2.0, 0.1]), 1.0) == 0
    assert trust_horizon(np.array([0.1, 0.2]), 1.0) == 2
    assert trust_horizon(np.array([0.1, np.inf]), 1.0) == 1


def test_h5md_spread_observable_roundtrip(tmp_path):
    system = moving_system("a", 3, 5, 0)
    spread = np.arange(15, dtype=np.float32).reshape(5, 3)
    write_h5md(tmp_path / "s.h5", [system], spread={"a": spread})
    np.testing.assert_array_equal(read_observable(tmp_path / "s.h5", "a", "spread"), spread)


def dataclasses_replace(system: Trajectory, **changes: object) -> Trajectory:
    import dataclasses

    return dataclasses.replace(system, **changes)
