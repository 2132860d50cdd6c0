"""The ingest fuzzer (fuzz/): a short real run, determinism, and that each kind of finding is caught."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import dynforecast.io.ingest as ingest_module
from dynforecast.errors import InputError
from fuzz.ingest import fuzz_family, run
from fuzz.runner import preload, run_input
from fuzz.seeds import FIELD_CASES, seed_corpus


@pytest.fixture(scope="module", autouse=True)
def _warm():
    preload()


def _case(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    out.mkdir()
    return FIELD_CASES / "ws_line.xyz", out / "x.h5"


def test_short_run_has_no_findings_and_reaches_errors(tmp_path):
    reports = run(
        ("xyz", "bvh"), seconds=None, inputs=15, seed=3, results=tmp_path, echo=lambda s: None
    )
    for report in reports:
        assert report.inputs == 15
        assert not report.findings, report.line()
        assert report.exit_codes[3] > 0  # the mutants really are bad inputs
    assert not any(tmp_path.iterdir())


def test_same_seed_same_inputs(tmp_path):
    seeds = seed_corpus(("pdb",))["pdb"]
    counts = [
        fuzz_family(
            "pdb",
            seeds,
            seconds=None,
            inputs=8,
            seed=11,
            timeout=5,
            results=tmp_path,
            workdir=tmp_path,
        ).exit_codes
        for _ in range(2)
    ]
    assert counts[0] == counts[1]


def test_detects_an_internal_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(ingest_module, "ingest", broken)
    source, output = _case(tmp_path)
    outcome = run_input([source], None, output, timeout=5)
    assert outcome.exit_code == 1 and outcome.finding == "internal-error"
    assert "ZeroDivisionError: injected" in outcome.detail
    assert outcome.signature.startswith("ZeroDivisionError@")


def test_our_errors_are_not_findings(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise InputError("bad file")

    monkeypatch.setattr(ingest_module, "ingest", refused)
    source, output = _case(tmp_path)
    outcome = run_input([source], None, output, timeout=5)
    assert outcome.exit_code == 3 and outcome.finding is None


def test_detects_a_leftover_temporary_file(tmp_path, monkeypatch):
    def leaky(inputs, output, **kwargs):
        (Path(output).parent / f".{Path(output).name}.tmp-1").write_bytes(b"half")
        raise InputError("bad file")

    monkeypatch.setattr(ingest_module, "ingest", leaky)
    source, output = _case(tmp_path)
    outcome = run_input([source], None, output, timeout=5)
    assert outcome.finding == "leftover-file" and ".x.h5.tmp-1" in outcome.detail


def test_detects_a_hang_and_a_crash(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(ingest_module, "ingest", lambda *a, **k: time.sleep(30))
    source, output = _case(tmp_path)
    start = time.monotonic()
    outcome = run_input([source], None, output, timeout=0.5)
    assert outcome.finding == "hang" and time.monotonic() - start < 5
    monkeypatch.setattr(ingest_module, "ingest", lambda *a, **k: os.abort())
    assert run_input([source], None, output, timeout=5).finding == "crash"


def test_detects_an_output_info_cannot_read(tmp_path, monkeypatch):
    def garbage(inputs, output, **kwargs):
        Path(output).write_bytes(b"not hdf5")
        return []

    monkeypatch.setattr(ingest_module, "ingest", garbage)
    source, output = _case(tmp_path)
    outcome = run_input([source], None, output, timeout=5)
    assert outcome.exit_code == 0 and outcome.finding == "bad-output"


def test_findings_are_saved_with_inputs_and_traceback(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("injected")

    monkeypatch.setattr(ingest_module, "ingest", broken)
    lines = []
    reports = run(("bvh",), seconds=None, inputs=3, results=tmp_path / "res", echo=lines.append)
    assert reports[0].kinds["internal-error"] == 3
    assert lines == [reports[0].line()] and "3 findings" in lines[0]
    saved = list((tmp_path / "res").rglob("finding.txt"))
    assert saved and "KeyError: 'injected'" in saved[0].read_text()
    assert any(p.suffix == ".bvh" for p in saved[0].parent.iterdir())


@pytest.mark.parametrize("frame", [0, 1])
def test_fuzz_finding_non_finite_lattice_is_an_input_error(tmp_path, frame):
    from typer.testing import CliRunner

    from dynforecast.cli import app

    good = 'Lattice="10 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3'
    bad = 'Lattice="10 nan 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3'
    frames = [bad if k == frame else good for k in range(2)]
    text = "".join(f"2\n{c}\nH 0 0 0\nH 0.74 0 0\n" for c in frames)
    path = tmp_path / "nan_cell.extxyz"
    path.write_text(text)
    result = CliRunner().invoke(app, ["ingest", str(path), "-o", str(tmp_path / "x.h5")])
    assert result.exit_code == 3, result.output
    assert f"{path}: non-finite (NaN or inf) unit cell in frame {frame}" in result.output
