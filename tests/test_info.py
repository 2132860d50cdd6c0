"""`describe_h5md` / `format_info`: counts, ranges and non-finite values of known files."""

from __future__ import annotations

import numpy as np

from dynforecast.io.h5md import write_h5md
from dynforecast.io.info import _BLOCK_FRAMES, describe_h5md, format_info
from dynforecast.io.trajectory import Trajectory

#: The keys scripts rely on; adding keys is fine, renaming them breaks users.
SYSTEM_KEYS = {
    "name",
    "frames",
    "particles",
    "species",
    "bonds",
    "length_unit",
    "time_unit",
    "time_step",
    "time_start",
    "time_end",
    "has_velocities",
    "forecast_frames",
    "coordinate_min",
    "coordinate_max",
    "nan_count",
    "inf_count",
    "source",
    "checksum",
    "periodic",
    "box_lengths",
    "box_angles",
}


def water_box(frames: int) -> Trajectory:
    """Water molecules whose coordinate ranges are known by construction."""
    positions = np.zeros((frames, 6, 3), dtype=np.float32)
    positions[..., 0] = np.linspace(-2.0, 3.0, frames)[:, None]  # x spans [-2, 3]
    positions[..., 1] = np.arange(6)[None, :]  # y spans [0, 5]
    positions[..., 2] = 0.5
    return Trajectory(
        name="water",
        positions=positions,
        species=np.array([8, 1, 1, 8, 1, 1], dtype=np.int32),
        time=np.arange(frames) * 0.002,
        step=np.arange(frames, dtype=np.int64),
        length_unit="nm",
        time_unit="ps",
        bonds=np.array([[0, 1], [0, 2], [3, 4], [3, 5]], dtype=np.int32),
        velocities=np.zeros((frames, 6, 3), dtype=np.float32),
        source="water.pdb",
    )


def test_counts_ranges_and_non_finite_values(tmp_path):
    frames = _BLOCK_FRAMES + 40  # spans two scan blocks
    water = water_box(frames)
    water.positions[3, 2, 1] = np.nan
    water.positions[_BLOCK_FRAMES + 5, 0, :] = [np.inf, -np.inf, np.nan]
    skeleton = Trajectory(
        name="skeleton",
        positions=np.ones((2, 3, 3), dtype=np.float32),
        species=np.zeros(3, dtype=np.int32),
        time=np.array([0.0, 1.0]),
        step=np.array([0, 1]),
        length_unit="1",
        time_unit="1",
    )
    path = tmp_path / "mixed.h5"
    write_h5md(path, [water, skeleton], is_forecast={"skeleton": np.array([0, 1])})

    summary = describe_h5md(path)
    assert summary["file"] == str(path)
    first, second = summary["systems"]
    assert set(first) == SYSTEM_KEYS
    assert first["name"] == "water"
    assert (first["frames"], first["particles"], first["bonds"]) == (frames, 6, 4)
    assert first["species"] == {"H": 4, "O": 2}
    assert (first["length_unit"], first["time_unit"]) == ("nm", "ps")
    assert np.isclose(first["time_step"], 0.002)
    assert first["time_start"] == 0.0 and np.isclose(first["time_end"], (frames - 1) * 0.002)
    assert first["has_velocities"] is True and first["forecast_frames"] is None
    np.testing.assert_allclose(first["coordinate_min"], [-2.0, 0.0, 0.5])
    np.testing.assert_allclose(first["coordinate_max"], [3.0, 5.0, 0.5])
    assert (first["nan_count"], first["inf_count"]) == (2, 2)
    assert first["source"] == "water.pdb"
    assert first["periodic"] is False and first["box_lengths"] is first["box_angles"] is None

    assert second["species"] == {"X": 3}
    assert second["forecast_frames"] == 1 and second["has_velocities"] is False
    assert second["coordinate_min"] == [1.0, 1.0, 1.0]


def test_all_non_finite_system_has_no_range(tmp_path):
    water = water_box(2)
    water.positions[:] = np.nan
    path = tmp_path / "nan.h5"
    write_h5md(path, [water])
    (system,) = describe_h5md(path)["systems"]
    assert system["coordinate_min"] is None and system["coordinate_max"] is None
    assert system["nan_count"] == 2 * 6 * 3


def test_text_summary_lists_each_system(tmp_path):
    path = tmp_path / "water.h5"
    write_h5md(path, [water_box(3)])
    text = format_info(describe_h5md(path))
    lines = text.splitlines()
    assert lines[0] == f"{path}: 1 system(s)"
    assert lines[1].split() == ["system", "frames", "particles", "bonds", "dt", "units"]
    assert lines[2].split() == ["water", "3", "6", "4", "0.002", "nm,", "ps"]
    assert "  species      H:4 O:2" in lines
    assert "  coordinates  min [-2, 0, 0.5] max [3, 5, 0.5] nm" in lines
    assert "  non-finite   NaN 0, inf 0" in lines
    assert "  box          none (not periodic)" in lines


def test_periodic_system_shows_its_first_frames_box(tmp_path):
    water = water_box(3)
    # a = 4 x, b = 5 y, c = 3 y + 3 z: |c| = sqrt(18), alpha (b, c) = 45 deg, beta = gamma = 90.
    cell = np.array([[4.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 3.0, 3.0]], dtype=np.float32)
    water.box = np.stack([cell, cell * 2, cell * 3])
    path = tmp_path / "water.h5"
    write_h5md(path, [water])
    summary = describe_h5md(path)
    (system,) = summary["systems"]
    assert set(system) == SYSTEM_KEYS and system["periodic"] is True
    np.testing.assert_allclose(system["box_lengths"], [4.0, 5.0, np.sqrt(18.0)])
    np.testing.assert_allclose(system["box_angles"], [45.0, 90.0, 90.0])
    expected = (
        "  box          periodic, first frame a b c [4, 5, 4.243] nm, angles [45, 90, 90] deg"
    )
    assert expected in format_info(summary).splitlines()
