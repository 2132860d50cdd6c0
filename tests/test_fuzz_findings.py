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
