"""`dynforecast ingest` and `dynforecast info` through Typer's runner: output, errors, exit codes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from MDAnalysisTests import datafiles
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.h5md import read_h5md

NMR_PDB = os.path.join(os.path.dirname(datafiles.PDB), "nmr_neopetrosiamide.pdb")
ADK_PSF, ADK_DCD = datafiles.PSF, datafiles.DCD


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def files_in(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_ingest_prints_summary_and_info_reads_it_back(run, tmp_path):
    out = tmp_path / "adk.h5"
    result = run("ingest", ADK_DCD, "--topology", ADK_PSF, "--stride", 2, "-o", out)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(out)
    assert lines[1].split() == ["system", "frames", "particles", "bonds", "units", "source"]
    assert lines[2].split() == ["adk_dims", "49", "3341", "3365", "nm,", "ps", ADK_DCD]
    assert "dcdplugin" not in result.stdout  # the DCD plugin's chatter stays on stderr
    assert f"ingested {ADK_DCD} -> {out}:adk_dims (49 frames)" in result.stderr

    info = run("info", out, "--json")
    assert info.exit_code == 0, info.stderr
    summary = json.loads(info.stdout)
    (system,) = summary["systems"]
    assert (system["name"], system["frames"], system["particles"]) == ("adk_dims", 49, 3341)
    assert system["species"] == {"H": 1685, "C": 1040, "N": 289, "O": 320, "S": 7}
    # the DCD header's clock: frames 1 ps apart (CHARMM AKMA units), stride 2
    assert system["time_step"] == pytest.approx(2 * 0.99999991192) and system["nan_count"] == 0

    text = run("info", out)
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == f"{out}: 1 system(s)"


def test_several_inputs_with_names_and_selection(run, tmp_path):
    out = tmp_path / "two.h5"
    result = run(
        "ingest",
        NMR_PDB,
        NMR_PDB,
        "--name",
        "all_frames",
        "--name",
        "every_tenth",
        "--select",
        "name CA",
        "--chunk-frames",
        4,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    first, second = read_h5md(out)
    assert (first.name, second.name) == ("all_frames", "every_tenth")
    assert first.n_particles == 28 and set(first.names) == {"CA"}
    np.testing.assert_array_equal(first.positions, second.positions)


def test_time_step_replaces_the_file_times_and_untimed_files_get_a_note(run, tmp_path):
    untimed = run("ingest", NMR_PDB, "-o", tmp_path / "nmr.h5")
    assert untimed.exit_code == 0, untimed.stderr
    assert untimed.stdout.splitlines()[2].split()[4:6] == ["nm,", "1"]
    assert (
        f"{NMR_PDB}: note: the file stores no times; time is the frame index "
        "(give --time-step, e.g. --time-step '2 ps')"
    ) in untimed.stderr.splitlines()
    (plain,) = read_h5md(tmp_path / "nmr.h5")
    assert "untimed_frames" in plain.parameters["ingest_notes"]
    timed = run("ingest", NMR_PDB, "--stride", 3, "--time-step", "0.5 ns", "-o", tmp_path / "t.h5")
    assert timed.exit_code == 0, timed.stderr
    assert "stores no times" not in timed.stderr
    (traj,) = read_h5md(tmp_path / "t.h5")
    assert traj.time_unit == "ps"
    np.testing.assert_array_equal(traj.time, np.arange(0, 24, 3) * 500.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "2",
            "--time-step '2': expected a number and a unit, one of fs, ps, ns, ms, s (e.g. '2 ps')",
        ),
        (
            "2 hours",
            "--time-step '2 hours': expected a number and a unit, one of fs, ps, ns, ms, s (e.g. '2 ps')",
        ),
        ("0 fs", "--time-step '0 fs': expected a positive time"),
        ("-1ps", "--time-step '-1ps': expected a positive time"),
    ],
)
def test_bad_time_step_is_a_usage_error(run, tmp_path, value, message):
    result = run("ingest", NMR_PDB, "--time-step", value, "-o", tmp_path / "out.h5")
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"
    assert files_in(tmp_path) == []


def test_existing_output_needs_overwrite(run, tmp_path):
    out = tmp_path / "out.h5"
    out.write_text("keep me")
    result = run("ingest", NMR_PDB, "-o", out)
    assert result.exit_code == 4
    assert result.stderr == f"error: {out}: exists (use --overwrite to replace it)\n"
    assert result.stdout == ""
    assert out.read_text() == "keep me"
    again = run("ingest", NMR_PDB, "-o", out, "--overwrite")
    assert again.exit_code == 0, again.stderr
    assert read_h5md(out)[0].n_frames == 24


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{tmp}/missing.pdb"], 3, "{tmp}/missing.pdb: no such file"),
        (["{tmp}/empty.pdb"], 3, "{tmp}/empty.pdb: empty file"),
        (["{tmp}/folder.pdb"], 3, "{tmp}/folder.pdb: is a directory, not a file"),
        (
            ["{tmp}/notes.txt"],
            3,
            "{tmp}/notes.txt: unknown extension '.txt' (supported: .bvh, .ent, .extxyz,"
            " .extxyz.bz2, .extxyz.gz, .pdb, .pdb.gz, .xyz, .xyz.bz2, .xyz.gz; with --topology: .binpos, .dcd, .gro, .lammpstrj, .nc, .ncdf, .netcdf, .pdb,"
            " .pdb.gz, .trr, .xtc)",
        ),
        (
            [ADK_DCD, "--topology", datafiles.PDB],
            3,
            f"{ADK_DCD}: 3341 particles, but topology {datafiles.PDB} has 47681",
        ),
        ([NMR_PDB, "--stride", "0"], 2, "--stride must be at least 1 (got 0)"),
        ([NMR_PDB, "--name", "a", "--name", "b"], 2, "--name given 2 times for 1 inputs"),
        ([NMR_PDB, "--name", "a/b"], 2, "--name 'a/b': use letters, digits, '_', '-' and '.' only"),
        ([NMR_PDB, "--select", "name XX"], 2, f"--select 'name XX': matches no atoms in {NMR_PDB}"),
        ([NMR_PDB, "-o", "{tmp}/no/such/dir/out.h5"], 4, None),
    ],
)
def test_ingest_errors_are_one_line_with_exit_code(run, tmp_path, args, code, message):
    (tmp_path / "empty.pdb").write_text("")
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "folder.pdb").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.h5")]
    before = files_in(tmp_path)
    result = run("ingest", *args)
    out = args[args.index("-o") + 1]
    if message is None:
        message = f"{out}: directory {os.path.dirname(out)} does not exist"
    assert result.exit_code == code
    assert result.stderr.splitlines()[-1] == f"error: {message.format(tmp=tmp_path)}"
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert files_in(tmp_path) == before  # no output, no temporary file left behind


def test_interrupt_leaves_no_partial_output(run, tmp_path, monkeypatch):
    from dynforecast.io.h5md import H5MDWriter

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(H5MDWriter, "append_frames", interrupted)
    result = run("ingest", NMR_PDB, "-o", tmp_path / "out.h5")
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted\n"
    assert files_in(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_directory_that_refuses_new_files_is_an_output_error(run):
    # /proc passes the permission check even for root but refuses to create files: the error
    # comes from HDF5 itself, after the checks, and must still be one line with exit 4.
    result = run("ingest", NMR_PDB, "-o", "/proc/out.h5")
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-1] == (
        "error: /proc/out.h5: cannot write (No such file or directory)"
    )


def test_info_errors(run, tmp_path):
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    result = run("info", text)
    assert result.exit_code == 3
    assert result.stderr == f"error: {text}: not an HDF5 file\n"
    missing = run("info", tmp_path / "missing.h5", "--json")
    assert missing.exit_code == 3
    assert missing.stderr == f"error: {tmp_path / 'missing.h5'}: no such file\n"
    assert missing.stdout == ""


def test_debug_shows_the_traceback(run, tmp_path):
    result = CliRunner().invoke(app, ["--debug", "info", str(tmp_path / "missing.h5")])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "InputError"


def test_a_bug_is_one_line_with_exit_1_and_its_traceback_under_debug(run, tmp_path, monkeypatch):
    import dynforecast.io.info

    def broken(path):
        raise RuntimeError("shape mismatch\nsecond line")

    monkeypatch.setattr(dynforecast.io.info, "describe_h5md", broken)
    result = run("info", tmp_path / "any.h5")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: internal error (RuntimeError: shape mismatch); "
        "rerun with --debug for the traceback and please report it\n"
    )
    debug = CliRunner().invoke(app, ["--debug", "info", str(tmp_path / "any.h5")])
    assert debug.exit_code == 1 and isinstance(debug.exception, RuntimeError)


def test_stdout_of_a_real_process_carries_only_results(tmp_path):
    """C-level chatter (mdtraj's DCD plugin printf) must not reach file descriptor 1."""
    import subprocess
    import sys

    out = tmp_path / "adk.h5"
    command = [sys.executable, "-c", "from dynforecast.cli import app; app()"]
    args = ["ingest", ADK_DCD, "--topology", ADK_PSF, "-o", str(out)]
    done = subprocess.run(command + args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(out)
    assert len(done.stdout.splitlines()) == 3
    assert "dcdplugin)" not in done.stderr  # off the terminal too, unless --debug
    debug = subprocess.run(
        [*command, "--debug", *args, "--overwrite"], capture_output=True, text=True, check=False
    )
    assert debug.returncode == 0, debug.stderr
    assert "dcdplugin)" in debug.stderr and "dcdplugin)" not in debug.stdout


def test_time_step_help_says_where_dcd_times_come_from():
    from dynforecast.io.dcd_header import AKMA_PS

    result = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert (
        f"A DCD's times come from its header: DELTA (AKMA units, 1 AKMA = {AKMA_PS} ps) x NSAVC "
        "steps per frame, from ISTART; a DCD whose header has no time step (DELTA or NSAVC not "
        "positive), BINPOS, LAMMPS dumps, multi-model PDB, GRO without t= and XYZ without "
        "time= store none: their frames get the frame index (unit 1) and a note." in text
    )
    assert "AMC times assume 120 frames/s." in text
