"""Outputs that cannot be written, inputs that are not there, options that do not parse: one line.

Each case once ended in a traceback ("internal error"), a misleading message or a file left
behind; each now gives one ``error:`` line naming the path and the documented exit code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynforecast.cli import app

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 10, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    run = root / "run"
    result = invoke("train", data, "--model", "estag", "--out", run, "--epochs", 1)
    assert result.exit_code == 0, result.stderr
    notes = root / "notes.txt"
    notes.write_text("a file, not a directory\n")
    return root, data, run, notes


def test_train_out_below_a_file_is_refused_before_loading(workspace):
    _, _, _, notes = workspace
    missing_data = notes.parent / "absent.h5"  # never opened: the --out check comes first
    result = invoke("train", missing_data, "--out", notes / "run", "--epochs", 1)
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: {notes / 'run'}: cannot create it, {notes} is not a directory\n"
    )


def test_train_out_that_cannot_be_created_is_one_line(workspace):
    _, data, _, _ = workspace
    result = invoke("train", data, "--out", "/proc/dynforecast-run", "--epochs", 1)
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-1] == (
        "error: /proc/dynforecast-run: cannot create the directory (No such file or directory)"
    )
    assert "internal error" not in result.stderr


def test_predict_leaves_no_forecast_when_the_export_fails(workspace):
    root, data, run, _ = workspace
    output = root / "forecast.h5"
    result = invoke(
        "predict", data, "--checkpoint", run, "--steps", 3, "-o", output,
        "--export", "/proc/forecast.xyz",
    )  # fmt: skip
    assert result.exit_code == 4
    assert result.stderr.splitlines()[-1] == (
        "error: /proc/forecast.xyz: cannot write (No such file or directory)"
    )
    assert not output.exists()
    assert not [p.name for p in root.iterdir() if p.name.startswith(".forecast")]


def test_predict_output_below_a_file_names_the_file(workspace):
    _, data, run, notes = workspace
    result = invoke("predict", data, "--checkpoint", run, "--steps", 3, "-o", notes / "f.h5")
    assert result.exit_code == 4
    assert result.stderr == f"error: {notes / 'f.h5'}: {notes} is not a directory\n"


def test_ingest_output_below_a_file_names_the_file(workspace):
    from fuzz.seeds import FIELD_CASES

    _, _, _, notes = workspace
    result = invoke("ingest", FIELD_CASES / "tiny_traj.pdb", "-o", notes / "f.h5")
    assert result.exit_code == 4
    assert result.stderr == f"error: {notes / 'f.h5'}: {notes} is not a directory\n"


@pytest.mark.parametrize("command", ["report", "info"])
def test_a_missing_run_directory_is_named_as_missing(command, workspace):
    root, _, _, _ = workspace
    missing = root / "no-such-run"
    result = invoke(command, missing)
    assert result.exit_code == 3
    expected = "no such run directory or checkpoint" if command == "report" else "no such file"
    assert result.stderr == f"error: {missing}: {expected}\n"


def test_an_option_that_does_not_parse_is_one_error_line(workspace):
    _, data, _, _ = workspace
    result = invoke("train", data, "--epochs", "many")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Invalid value for '--epochs': ")
    assert lines[0].endswith("(see 'dynforecast train --help')")
    result = invoke("predict", data)
    assert result.exit_code == 2
    assert (
        result.stderr == "error: Missing option '--checkpoint' (see 'dynforecast predict --help')\n"
    )


@pytest.mark.parametrize("option", ["-o", "--export"])
def test_an_output_ending_in_a_slash_is_refused_not_written_as_a_file(workspace, option):
    """Path("new/") drops the slash: the output used to become a file named like the directory."""
    root, data, run, _ = workspace
    target = f"{root}/new-{option.strip('-')}/"
    args = ["-o", target] if option == "-o" else ["-o", root / "f.h5", "--export", target]
    result = invoke("predict", data, "--checkpoint", run, "--steps", 2, *args)
    assert result.exit_code == 2
    assert f"{target}: ends in '/', which names a directory; give a file name" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not Path(target).exists() and not (root / "f.h5").exists()


def test_an_output_that_is_a_directory_is_exit_4(workspace, tmp_path):
    _, data, run, _ = workspace
    result = invoke("predict", data, "--checkpoint", run, "--steps", 2, "-o", tmp_path)
    assert result.exit_code == 4
    assert result.stderr == f"error: {tmp_path}: is a directory\n"
