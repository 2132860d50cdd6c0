"""Readers (mdtraj, ase), ingest, and PDB/XYZ export on real files shipped with MDAnalysisTests."""

from __future__ import annotations

import os

import numpy as np
import pytest
from MDAnalysisTests import datafiles

from dynforecast.errors import InputError, UsageError
from dynforecast.io.dcd_header import read_dcd_clock
from dynforecast.io.export import export_trajectory
from dynforecast.io.h5md import read_h5md
from dynforecast.io.ingest import ingest
from dynforecast.io.readers import open_input, read_trajectory
from dynforecast.io.xyz import BOND_SCALE, XYZ_VELOCITY_UNIT

NMR_PDB = os.path.join(os.path.dirname(datafiles.PDB), "nmr_neopetrosiamide.pdb")
ADK_PSF, ADK_DCD = datafiles.PSF, datafiles.DCD  # 3341 atoms, 98 frames
OPLS_GRO, OPLS_XTC, OPLS_TRR = datafiles.GRO, datafiles.XTC, datafiles.TRR  # 47681 atoms
XYZ_FILE = datafiles.XYZ  # 2r9r-1b.xyz: 1284 atoms, 10 frames


def mdtraj_load(*args, **kwargs):
    import warnings

    import mdtraj

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mdtraj.load(*args, **kwargs)


# PDB ------------------------------------------------------------------------------------------


def test_multi_model_pdb_matches_mdtraj():
    traj = read_trajectory(NMR_PDB)
    reference = mdtraj_load(NMR_PDB)
    assert traj.name == "nmr_neopetrosiamide"
    assert (traj.n_frames, traj.n_particles) == (24, 392)
    np.testing.assert_array_equal(traj.positions, reference.xyz)
    np.testing.assert_array_equal(traj.time, reference.time)
    np.testing.assert_array_equal(traj.step, np.arange(24))
    assert (traj.length_unit, traj.time_unit) == (
        "nm",
        "1",
    )  # multi-model PDB stores no times: frame indices
    atoms = list(reference.topology.atoms)
    assert traj.species.tolist() == [a.element.atomic_number for a in atoms]
    # Names as the file writes them, not mdtraj's PDB-standard renames (H1 stays H1).
    as_written = list(mdtraj_load(NMR_PDB, standard_names=False).topology.atoms)
    assert traj.names == [a.name for a in as_written]
    assert traj.names[11] == "H1" and atoms[11].name == "H"
    assert traj.parameters["residue_names"].tolist() == [a.residue.name for a in as_written]
    assert traj.parameters["residue_ids"].tolist() == [a.residue.resSeq for a in atoms]
    assert set(traj.parameters["chain_ids"].tolist()) == {"A"}
    bonds = {tuple(sorted((a.index, b.index))) for a, b in reference.topology.bonds}
    assert {tuple(sorted(b)) for b in traj.bonds.tolist()} == bonds
    assert len(bonds) == 401


def test_selection_and_stride_on_pdb():
    traj = read_trajectory(NMR_PDB, select="not element H", stride=5)
    reference = mdtraj_load(NMR_PDB)
    heavy = reference.topology.select("not element H")
    assert traj.n_particles == heavy.size and traj.n_frames == 5
    np.testing.assert_array_equal(traj.positions, reference.xyz[::5][:, heavy])
    np.testing.assert_array_equal(traj.step, [0, 5, 10, 15, 20])
    assert (traj.species != 1).all()
    assert traj.bonds.max() < heavy.size
    assert traj.parameters["selection"] == "not element H"


# Topology + trajectory ------------------------------------------------------------------------


def test_psf_dcd_chunked_and_strided_match_mdtraj():
    reference = mdtraj_load(ADK_DCD, top=ADK_PSF)
    traj = read_trajectory(ADK_DCD, topology=ADK_PSF, chunk_frames=7)
    assert (traj.n_frames, traj.n_particles) == (98, 3341)
    np.testing.assert_array_equal(traj.positions, reference.xyz)
    assert traj.bonds.shape == (reference.topology.n_bonds, 2)
    assert traj.parameters["topology"] == ADK_PSF
    strided = read_trajectory(ADK_DCD, topology=ADK_PSF, stride=3, chunk_frames=5)
    np.testing.assert_array_equal(strided.positions, reference.xyz[::3])
    # the header's steps, ISTART + i NSAVC (1000 + 1000 i), not the frame index
    np.testing.assert_array_equal(strided.step, 1000 + 1000 * np.arange(0, 98, 3))


def test_selection_on_topology_and_trajectory():
    traj = read_trajectory(ADK_DCD, topology=ADK_PSF, select="name CA")
    reference = mdtraj_load(ADK_DCD, top=ADK_PSF)
    ca = reference.topology.select("name CA")
    assert traj.n_particles == 214
    np.testing.assert_array_equal(traj.positions, reference.xyz[:, ca])
    assert set(traj.names) == {"CA"}


@pytest.mark.parametrize("trajectory", [OPLS_XTC, OPLS_TRR])
def test_gro_with_xtc_and_trr(trajectory):
    traj = read_trajectory(trajectory, topology=OPLS_GRO, select="protein and name CA")
    reference = mdtraj_load(trajectory, top=OPLS_GRO)
    ca = reference.topology.select("protein and name CA")
    np.testing.assert_array_equal(traj.positions, reference.xyz[:, ca])
    np.testing.assert_allclose(traj.time, reference.time)
    assert traj.n_frames == 10 and traj.time_unit == "ps"


def test_topology_trajectory_particle_mismatch_names_both():
    with pytest.raises(InputError) as caught:
        open_input(ADK_DCD, name="x", topology=datafiles.PDB)
    assert str(caught.value) == (
        f"{ADK_DCD}: 3341 particles, but topology {datafiles.PDB} has 47681"
    )


def test_bad_selection_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        open_input(NMR_PDB, name="x", select="name ZZZ")
    assert str(caught.value) == f"--select 'name ZZZ': matches no atoms in {NMR_PDB}"


# XYZ ------------------------------------------------------------------------------------------


def test_plain_multi_frame_xyz_matches_mdanalysis():
    import MDAnalysis

    traj = read_trajectory(XYZ_FILE)
    universe = MDAnalysis.Universe(XYZ_FILE)
    assert (traj.n_frames, traj.n_particles) == (10, 1284)
    expected = np.stack([ts.positions.copy() for ts in universe.trajectory])
    np.testing.assert_allclose(traj.positions, expected, rtol=1e-6)
    assert (traj.length_unit, traj.time_unit) == ("Angstrom", "1")
    np.testing.assert_array_equal(traj.time, np.arange(10))
    assert traj.velocities is None


def write_ethanol(path, frames=4, with_time=True):
    """Extended XYZ of a jiggled ethanol with velocities (ASE writes them as momenta)."""
    import ase.io
    from ase.build import molecule

    rng = np.random.default_rng(3)
    images = []
    for k in range(frames):
        atoms = molecule("CH3CH2OH")
        atoms.positions += rng.normal(0, 0.01, atoms.positions.shape)
        atoms.set_velocities(rng.normal(0, 0.01, (len(atoms), 3)))
        if with_time:
            atoms.info["time"] = 0.5 * k
        images.append(atoms)
    ase.io.write(path, images, format="extxyz")
    return images


def test_extxyz_velocities_time_and_inferred_bonds(tmp_path):
    from ase import units

    images = write_ethanol(tmp_path / "ethanol.extxyz")
    traj = read_trajectory(tmp_path / "ethanol.extxyz", chunk_frames=3)
    # ASE writes 8 decimals: compare to that precision.
    np.testing.assert_allclose(traj.positions, [a.positions for a in images], atol=1e-7)
    momenta_precision = 1e-8 / 1.008 * units.fs  # lightest atom, 8-decimal momenta
    np.testing.assert_allclose(
        traj.velocities, [a.get_velocities() * units.fs for a in images], atol=momenta_precision
    )
    assert traj.parameters["velocity_unit"] == XYZ_VELOCITY_UNIT == "Angstrom fs-1"
    assert (traj.time_unit, traj.time.tolist()) == ("fs", [0.0, 0.5, 1.0, 1.5])
    symbols = images[0].get_chemical_symbols()
    bonded = sorted("".join(sorted(symbols[i] + symbols[j])) for i, j in traj.bonds.tolist())
    # Ethanol: C-C, C-O, O-H and five C-H bonds; no H-H or 1-3 pairs.
    assert bonded == ["CC", "CH", "CH", "CH", "CH", "CH", "CO", "HO"]
    assert BOND_SCALE == 1.2


def assert_read_errors(cases) -> None:
    """Each (path, message): reading path raises InputError with exactly that message."""
    for path, message in cases:
        with pytest.raises(InputError) as caught:
            read_trajectory(path)
        assert str(caught.value) == message


def test_xyz_errors_name_the_file_and_frame(tmp_path):
    whole = open(XYZ_FILE).read()
    truncated = tmp_path / "truncated.xyz"
    truncated.write_text(whole[: len(whole) // 30])  # inside frame 0
    unknown = datafiles.XYZ_mini  # elements "A", "B", "C"
    varying = tmp_path / "varying.xyz"
    varying.write_text("2\n\nH 0 0 0\nH 0 0 1\n3\n\nH 0 0 0\nH 0 0 1\nH 0 1 0\n")
    nan = tmp_path / "nan.xyz"
    nan.write_text("1\n\nH 0 0 0\n1\n\nH 0 0 0\n1\n\nH nan 0 0\n")
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    cases = [
        (
            truncated,
            f"{truncated}: frame 0 (line 1) is truncated: the file ends after 428 of its "
            "1284 atom lines",
        ),
        (unknown, f"{unknown}: line 3: malformed XYZ (unknown element symbol 'A')"),
        (varying, f"{varying}: line 5: frame 1 has 3 atoms, expected 2"),
        (nan, f"{nan}: non-finite (NaN or inf) coordinates in frame 2"),
        (empty, f"{empty}: empty file"),
    ]
    assert_read_errors(cases)


def test_nan_in_pdb_names_the_frame(tmp_path):
    line = "ATOM      1  CA  ALA A   1    {:>8s}   1.000   2.000  1.00  0.00           C\n"
    text = "".join(
        f"MODEL     {k + 1:>4d}\n{line.format(x)}ENDMDL\n"
        for k, x in enumerate(["0.000", "1.000", "nan"])
    )
    path = tmp_path / "nan.pdb"
    path.write_text(text + "END\n")
    with pytest.raises(InputError) as caught:
        read_trajectory(path)
    assert str(caught.value) == f"{path}: non-finite (NaN or inf) coordinates in frame 2"


def test_malformed_and_unknown_inputs(tmp_path):
    truncated = tmp_path / "truncated.pdb"
    text = open(NMR_PDB).read()
    truncated.write_text(text[: len(text) // 2])
    garbage = tmp_path / "garbage.pdb"
    garbage.write_text("this is not a PDB\n")
    short_record = tmp_path / "short.pdb"  # mdtraj checks this one with a bare assert
    short_record.write_text("ATOM  garbage\n")
    unknown = tmp_path / "data.csv"
    unknown.write_text("1,2,3\n")
    cases = [
        (
            truncated,
            # the cut model is named (mdtraj says "All MODELs must contain the same number")
            f"{truncated}: model 12 of 12 (from line 4597) has 283 ATOM/HETATM records, the "
            "first model 392; every model must hold the same atoms (split the file into "
            "trajectories of equal models)",
        ),
        (garbage, f"{garbage}: no atoms (no ATOM/HETATM records)"),
        (short_record, f"{short_record}: malformed PDB (AssertionError)"),
        (tmp_path / "missing.pdb", f"{tmp_path / 'missing.pdb'}: no such file"),
        (
            unknown,
            f"{unknown}: unknown extension '.csv' (supported: .bvh, .ent, .extxyz, .extxyz.bz2,"
            " .extxyz.gz, .pdb, .pdb.gz, .xyz, .xyz.bz2, .xyz.gz;"
            " with --topology: .binpos, .dcd, .gro, .lammpstrj, .nc, .ncdf, .netcdf, .pdb,"
            " .pdb.gz, .trr, .xtc)",
        ),
        (ADK_DCD, f"{ADK_DCD}: a .dcd trajectory needs --topology"),
    ]
    assert_read_errors(cases)


# Ingest and round trips -----------------------------------------------------------------------


def test_ingest_several_inputs_streams_into_one_file(tmp_path):
    write_ethanol(tmp_path / "ethanol.extxyz")
    out = tmp_path / "all.h5"
    seen = []
    systems = ingest(
        [NMR_PDB, tmp_path / "ethanol.extxyz"],
        out,
        names=["nmr", "ethanol"],
        chunk_frames=5,
        progress=lambda name, frames: seen.append((name, frames)),
    )
    assert [(s.name, s.frames, s.particles) for s in systems] == [
        ("nmr", 24, 392),
        ("ethanol", 4, 9),
    ]
    assert seen == [("nmr", 5), ("nmr", 10), ("nmr", 15), ("nmr", 20), ("nmr", 24), ("ethanol", 4)]
    nmr, ethanol = read_h5md(out)
    assert_trajectories_equal(nmr, read_trajectory(NMR_PDB, name="nmr"))
    assert_trajectories_equal(ethanol, read_trajectory(tmp_path / "ethanol.extxyz", name="ethanol"))
    assert nmr.checksum and nmr.source == NMR_PDB


def assert_trajectories_equal(got, want) -> None:
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.time, want.time)
    np.testing.assert_array_equal(got.step, want.step)
    np.testing.assert_array_equal(got.species, want.species)
    np.testing.assert_array_equal(got.bonds, want.bonds)
    assert got.names == want.names and got.checksum == want.checksum
    if want.velocities is not None:
        np.testing.assert_array_equal(got.velocities, want.velocities)


def test_failed_ingest_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("1\n\nH 0 0 0\n1\n\nH 0 0 oops\n")
    out = tmp_path / "out.h5"
    with pytest.raises(InputError):
        ingest([NMR_PDB, bad], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.xyz"]


def test_ingested_psf_dcd_opens_in_mdanalysis_with_same_positions(tmp_path):
    import MDAnalysis

    out = tmp_path / "adk.h5"
    ingest([ADK_DCD], out, topology=ADK_PSF)
    ours = MDAnalysis.Universe(ADK_PSF, str(out), format="H5MD")
    theirs = MDAnalysis.Universe(ADK_PSF, ADK_DCD)
    assert len(ours.trajectory) == len(theirs.trajectory) == 98
    for frame in (0, 50, 97):
        ours.trajectory[frame]
        theirs.trajectory[frame]
        # MDAnalysis converts our nm to Angstrom; DCD stores Angstrom in float32.
        np.testing.assert_allclose(ours.atoms.positions, theirs.atoms.positions, atol=2e-5)


def test_pdb_round_trip_through_h5md_and_export(tmp_path):
    out = tmp_path / "nmr.h5"
    ingest([NMR_PDB], out)
    (original,) = read_h5md(out)
    export_trajectory(original, tmp_path / "back.pdb")
    again = read_trajectory(tmp_path / "back.pdb", name=original.name)
    np.testing.assert_array_equal(again.positions, original.positions)
    np.testing.assert_array_equal(again.species, original.species)
    assert again.names == original.names
    for key in ("residue_names", "residue_ids", "chain_ids", "elements"):
        np.testing.assert_array_equal(again.parameters[key], original.parameters[key])
    assert {tuple(b) for b in again.bonds.tolist()} == {tuple(b) for b in original.bonds.tolist()}


def test_xyz_round_trip_keeps_float32_positions_velocities_and_time(tmp_path):
    write_ethanol(tmp_path / "ethanol.extxyz")
    original = read_trajectory(tmp_path / "ethanol.extxyz")
    export_trajectory(original, tmp_path / "back.xyz")
    again = read_trajectory(tmp_path / "back.xyz")
    np.testing.assert_array_equal(again.positions, original.positions)
    np.testing.assert_allclose(again.velocities, original.velocities, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(again.time, original.time)
    np.testing.assert_array_equal(again.bonds, original.bonds)


def test_nm_system_exports_to_xyz_in_angstrom_and_fs(tmp_path):
    original = read_trajectory(ADK_DCD, topology=ADK_PSF, select="name CA")
    export_trajectory(original, tmp_path / "adk.xyz")
    again = read_trajectory(tmp_path / "adk.xyz")
    assert (again.length_unit, again.time_unit) == ("Angstrom", "fs")
    np.testing.assert_allclose(again.positions, original.positions * 10, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(again.time, original.time * 1000)
    np.testing.assert_array_equal(again.species, original.species)


def test_untimed_pdb_exports_to_xyz_without_times(tmp_path):
    original = read_trajectory(NMR_PDB)
    assert original.time_unit == "1"
    export_trajectory(original, tmp_path / "nmr.xyz")
    assert "time=" not in (tmp_path / "nmr.xyz").read_text()
    again = read_trajectory(tmp_path / "nmr.xyz")
    assert again.time_unit == "1"
    np.testing.assert_array_equal(again.time, original.time)


@pytest.mark.parametrize(
    "name", ["adk_dims.dcd", "adk_dims2.dcd", "watdyn.dcd", "adk_gbis_tmd-fast1_NAMD.dcd"]
)
def test_dcd_times_come_from_the_header_like_mdanalysis(name):
    import warnings

    import MDAnalysis

    path = os.path.join(os.path.dirname(ADK_DCD), name)
    clock = read_dcd_clock(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        reader = MDAnalysis.coordinates.DCD.DCDReader(path)
        expected = [ts.time for ts in reader[:3]]
        reader.close()
    np.testing.assert_allclose(clock.times(np.arange(3)), expected, rtol=1e-12)


def test_dcd_header_without_a_time_step_gives_no_clock(tmp_path):
    header = bytearray(open(ADK_DCD, "rb").read(92))
    header[44:48] = bytes(4)  # DELTA = 0
    broken = tmp_path / "no_delta.dcd"
    broken.write_bytes(bytes(header))
    assert read_dcd_clock(broken) is None
    (tmp_path / "short.dcd").write_bytes(b"\x54\x00")
    assert read_dcd_clock(tmp_path / "short.dcd") is None
    assert read_dcd_clock(NMR_PDB) is None  # not a DCD


def test_bvh_ingests_through_the_same_dispatcher_and_exports_back(tmp_path):
    from dynforecast.io.bvh import format_bvh, read_bvh
    from dynforecast.io.bvh_synthetic import random_motion, random_skeleton

    rng = np.random.default_rng(5)
    skeleton = random_skeleton(rng, 6, six_channel_fraction=0.0)
    source = tmp_path / "walk.bvh"
    source.write_text(format_bvh(skeleton, random_motion(rng, skeleton, 12), 1 / 60))
    out = tmp_path / "walk.h5"
    (summary,) = ingest([source], out, stride=2)
    assert (summary.name, summary.frames) == ("walk", 6)
    (stored,) = read_h5md(out)
    direct = read_bvh(source, name="walk", stride=2)
    np.testing.assert_array_equal(stored.positions, direct.positions)
    np.testing.assert_array_equal(stored.bonds, direct.bonds)
    assert stored.names == direct.names
    export_trajectory(stored, tmp_path / "back.bvh")
    again = read_bvh(tmp_path / "back.bvh")
    np.testing.assert_allclose(again.positions, stored.positions, atol=1e-4)
    with pytest.raises(UsageError) as caught:
        open_input(source, name="walk", select="name CA")
    assert str(caught.value) == "--select 'name CA': matches no joints"


def test_ingest_memory_is_bounded_by_the_chunk_not_the_trajectory(tmp_path):
    """Streaming: the traced peak grows with --chunk-frames, not with the trajectory length."""
    import tracemalloc

    long_dcd = tmp_path / "adk_x5.dcd"  # 490 frames: positions dominate the parse's transients
    reference = mdtraj_load(ADK_DCD, top=ADK_PSF)
    reference.join([reference] * 4).save_dcd(str(long_dcd))

    def peak(chunk_frames: int) -> int:
        tracemalloc.start()
        try:
            ingest(
                [long_dcd],
                tmp_path / "adk.h5",
                topology=ADK_PSF,
                chunk_frames=chunk_frames,
                overwrite=True,
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    all_positions = 490 * 3341 * 3 * 4  # bytes of float32 positions of the whole trajectory
    streamed, whole = peak(8), peak(490)
    assert streamed < 0.5 * all_positions
    assert whole - streamed > 0.8 * all_positions


def test_every_input_is_checked_before_the_first_converts(tmp_path, monkeypatch):
    import dynforecast.io.ingest as ingest_module

    def must_not_open(*args, **kwargs):
        raise AssertionError("opened an input before checking all of them")

    monkeypatch.setattr(ingest_module, "open_input", must_not_open)
    missing = tmp_path / "missing.xyz"
    with pytest.raises(InputError) as caught:
        ingest([NMR_PDB, missing], tmp_path / "out.h5")
    assert str(caught.value) == f"{missing}: no such file"
    with pytest.raises(UsageError) as caught:
        ingest([NMR_PDB, XYZ_FILE], tmp_path / "out.h5", select="name CA or resname ALA")
    assert str(caught.value) == (
        "--select 'name CA or resname ALA': unknown keyword 'resname' (XYZ selections know "
        "all, none, element, name, index; with and, or, not and parentheses)"
    )
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_non_finite_positions_and_unknown_extensions(tmp_path):
    from dynforecast.errors import UsageError

    traj = read_trajectory(NMR_PDB, stride=8)
    with pytest.raises(UsageError) as caught:
        export_trajectory(traj, tmp_path / "out.gro")
    assert str(caught.value) == (
        f"{tmp_path / 'out.gro'}: unknown export extension '.gro' "
        "(supported: .pdb, .xyz, .extxyz, .bvh, .amc)"
    )
    traj.positions[2, 5, 1] = np.inf
    for name in ("out.pdb", "out.xyz"):
        with pytest.raises(UsageError) as caught:
            export_trajectory(traj, tmp_path / name)
        assert (
            str(caught.value) == f"{tmp_path / name}: cannot write non-finite positions (frame 2)"
        )
    assert list(tmp_path.iterdir()) == []


def test_compressed_inputs_read_like_plain_ones(tmp_path):
    import gzip

    packed = tmp_path / "nmr.pdb.gz"
    packed.write_bytes(gzip.compress(open(NMR_PDB, "rb").read()))
    np.testing.assert_array_equal(
        read_trajectory(packed).positions, read_trajectory(NMR_PDB).positions
    )
    bz2_xyz = read_trajectory(datafiles.XYZ_bz2)  # 2r9r-1b.xyz.bz2
    assert bz2_xyz.name == "2r9r-1b"
    np.testing.assert_array_equal(bz2_xyz.positions, read_trajectory(XYZ_FILE).positions)
