"""Kinds of bad input found by the long fuzz run (fuzz/README.md), each an exit 3 naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.storable import _has_nul
from fuzz.seeds import _ASF, FIELD_CASES, _asf_amc


def _ingest(*args) -> object:
    return CliRunner().invoke(app, ["ingest", *map(str, args)])


@pytest.mark.parametrize("where", ["asf_version", "bone_name", "amc_header"])
def test_nul_byte_in_asf_amc_text_is_an_input_error(tmp_path: Path, where: str):
    files = dict(_asf_amc()[0].files)
    asf, amc = files["skel.asf"].decode(), files["walk.amc"].decode()
    if where == "asf_version":  # the fuzzer's mutant: h5py refused the ASF text (exit 1)
        asf = asf.replace(":version 1.10", ":version 1.\x000")
    elif where == "bone_name":
        asf, amc = asf.replace("ltibia", "lti\x00bia"), amc.replace("ltibia", "lti\x00bia")
    else:
        amc = amc.replace(":DEGREES", ":DEGREES\n# x\x00y")
    (tmp_path / "skel.asf").write_text(asf)
    (tmp_path / "walk.amc").write_text(amc)
    out = tmp_path / "x.h5"
    result = _ingest(tmp_path / "walk.amc", "--topology", tmp_path / "skel.asf", "-o", out)
    assert result.exit_code == 3, result.output
    assert re.fullmatch(
        rf"error: {re.escape(str(tmp_path / 'walk.amc'))} \(with {re.escape(str(tmp_path))}"
        r"/skel\.asf\): NUL byte in the text \(\w+\); a damaged or binary file\?\n",
        result.output,
    ), result.output
    assert not out.exists()


def test_nul_byte_in_a_bvh_joint_name_is_an_input_error(tmp_path: Path):
    text = (FIELD_CASES / "end_site_named.bvh").read_text()
    name = re.search(r"JOINT (\w+)", text).group(1)
    bad = tmp_path / "nul.bvh"
    bad.write_text(text.replace(f"JOINT {name}", f"JOINT {name[:1]}\x00{name[1:]}", 1))
    result = _ingest(bad, "-o", tmp_path / "x.h5")
    assert result.exit_code == 3, result.output
    assert (
        result.output == f"error: {bad}: NUL byte in the text (names); a damaged or binary file?\n"
    )


def test_nul_check_ignores_numpy_padding():
    assert not _has_nul(np.array(["H", "HH", ""]))
    assert not _has_nul(["C", "CA"]) and not _has_nul(np.arange(4)) and not _has_nul(_ASF)
    assert _has_nul(np.array(["H", "\x00H"])) and _has_nul(np.array(["a\x00b"]))
    assert _has_nul(["ok", "a\x00"]) and _has_nul("x\x00")


_WATER = ("O 0 0 0", "H 0.96 0 0", "H -0.24 0.93 0")


@pytest.mark.parametrize(
    ("lattice", "problem"),
    [  # the long run's two xyz findings (2026-12-05): SIGFPE in vesin, and a loop over 1e9 images
        ("1e30 0 0 0 10 0 0 0 10", "a periodic cell vector is longer than 1e+09 cutoffs (1e+30)"),
        ("10 99999999999 0 0 10 0 0 0 10", "a periodic cell vector is longer than 1e+09 cutoffs"),
        ("10 0 0 9.999999 0.0000001 0 0 0 10", "the periodic cell is 1e-07 thick along one axis"),
    ],
)
def test_absurd_periodic_cell_is_an_input_error_not_a_crash_or_hang(tmp_path, lattice, problem):
    import subprocess
    import sys

    header = f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"'
    path = tmp_path / "water.extxyz"
    path.write_text("3\n" + header + "\n" + "\n".join(_WATER) + "\n")
    command = [sys.executable, "-m", "dynforecast", "ingest", str(path), "-o", tmp_path / "x.h5"]
    # a child process, so that a regression fails this test instead of killing the test worker
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"error: {path}: frame 0: cannot infer bonds: {problem}")
    assert not (tmp_path / "x.h5").exists()


def test_periodic_cell_check_keeps_small_and_large_sane_cells():
    from dynforecast.ops.neighbours import pairs_within

    points = np.array([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    small = pairs_within(points, 1.5, np.diag([10.0, 10.0, 0.02]))  # 75 images along z
    assert len(small[0]) > 100
    vacuum = pairs_within(points, 1.5, np.diag([1e6, 1e6, 1e6]))  # a vacuum box
    assert sorted(zip(vacuum[0].tolist(), vacuum[1].tolist(), strict=True)) == [(0, 1), (0, 2)]
