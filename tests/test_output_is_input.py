"""An output may never replace one of the command's own inputs, --overwrite or not (exit 4);
an H5MD output may not carry another format's name (exit 2).

A fresh user ran ``ingest a.xyz -o a.xyz --overwrite`` and ``predict d.h5 ... -o d.h5
--overwrite``: the atomic rename put the H5MD output over the file being read and the data was
gone. Each writer now refuses it before any work, whichever spelling names the input (the same
path, ``./`` prefixed, a symbolic link, a hard link), and leaves the input byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.errors import OutputError
from dynforecast.io.atomic import check_output_path, reading_inputs

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_xyz(path: Path, frames: int = 4) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(frames):
        lines += ["3", "water"]
        for element, xyz in zip("OHH", rng.normal(size=(3, 3)), strict=True):
            lines.append(f"{element} {xyz[0]:.5f} {xyz[1]:.5f} {xyz[2]:.5f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("same")
    data = root / "nbody.h5"
    result = invoke("generate", "nbody", "-o", data, "--trajectories", 10, "--mode", "fast")
    assert result.exit_code == 0, result.stderr
    run = root / "run"
    result = invoke("train", data, "--model", "egnn", "--out", run, "--epochs", 1)
    assert result.exit_code == 0, result.stderr
    return root, data, run


def spellings(path: Path, root: Path, tag: str, suffix: str = ".h5") -> list[Path]:
    """The same file named four ways: as given, with ./.., through a symlink, a hard link (the
    links named ``*suffix``)."""
    link = root / f"link-{tag}{suffix}"
    hard = root / f"hard-{tag}{suffix}"
    for other in (link, hard):
        other.unlink(missing_ok=True)
    link.symlink_to(path)
    os.link(path, hard)
    return [path, path.parent / ".." / path.parent.name / path.name, link, hard]


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_ingest_refuses_to_replace_its_own_input(tmp_path, which):
    """Under its own name (.xyz) the output is refused as not H5MD (exit 2); under an .h5 name
    that links to the input, as the input itself (exit 4)."""
    source = tmp_path / "water.xyz"
    write_xyz(source)
    before = digest(source)
    output = spellings(source, tmp_path, "xyz")[which]
    result = invoke("ingest", source, "-o", output, "--overwrite")
    if output.suffix == ".xyz":
        assert result.exit_code == 2, result.stderr
        assert result.stderr == (
            f"error: -o {output}: the output is H5MD (HDF5), not .xyz; name it .h5\n"
        )
    else:
        assert result.exit_code == 4, result.stderr
        assert result.stderr == (
            f"error: {output}: is an input of this command ({source}); write the output to "
            "another file\n"
        )
    assert digest(source) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ingest_refuses_to_replace_its_topology(tmp_path):
    import mdtraj

    topology = tmp_path / "top.pdb"
    positions = np.random.default_rng(1).normal(size=(3, 3, 3)).astype(np.float32)
    top = mdtraj.Topology()
    residue = top.add_residue("HOH", top.add_chain())
    for name, element in (("O", "O"), ("H1", "H"), ("H2", "H")):
        top.add_atom(name, mdtraj.element.get_by_symbol(element), residue)
    trajectory = mdtraj.Trajectory(positions, top)
    trajectory[0].save_pdb(str(topology))
    dcd = tmp_path / "water.dcd"
    trajectory.save_dcd(str(dcd))
    before = digest(topology)
    output = tmp_path / "top.h5"
    os.link(topology, output)
    result = invoke("ingest", dcd, "--topology", topology, "-o", output, "--overwrite")
    assert result.exit_code == 4
    assert result.stderr == (
        f"error: {output}: is an input of this command ({topology}); write the output to "
        "another file\n"
    )
    assert digest(topology) == before


@pytest.mark.parametrize("which", [0, 2, 3])
def test_predict_refuses_to_replace_its_data(workspace, which):
    root, data, run = workspace
    before = digest(data)
    output = spellings(data, root, f"data{which}")[which]
    result = invoke("predict", data, "--checkpoint", run, "--steps", 2, "-o", output, "--overwrite")
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith(f"error: {output}: is an input of this command")
    assert digest(data) == before


@pytest.mark.parametrize("target", ["best.pt", "export"])
def test_predict_refuses_to_replace_a_checkpoint(workspace, target):
    """The checkpoint named through its run directory (best.pt) counts; so does --export."""
    root, data, run = workspace
    best = run / "best.pt"
    before = digest(best)
    fresh = root / "fresh.h5"
    given = root / "nbody-h5md.xyz"  # H5MD data under an export's name
    given.write_bytes(data.read_bytes())
    linked = root / "best-link.h5"  # an .h5 name for the checkpoint (-o best.pt: not H5MD)
    linked.unlink(missing_ok=True)
    os.link(best, linked)
    if target == "best.pt":
        args = ["-o", linked]
    else:
        args = ["-o", fresh, "--export", given]
    result = invoke("predict", given, "--checkpoint", run, "--steps", 2, *args, "--overwrite")
    assert result.exit_code == 4, result.stderr
    refused = linked if target == "best.pt" else given
    assert result.stderr.startswith(f"error: {refused}: is an input of this command")
    assert digest(best) == before
    assert digest(given) == digest(data)
    assert not fresh.exists()


def test_evaluate_plot_may_not_replace_the_data(tmp_path, workspace):
    _, data, run = workspace
    picture = tmp_path / "data.png"
    picture.write_bytes(data.read_bytes())  # an H5MD file named .png, given as the data
    result = invoke("evaluate", run, picture, "--rollout", 2, "--plot", picture, "--overwrite")
    assert result.exit_code == 4, result.stderr
    assert result.stderr == (
        f"error: {picture}: is an input of this command; write the output to another file\n"
    )


def test_an_unrelated_existing_output_is_still_replaced_with_overwrite(workspace, tmp_path):
    _, data, run = workspace
    output = tmp_path / "forecast.h5"
    output.write_bytes(b"old")
    result = invoke("predict", data, "--checkpoint", run, "--steps", 2, "-o", output, "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert output.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_the_protection_ends_with_the_block(tmp_path):
    source = tmp_path / "a.xyz"
    source.write_text("x")
    with reading_inputs([source, None]):
        with pytest.raises(OutputError, match="is an input of this command"):
            check_output_path(source, overwrite=True)
        with reading_inputs([tmp_path / "absent.xyz"]):  # nested, and a missing input is ignored
            with pytest.raises(OutputError):
                check_output_path(source, overwrite=True)
    check_output_path(source, overwrite=True)


@pytest.mark.parametrize(
    "command", [("ingest", "IN"), ("generate", "nbody", "--trajectories", 2), ("predict",)]
)
@pytest.mark.parametrize(
    "name", ["out.pdb", "out.xyz.gz", "out.DCD", "out.json", "out.pdb.bz2", "out.gz", "out.h5.gz"]
)
def test_an_h5md_output_named_like_another_format_is_refused(workspace, tmp_path, command, name):
    _, data, run = workspace
    output = tmp_path / name
    if command[0] == "predict":
        args = ["predict", data, "--checkpoint", run, "--steps", 2, "-o", output]
        hint = " (--export writes .pdb, .xyz, .extxyz, .bvh or .amc)"
    else:
        source = tmp_path / "water.xyz"
        write_xyz(source)
        args = [source if a == "IN" else a for a in command] + ["-o", output]
        hint = ""
    result = invoke(*args)
    assert result.exit_code == 2, result.stderr
    extension = "".join(output.suffixes).lower()
    assert result.stderr == (
        f"error: -o {output}: the output is H5MD (HDF5), not {extension}; name it .h5{hint}\n"
    )
    assert not output.exists()


def test_report_plot_may_not_replace_a_file_of_the_run(workspace, tmp_path):
    _, _, run = workspace
    for name in ("metrics.csv", "best.pt"):
        before = digest(run / name)
        result = invoke("report", run, "--plot", run / name, "--overwrite")
        assert result.exit_code == 2
        assert result.stderr == f"error: --plot {run / name}: expected a .png file name\n"
        assert digest(run / name) == before
    png = tmp_path / "curves.png"
    os.symlink(run / "metrics.csv", png)  # a .png name for the run's own file
    result = invoke("report", run / "best.pt", "--plot", png, "--overwrite")
    assert result.exit_code == 4
    assert result.stderr.startswith(f"error: {png}: is an input of this command")
    assert (run / "metrics.csv").read_text().startswith("epoch")


@pytest.mark.parametrize("name", ["best.pt", "metrics.csv", "config.json", "last.pt", ".lock"])
def test_train_refuses_data_that_is_one_of_the_runs_files(workspace, tmp_path, name):
    _, data, _ = workspace
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_bytes(data.read_bytes())
    result = invoke("train", run / name, "--model", "egnn", "--out", run, "--epochs", 1)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: {run / name}: the data file is the run's {name} ({run / name}); give the run "
        "another directory (--out) or move the data"
    )
    assert digest(run / name) == digest(data)


def test_train_refuses_a_directory_whose_config_json_is_not_a_runs(workspace, tmp_path):
    _, data, _ = workspace
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"name": "my-project"}')
    result = invoke("train", data, "--model", "egnn", "--out", project, "--epochs", 1)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: {project / 'config.json'}: not a dynforecast run's config.json; training would "
        "replace it: give the run another directory (--out)"
    )
    assert (project / "config.json").read_text() == '{"name": "my-project"}'


@pytest.mark.parametrize("name", [".lock", "last.pt", "metrics.csv"])
def test_predict_and_evaluate_may_not_replace_any_file_of_a_run_they_read(workspace, name):
    """Given as a run directory, every file of the run is an input (the lock too: replacing it
    would let a second training into a live run)."""
    root, data, run = workspace
    target = run / name
    before = digest(target)
    result = invoke("predict", data, "--checkpoint", run, "--steps", 2, "-o", target, "--overwrite")
    assert result.exit_code in (2, 4), result.stderr
    if name == ".lock":  # no extension: refused as the run's own file
        assert result.stderr.startswith(f"error: {target}: is an input of this command")
    png = root / f"linked-{name.strip('.')}.png"
    png.unlink(missing_ok=True)
    os.link(target, png)
    result = invoke("evaluate", run, data, "--rollout", 2, "--plot", png, "--overwrite")
    assert result.exit_code == 4, result.stderr
    assert result.stderr.startswith(f"error: {png}: is an input of this command ({target})")
    assert digest(target) == before


def test_a_dangling_symlink_output_is_not_replaced_without_overwrite(tmp_path):
    link = tmp_path / "dangling.h5"
    link.symlink_to(tmp_path / "nowhere" / "d.h5")
    result = invoke("generate", "nbody", "--trajectories", 2, "-o", link)
    assert result.exit_code == 4
    assert result.stderr == f"error: {link}: exists (use --overwrite to replace it)\n"
    assert link.is_symlink()
