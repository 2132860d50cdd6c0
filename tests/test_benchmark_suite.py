"""The benchmark tables' machinery: cell planning, Markdown aggregation, data preparation."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from benchmarks import md17_xtb, suite
from benchmarks.run import plan
from benchmarks.tables import BEGIN, END, replace_block, table_markdown
from dynforecast.io.bvh import format_bvh, read_bvh
from dynforecast.io.bvh_synthetic import random_motion, random_skeleton
from dynforecast.io.h5md import read_h5md


def _record(model, seed, mse, baselines=None, split="md17_reference"):
    return {
        "table": "md17",
        "dataset": "md17-ethanol",
        "split": split,
        "model": model,
        "seed": seed,
        "epochs": 5,
        "test_mse": mse,
        "baselines": baselines or {"stay": 0.004, "constant_velocity": 0.002},
        "seconds": 10.0,
        "machine": {"cpu": "x", "cores": 2, "torch": "2"},
    }


def test_table_rows_mean_sd_and_unit_scale():
    records = [_record("estag", 0, 1e-4), _record("estag", 1, 3e-4), _record("egnn", 0, 5e-4)]
    lines = table_markdown("md17", records).splitlines()
    estag = next(line for line in lines if "| estag |" in line)
    # x10^-3 Angstrom^2: mean 0.2, sample sd 0.1414
    assert estag.split("|")[4].strip() == "0.2"
    assert estag.split("|")[5].strip() == "0.1414"
    assert estag.split("|")[6].strip() == "0,1"
    egnn = next(line for line in lines if "| egnn |" in line)
    assert egnn.split("|")[5].strip() == "-"  # one seed: no spread
    stay = next(line for line in lines if "| stay |" in line)
    assert stay.split("|")[4].strip() == "4"
    assert not any("| linear |" in line for line in lines)  # not reported, not invented


def test_seeds_on_an_earlier_realisation_of_regenerated_data_are_not_averaged_in():
    def on(checksum, finished, model, seed, mse, stay):
        record = _record(model, seed, mse, {"stay": stay, "constant_velocity": 1.0})
        record.update(config={"data_checksum": checksum}, finished=finished)
        return record

    records = [
        on("old", "2026-12-06 10:00:00", "estag", 0, 9e-4, 0.009),  # other data: other baseline
        on("new", "2026-12-07 10:00:00", "estag", 1, 1e-4, 0.004),
        on("renamed", "2026-12-07 11:00:00", "estag", 2, 3e-4, 0.004),  # metadata-only change
        on("new", "2026-12-07 12:00:00", "egnn", 0, 5e-4, 0.004),
        on("new", "2026-12-07 12:00:00", "egnn_paper", 0, 6e-4, 0.005),  # its own window
    ]
    lines = table_markdown("md17", records).splitlines()
    estag = next(line for line in lines if "| estag |" in line)
    assert estag.split("|")[4].strip() == "0.2"  # seeds 1 and 2 only
    assert estag.split("|")[6].strip() == "1,2"
    assert next(line for line in lines if "| egnn_paper |" in line).split("|")[6].strip() == "0"
    stay = next(line for line in lines if "| stay |" in line)
    assert stay.split("|")[4].strip() == "4"  # the current data's baseline
    assert lines[-1] == (
        "Left out (trained on an earlier realisation of regenerated data): "
        "md17-ethanol md17_reference estag seed 0."
    )


def test_models_scored_on_different_data_are_flagged_as_not_comparable():
    estag = _record("estag", 0, 1e-4, {"stay": 0.004, "constant_velocity": 1.0})
    egnn = _record("egnn", 0, 2e-4, {"stay": 0.005, "constant_velocity": 1.0})
    lines = table_markdown("md17", [estag, egnn]).splitlines()
    assert lines[-1] == (
        "Not comparable yet: the models of md17-ethanol md17_reference were scored on different "
        "realisations of the data (stay MSE 4, 5); the baseline rows are one of them."
    )
    assert not any(
        "Not comparable" in line for line in table_markdown("md17", [estag]).splitlines()
    )
    # realisations that agree to four digits are still shown as two numbers
    close = _record("egnn", 0, 2e-4, {"stay": 0.00069297621, "constant_velocity": 1.0})
    closer = _record("estag", 0, 1e-4, {"stay": 0.00069297509, "constant_velocity": 1.0})
    assert "(stay MSE 0.692975, 0.692976)" in table_markdown("md17", [close, closer])


def test_seeds_of_a_seeded_split_are_one_realisation_when_the_file_is_the_same():
    """A random split (the --quick stand-in for ESTAG's MD17 split) gives each seed its own test
    windows, hence its own stay MSE: the data file's checksum decides, not the stay."""

    def on(checksum, seed, mse, stay):
        record = _record("estag", seed, mse, {"stay": stay, "constant_velocity": 1.0})
        split = {"data": {"split": {"mode": "random"}}}
        record.update(config={"data_checksum": checksum, "train_config": split})
        record["finished"] = f"2026-12-07 1{seed}:00:00"
        return record

    same = [on("abcdef0123", 0, 1e-4, 0.004), on("abcdef0123", 1, 3e-4, 0.005)]
    lines = table_markdown("md17", same).splitlines()
    estag = next(line for line in lines if "| estag |" in line)
    assert estag.split("|")[6].strip() == "0,1"
    assert not any("Left out" in line or "Not comparable" in line for line in lines)
    other = [same[0], on("99887766aa", 1, 3e-4, 0.005)]
    lines = table_markdown("md17", other).splitlines()
    assert next(line for line in lines if "| estag |" in line).split("|")[6].strip() == "1"
    assert lines[-1] == (
        "Left out (trained on an earlier realisation of regenerated data): "
        "md17-ethanol md17_reference estag seed 0."
    )


def test_replace_block_keeps_the_rest():
    text = f"head\n{BEGIN}\nold\n{END}\ntail\n"
    assert replace_block(text, "new") == f"head\n{BEGIN}\nnew\n{END}\ntail\n"
    with pytest.raises(ValueError):
        replace_block("no markers", "new")


def test_quick_tables_go_to_stdout_and_leave_the_readme_alone(tmp_path, monkeypatch, capsys):
    from benchmarks import tables

    quick = tmp_path / "results-quick" / "md17" / "md17-ethanol" / "md17_reference"
    quick.mkdir(parents=True)
    (quick / "estag-seed0.json").write_text(json.dumps(_record("estag", 0, 1e-4)))
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{BEGIN}\ncommitted\n{END}\n")
    monkeypatch.setattr(tables, "QUICK_RESULTS", tmp_path / "results-quick")
    monkeypatch.setattr(tables, "README", readme)
    assert tables.main(["--quick"]) == 0
    assert "| md17-ethanol | estag |" in capsys.readouterr().out
    assert readme.read_text() == f"head\n{BEGIN}\ncommitted\n{END}\n"


def test_quick_plan_uses_tiny_data_and_a_split_that_fits():
    cells = plan(
        ["md17"], quick=True, seeds=[0], models=["estag"], datasets=None, splits=None, epochs=None
    )
    assert {c.dataset.name for c in cells} == {"md17-ethanol"}
    reference = next(c for c in cells if c.split.name == "md17_reference")
    assert "data.split.mode=random" in reference.settings()
    full = plan(
        ["md17"], quick=False, seeds=[0, 1], models=None, datasets=None, splits=None, epochs=None
    )
    assert len(full) == 8 * 2 * 4 * 2
    assert "data.split.mode=md17_reference" in full[0].settings()
    assert all(c.epochs == suite.TABLES["md17"].epochs for c in full)
    # the provenance of a quick cell is the command that made the quick file
    ethanol = reference.dataset
    assert f"--steps {suite.MD17_QUICK_STEPS} " in ethanol.command_for(True)
    assert f"--steps {suite.MD17_STEPS} " in ethanol.command_for(False)
    nbody = suite.TABLES["nbody"].datasets[0]
    assert "--trajectories 70 --mode fast" in nbody.command_for(True)
    protein = suite.TABLES["protein_md"].datasets[0]
    assert f"--nanoseconds {suite.PROTEIN_QUICK_NS} " in protein.command_for(True)


def test_bvh_slice_keeps_hierarchy_and_frames(tmp_path):
    rng = np.random.default_rng(3)
    skeleton = random_skeleton(rng, 5)
    motion = random_motion(rng, skeleton, 20)
    source = tmp_path / "clip.bvh"
    source.write_text(format_bvh(skeleton, motion, 1 / 30), encoding="utf-8")
    part = suite._bvh_slice(source, tmp_path / "part.bvh", 5, 12)
    whole, piece = read_bvh(source), read_bvh(part)
    np.testing.assert_array_equal(piece.positions, whole.positions[5:12])
    assert suite._bvh_frames(part) == 7


def test_md17_simulation_resumes_where_it_stopped(tmp_path, monkeypatch):
    from ase.io import read

    kwargs = {"steps": 30, "equilibration_steps": 5, "block_steps": 10}
    # into a folder that does not exist yet, as the generator's -o may name
    whole = md17_xtb.simulate("ethanol", tmp_path / "new" / "whole.extxyz", **kwargs)

    real_append, calls = md17_xtb._append_block, []

    def stop_after_two_blocks(part, frames):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(frames))
        real_append(part, frames)

    monkeypatch.setattr(md17_xtb, "_append_block", stop_after_two_blocks)
    out = tmp_path / "resumed.extxyz"
    with pytest.raises(KeyboardInterrupt):
        md17_xtb.simulate("ethanol", out, **kwargs)
    assert not out.exists() and calls == [10, 10]  # frames 0-9 and 10-19 kept
    monkeypatch.setattr(md17_xtb, "_append_block", real_append)
    md17_xtb.simulate("ethanol", out, **kwargs)

    first, second = read(whole, ":"), read(out, ":")
    assert len(second) == 31
    assert [f.info["time"] for f in second] == [0.5 * k for k in range(31)]
    # The dynamics continue from the saved state and random stream; only xTB's SCF restarts
    # from a fresh guess, so positions agree to its convergence (3e-7 Angstrom seen), not bits.
    np.testing.assert_allclose(
        np.stack([f.positions for f in second]), np.stack([f.positions for f in first]), atol=1e-5
    )


def test_protein_simulation_resumes_and_ingests_with_the_file_frame_time(tmp_path, monkeypatch):
    """A killed OpenMM run continues from its saved state: the DCD grows to the asked frames,
    steps stay evenly spaced, and ingest reads the 0.5 ps frame time from the DCD header."""
    import mdtraj

    from benchmarks import protein_openmm

    monkeypatch.setattr(protein_openmm, "BLOCK_FRAMES", 4)
    pdb, dcd = protein_openmm.simulate(tmp_path, 8, equilibration_steps=10)
    protein_openmm.simulate(tmp_path, 8, equilibration_steps=10)  # finished: nothing to run
    assert len(mdtraj.load(str(dcd), top=str(pdb))) == 8
    protein_openmm.simulate(tmp_path, 12, equilibration_steps=10)
    trajectory = mdtraj.load(str(dcd), top=str(pdb))
    assert trajectory.n_frames == 12 and trajectory.n_atoms == 166
    out = tmp_path / "ca.h5"
    ingest = ["ingest", str(dcd), "--topology", str(pdb), "--select", "name CA", "-o", str(out)]
    result = subprocess.run(
        [*suite.dynforecast_command(), *ingest],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (system,) = read_h5md(out)
    assert system.positions.shape == (12, 10, 3)
    np.testing.assert_allclose(np.diff(system.time), 0.5, rtol=1e-5)
    assert system.time_unit == "ps"


def test_speed_table_measures_a_cell_through_the_cli(tmp_path, monkeypatch):
    from benchmarks import speed_table

    monkeypatch.setenv("DYNFORECAST_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "speed.json"
    argv = ["--quick", "--tables", "nbody", "--models", "egnn", "--epochs", "2", "--out", str(out)]
    assert speed_table.main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert (row["dataset"], row["model"], row["epochs"]) == ("nbody_small", "egnn", 2)
    assert row["train_windows"] > 0 and row["epoch_seconds"] > 0
    assert row["train_windows_per_s"] == pytest.approx(row["train_windows"] / row["epoch_seconds"])
    assert row["inference_ms_per_window"] > 0 and row["train_peak_rss_mb"] > 50
    assert speed_table.main(argv) == 0  # finished cells are kept, not measured again
    assert json.loads(out.read_text()) == [row]
    assert "| nbody_small | egnn |" in speed_table.markdown([row])
