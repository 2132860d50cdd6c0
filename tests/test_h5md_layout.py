"""The H5MD layout on disk: the compact 1.10 format for many small systems, old files still read."""

from __future__ import annotations

import h5py
import numpy as np

from dynforecast.data.nbody import nbody_trajectories, simulate_nbody
from dynforecast.io.h5md import H5MDWriter, add_trajectory_system, read_h5md, write_h5md
from tests.test_h5md import assert_same


def write_with(path, systems, libver):
    with H5MDWriter(path, libver=libver) as writer:
        for system in systems:
            add_trajectory_system(
                writer, system, has_velocities=True, expected_frames=system.n_frames
            )
            writer.append_frames(
                system.name, system.positions, system.time, system.step, system.velocities
            )


def test_many_small_systems_take_about_half_the_old_space(tmp_path):
    systems = nbody_trajectories(simulate_nbody(40, 43, mode="fast"))
    old, new = tmp_path / "old.h5", tmp_path / "new.h5"
    write_with(old, systems, ("earliest", "v110"))
    write_h5md(new, systems)
    raw = sum(s.positions.nbytes + s.velocities.nbytes for s in systems)
    assert new.stat().st_size < 0.55 * old.stat().st_size
    assert new.stat().st_size < 2.3 * raw  # was 4.4x: groups and chunk indexes dominated


def test_files_of_the_old_layout_read_the_same(tmp_path):
    systems = nbody_trajectories(simulate_nbody(3, 43, mode="fast"))
    old = tmp_path / "old.h5"
    write_with(old, systems, ("earliest", "v110"))
    with h5py.File(old, "r") as h5:  # really the old format: a version-0 superblock
        assert h5.id.get_create_plist().get_version()[0] == 0
    for read, written in zip(read_h5md(old), systems, strict=True):
        assert_same(read, written)


def test_mdanalysis_reads_the_new_layout(tmp_path):
    from MDAnalysis.coordinates.H5MD import H5MDReader

    system = nbody_trajectories(simulate_nbody(1, 43, mode="fast"))[0]
    path = tmp_path / "new.h5"
    write_h5md(path, [system])
    reader = H5MDReader(str(path), convert_units=False)
    np.testing.assert_array_equal(reader.ts.positions, system.positions[0])
    assert reader.n_frames == system.n_frames
    reader.close()
