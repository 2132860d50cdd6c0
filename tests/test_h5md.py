"""The H5MD container: layout, round trips, atomic writes, read validation, MDAnalysis interop."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import h5py
import numpy as np
import pytest

from dynforecast.errors import InputError, OutputError
from dynforecast.io.h5md import (
    H5MDWriter,
    file_checksum,
    iter_h5md_blocks,
    list_systems,
    read_h5md,
    read_is_forecast,
    write_h5md,
)
from dynforecast.io.trajectory import Trajectory


def make_trajectory(name: str, frames: int, particles: int, seed: int, **extra) -> Trajectory:
    rng = np.random.default_rng(seed)
    return Trajectory(
        name=name,
        positions=rng.normal(size=(frames, particles, 3)).astype(np.float32),
        species=rng.integers(1, 9, size=particles).astype(np.int32),
        time=np.arange(frames) * 0.25,
        step=np.arange(frames, dtype=np.int64) * 10,
        length_unit="nm",
        time_unit="ps",
        **extra,
    )


@pytest.fixture
def rich_system() -> Trajectory:
    """A system using every optional field."""
    rng = np.random.default_rng(7)
    return make_trajectory(
        "protein",
        6,
        4,
        seed=1,
        bonds=np.array([[0, 1], [1, 2], [2, 3]], dtype=np.int32),
        velocities=rng.normal(size=(6, 4, 3)).astype(np.float32),
        charges=np.array([0.5, -0.5, 1.0, -1.0], dtype=np.float32),
        names=["N", "CA", "C", "O"],
        parameters={
            "residue_names": np.array(["ALA", "ALA", "GLY", "GLY"]),
            "residue_ids": np.array([1, 1, 2, 2]),
            "hierarchy": "ROOT hip\n  JOINT knee",
        },
        source="protein.pdb",
        checksum="ab" * 32,
    )


def assert_same(read: Trajectory, written: Trajectory) -> None:
    np.testing.assert_array_equal(read.positions, written.positions)
    np.testing.assert_array_equal(read.species, written.species)
    np.testing.assert_array_equal(read.time, written.time)
    np.testing.assert_array_equal(read.step, written.step)
    np.testing.assert_array_equal(read.bonds, written.bonds)
    pairs = (
        (read.velocities, written.velocities),
        (read.charges, written.charges),
        (read.box, written.box),
    )
    for got, want in pairs:
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_array_equal(got, want)
    assert read.names == written.names
    assert (read.length_unit, read.time_unit) == (written.length_unit, written.time_unit)
    assert (read.source, read.checksum) == (written.source, written.checksum)
    assert read.parameters.keys() == written.parameters.keys()
    for key, value in written.parameters.items():
        if isinstance(value, str):
            assert read.parameters[key] == value
        else:
            np.testing.assert_array_equal(read.parameters[key], value)
    assert read.positions.dtype == np.float32 and read.species.dtype == np.int32
    assert read.time.dtype == np.float64 and read.step.dtype == np.int64


def test_round_trip_keeps_every_field_and_system_order(tmp_path, rich_system):
    plain = make_trajectory("a_first_by_name", 3, 2, seed=2)
    path = tmp_path / "out.h5"
    write_h5md(path, [rich_system, plain])
    assert list_systems(path) == ["protein", "a_first_by_name"]
    read = read_h5md(path)
    assert [t.name for t in read] == ["protein", "a_first_by_name"]
    assert_same(read[0], rich_system)
    assert_same(read[1], plain)
    assert_same(read_h5md(path, ["a_first_by_name"])[0], plain)


def test_layout_follows_h5md_1_1(tmp_path, rich_system):
    path = tmp_path / "out.h5"
    write_h5md(path, [rich_system], is_forecast={"protein": np.array([0, 0, 0, 1, 1, 1])})
    with h5py.File(path, "r") as h5:
        assert h5["h5md"].attrs["version"].tolist() == [1, 1]
        assert h5["h5md/creator"].attrs["name"] == "dynforecast"
        assert "version" in h5["h5md/creator"].attrs and "name" in h5["h5md/author"].attrs
        group = h5["particles/protein"]
        assert group["box"].attrs["dimension"] == 3
        assert list(group["box"].attrs["boundary"]) == ["none"] * 3
        assert "edges" not in group["box"]
        assert group["position/value"].attrs["unit"] == "nm"
        assert group["position/time"].attrs["unit"] == "ps"
        assert group["velocity/value"].attrs["unit"] == "nm ps-1"
        assert group["position/value"].dtype == np.float32
        assert group["position/value"].chunks[1:] == (4, 3)
        # velocity's step/time are hard links to position's (same HDF5 object).
        assert group["velocity/step"].id == group["position/step"].id
        assert group["velocity/time"].id == group["position/time"].id
        assert group["species"].dtype == np.int32
        np.testing.assert_array_equal(group["charge"][()], rich_system.charges)
        bonds = h5["connectivity/protein/bonds"]
        assert bonds.dtype == np.int32
        assert h5[bonds.attrs["particles_group"]].name == "/particles/protein"
        params = h5["parameters/dynforecast/protein"]
        assert params.attrs["source"] == "protein.pdb"
        assert params.attrs["hierarchy"] == "ROOT hip\n  JOINT knee"
        assert list(params["names"].asstr()[()]) == ["N", "CA", "C", "O"]
        element = h5["observables/protein/is_forecast"]
        assert element["value"].dtype == np.int8
        assert element["step"].id == group["position/step"].id
    np.testing.assert_array_equal(read_is_forecast(path, "protein"), [0, 0, 0, 1, 1, 1])


def periodic_system(frames: int = 5) -> Trajectory:
    """A system in a triclinic cell whose size changes every frame (as in an NPT run)."""
    rng = np.random.default_rng(11)
    box = np.triu(rng.uniform(0.5, 1.0, size=(frames, 3, 3))).transpose(0, 2, 1)
    box[:, [0, 1, 2], [0, 1, 2]] = rng.uniform(3.0, 4.0, size=(frames, 3))
    return make_trajectory("crystal", frames, 3, seed=5, box=box.astype(np.float32))


def test_periodic_box_round_trips_as_a_time_dependent_edges_element(tmp_path):
    crystal = periodic_system()
    path = tmp_path / "crystal.h5"
    write_h5md(path, [crystal, make_trajectory("gas", 2, 2, seed=6)])
    crystal_read, gas_read = read_h5md(path)
    assert_same(crystal_read, crystal)
    assert crystal_read.box.dtype == np.float32 and gas_read.box is None
    blocks = list(iter_h5md_blocks(path, "crystal", block_frames=2))
    np.testing.assert_array_equal(np.concatenate([b.box for b in blocks]), crystal.box)
    with h5py.File(path, "r") as h5:
        box = h5["particles/crystal/box"]
        assert list(box.attrs["boundary"]) == ["periodic"] * 3 and box.attrs["dimension"] == 3
        assert box["edges/value"].dtype == np.float32
        assert box["edges/value"].shape == (5, 3, 3)
        assert box["edges/value"].attrs["unit"] == "nm"
        assert box["edges/step"].id == h5["particles/crystal/position/step"].id
        assert box["edges/time"].id == h5["particles/crystal/position/time"].id
        assert list(h5["particles/gas/box"].attrs["boundary"]) == ["none"] * 3
        assert "edges" not in h5["particles/gas/box"]


def test_a_box_of_the_wrong_shape_is_refused(tmp_path):
    crystal = periodic_system()
    crystal.box = crystal.box[:4]
    with pytest.raises(ValueError) as caught:
        write_h5md(tmp_path / "bad.h5", [crystal])
    assert str(caught.value) == "expected box of shape (5, 3, 3) (got (4, 3, 3))"


def test_fixed_and_cuboid_edges_of_other_writers_read_as_matrices(tmp_path):
    path = tmp_path / "foreign.h5"
    write_h5md(path, [periodic_system(3)])
    lengths = np.array([[2.0, 3.0, 4.0], [2.5, 3.5, 4.5], [3.0, 4.0, 5.0]], dtype=np.float32)
    with h5py.File(path, "r+") as h5:
        box = h5["particles/crystal/box"]
        del box["edges/value"]
        box["edges/value"] = lengths  # time-dependent cuboid edge lengths [F, 3]
    np.testing.assert_array_equal(read_h5md(path)[0].box, lengths[:, :, None] * np.eye(3))
    with h5py.File(path, "r+") as h5:
        box = h5["particles/crystal/box"]
        del box["edges"]
        box["edges"] = lengths[0]  # one fixed cuboid box: a dataset, not an element
    np.testing.assert_array_equal(
        read_h5md(path)[0].box, np.broadcast_to(np.diag(lengths[0]), (3, 3, 3))
    )


def test_mdanalysis_reads_our_box_as_dimensions(tmp_path):
    from MDAnalysis.coordinates.H5MD import H5MDReader
    from MDAnalysis.lib.mdamath import triclinic_box

    crystal = periodic_system()
    path = tmp_path / "crystal.h5"
    write_h5md(path, [crystal])
    reader = H5MDReader(str(path))  # converts nm -> Angstrom
    for frame, ts in enumerate(reader):
        want = triclinic_box(*(crystal.box[frame].astype(np.float64) * 10))
        np.testing.assert_allclose(ts.dimensions, want, rtol=1e-5)
    reader.close()


def test_read_is_forecast_is_none_for_plain_files(tmp_path, rich_system):
    path = tmp_path / "out.h5"
    write_h5md(path, [rich_system])
    assert read_is_forecast(path, "protein") is None


def test_appending_in_chunks_equals_one_write(tmp_path, rich_system):
    path = tmp_path / "chunked.h5"
    with H5MDWriter(path) as writer:
        writer.add_system(
            "protein",
            n_particles=4,
            species=rich_system.species,
            length_unit="nm",
            time_unit="ps",
            bonds=rich_system.bonds,
            names=rich_system.names,
            charges=rich_system.charges,
            parameters=rich_system.parameters,
            has_velocities=True,
            source=rich_system.source,
            checksum=rich_system.checksum,
        )
        for start in (0, 1, 4):  # uneven chunks: 1, 3, 2 frames
            stop = {0: 1, 1: 4, 4: 6}[start]
            writer.append_frames(
                "protein",
                rich_system.positions[start:stop],
                rich_system.time[start:stop],
                rich_system.step[start:stop],
                rich_system.velocities[start:stop],
            )
    assert_same(read_h5md(path)[0], rich_system)
    blocks = list(iter_h5md_blocks(path, "protein", block_frames=4))
    assert [b.n_frames for b in blocks] == [4, 2]
    np.testing.assert_array_equal(
        np.concatenate([b.positions for b in blocks]), rich_system.positions
    )
    np.testing.assert_array_equal(
        np.concatenate([b.velocities for b in blocks]), rich_system.velocities
    )


def test_writer_checks_shapes(tmp_path):
    with H5MDWriter(tmp_path / "x.h5") as writer:
        writer.add_system(
            "s", n_particles=2, species=np.array([1, 1]), length_unit="nm", time_unit="ps"
        )
        with pytest.raises(ValueError, match=r"expected positions \[f, 2, 3\] \(got \(1, 3, 3\)\)"):
            writer.append_frames("s", np.zeros((1, 3, 3)), np.zeros(1), np.zeros(1))
        with pytest.raises(ValueError, match="expected box without system 's''s box/edges group"):
            writer.append_frames(
                "s", np.zeros((1, 2, 3)), np.zeros(1), np.zeros(1), box=np.eye(3)[None]
            )
        writer.add_system(
            "p",
            n_particles=2,
            species=np.array([1, 1]),
            length_unit="nm",
            time_unit="ps",
            has_box=True,
        )
        with pytest.raises(ValueError, match="expected box with system 'p''s box/edges group"):
            writer.append_frames("p", np.zeros((1, 2, 3)), np.zeros(1), np.zeros(1))
        with pytest.raises(ValueError, match=r"expected box of shape \(1, 3, 3\) \(got \(3, 3\)\)"):
            writer.append_frames("p", np.zeros((1, 2, 3)), np.zeros(1), np.zeros(1), box=np.eye(3))
        with pytest.raises(ValueError, match="expected a system added with add_system"):
            writer.append_frames("t", np.zeros((1, 2, 3)), np.zeros(1), np.zeros(1))
        with pytest.raises(ValueError, match="expected a system name of letters"):
            writer.add_system(
                "a/b", n_particles=1, species=np.array([1]), length_unit="nm", time_unit="ps"
            )


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_write_leaves_no_file(tmp_path, error):
    path = tmp_path / "out.h5"
    with pytest.raises(type(error)), H5MDWriter(path) as writer:
        writer.add_system(
            "s", n_particles=1, species=np.array([1]), length_unit="nm", time_unit="ps"
        )
        assert leftovers(tmp_path) == [f".out.h5.tmp-{os.getpid()}"]
        raise error
    assert leftovers(tmp_path) == []


def test_existing_output_is_refused_and_kept(tmp_path, rich_system):
    path = tmp_path / "out.h5"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError) as caught:
        write_h5md(path, [rich_system])
    assert str(caught.value) == f"{path}: exists (use --overwrite to replace it)"
    assert path.read_bytes() == b"precious"
    # A failure while overwriting keeps the old file too.
    with pytest.raises(RuntimeError), H5MDWriter(path, overwrite=True):
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"precious"
    write_h5md(path, [rich_system], overwrite=True)
    assert list_systems(path) == ["protein"]
    assert leftovers(tmp_path) == ["out.h5"]


def test_unwritable_directory_is_an_output_error(tmp_path, rich_system):
    missing = tmp_path / "no" / "out.h5"
    with pytest.raises(OutputError) as caught:
        write_h5md(missing, [rich_system])
    assert str(caught.value) == f"{missing}: directory {missing.parent} does not exist"


def test_reading_bad_files_names_the_file_and_problem(tmp_path, rich_system):
    missing = tmp_path / "missing.h5"
    text = tmp_path / "text.h5"
    text.write_text("not hdf5\n")
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as h5:
        h5.create_group("particles")
    good = tmp_path / "good.h5"
    write_h5md(good, [rich_system])
    many = tmp_path / "many.h5"
    write_h5md(many, [dataclasses.replace(rich_system, name=f"s{i:02d}") for i in range(12)])
    cases = [
        (missing, None, f"{missing}: no such file"),
        (text, None, f"{text}: not an HDF5 file"),
        (bare, None, f"{bare}: not an H5MD file (no /h5md or /particles group)"),
        (good, ["ligand"], f"{good}: no system 'ligand' (systems: protein)"),
        (
            many,
            ["ligand"],
            f"{many}: no system 'ligand' (12 systems: s00, s01, s02, s03, s04, s05, s06, s07, ...; "
            "`dynforecast info` lists them)",
        ),
    ]
    for path, systems, message in cases:
        with pytest.raises(InputError) as caught:
            read_h5md(path, systems)
        assert str(caught.value) == message


def test_file_checksum_is_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several read blocks
    path.write_bytes(data)
    assert file_checksum(path) == hashlib.sha256(data).hexdigest()


def test_mdanalysis_reads_our_positions_velocities_and_time(tmp_path, rich_system):
    from MDAnalysis.coordinates.H5MD import H5MDReader

    path = tmp_path / "out.h5"
    write_h5md(path, [rich_system], is_forecast={"protein": np.array([0, 0, 0, 1, 1, 1])})
    reader = H5MDReader(str(path))  # converts nm -> Angstrom, nm/ps -> Angstrom/ps
    assert reader.n_frames == 6
    for frame, ts in enumerate(reader):
        np.testing.assert_allclose(ts.positions, rich_system.positions[frame] * 10, rtol=1e-6)
        np.testing.assert_allclose(ts.velocities, rich_system.velocities[frame] * 10, rtol=1e-6)
        assert ts.time == pytest.approx(rich_system.time[frame])
        assert ts.data["protein/is_forecast"] == int(frame >= 3)
    reader.close()


def test_dimensionless_data_carries_no_unit_attribute(tmp_path):
    from MDAnalysis.coordinates.H5MD import H5MDReader

    skeleton = make_trajectory("skeleton", 3, 5, seed=4)
    skeleton.length_unit, skeleton.time_unit = "1", "1"
    skeleton.velocities = np.ones((3, 5, 3), dtype=np.float32)
    path = tmp_path / "skeleton.h5"
    write_h5md(path, [skeleton])
    with h5py.File(path, "r") as h5:
        group = h5["particles/skeleton"]
        for dataset in ("position/value", "position/time", "velocity/value"):
            assert "unit" not in group[dataset].attrs
    (read,) = read_h5md(path)
    assert (read.length_unit, read.time_unit) == ("1", "1")
    reader = H5MDReader(str(path), convert_units=False)
    np.testing.assert_array_equal(reader.ts.positions, skeleton.positions[0])
    reader.close()


def test_velocity_units_drop_unitless_factors():
    from dynforecast.io.h5md import velocity_unit_for

    assert velocity_unit_for("nm", "ps") == "nm ps-1"
    assert velocity_unit_for("Angstrom", "1") == "Angstrom"
    assert velocity_unit_for("1", "s") == "s-1"
    assert velocity_unit_for("1", "1") == "1"
