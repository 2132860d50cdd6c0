"""Seed files of every format family: the field cases, MDAnalysisTests' small real files and files
written here with mdtraj and ase from the field cases (so each binary format has a tiny seed).

A seed is a `Seed`: the input file (and, for trajectory formats, the topology) as bytes, so a
mutant is a copy with one of its files changed. Large real files are left out: a fuzzer's
throughput matters more than one more big protein.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

FIELD_CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "field_cases"

#: Families and the file-name suffix of their input (the topology's, where there is one).
FAMILIES = ("pdb", "xyz", "bvh", "psf+dcd", "gro+xtc", "gro+trr", "pdb+nc", "asf+amc")

#: MDAnalysisTests datafiles used as seeds (all under ~100 KB).
_MDA_SEEDS = {
    "pdb": (
        "PDB_elements",
        "PDB_conect",
        "PDB_mc",
        "PDB_cm",
        "PDB_xlserial",
        "ALIGN",
        "PDB_charges",
        "PDB_multipole",
        "PDB_helix",
        "PDB_NAMD",
    ),
    "xyz": ("XYZ_mini", "XYZ_five"),
    "psf+dcd": (("PSF_TRICLINIC", "DCD_TRICLINIC"),),
}


@dataclass(frozen=True)
class Seed:
    """One seed input: ``files`` maps a file name to its bytes; ``input`` and ``topology`` name them."""

    label: str
    files: tuple[tuple[str, bytes], ...]
    input: str
    topology: str | None = None


def _file_seed(label: str, path: Path) -> Seed:
    return Seed(label, ((path.name, path.read_bytes()),), path.name)


def _pair(label: str, topology: Path, trajectory: Path) -> Seed:
    names = ("top" + _suffix(topology), "traj" + _suffix(trajectory))
    files = ((names[0], topology.read_bytes()), (names[1], trajectory.read_bytes()))
    return Seed(label, files, names[1], names[0])


def _suffix(path: Path) -> str:
    return "".join(path.suffixes[-1:])


def _mdanalysis(name: str) -> Path | None:
    try:
        import MDAnalysisTests.datafiles as datafiles
    except ImportError:  # the test extra is not installed: fuzz the other seeds
        return None
    path = getattr(datafiles, name, None)
    return Path(path) if path and Path(path).is_file() else None


def _written(workdir: Path) -> dict[str, list[Seed]]:
    """Tiny GRO/XTC/TRR/DCD/NetCDF/PDB/extxyz files written by mdtraj and ase."""
    import mdtraj
    import numpy as np

    seeds: dict[str, list[Seed]] = {f: [] for f in FAMILIES}
    traj = mdtraj.load(str(FIELD_CASES / "tiny_traj.pdb"), top=str(FIELD_CASES / "tiny.psf"))
    traj.time = np.arange(traj.n_frames, dtype=np.float32) * 2.0
    traj.unitcell_vectors = np.tile(np.eye(3, dtype=np.float32) * 3.0, (traj.n_frames, 1, 1))
    paths = {}
    for ext in ("gro", "xtc", "trr", "dcd", "nc", "pdb"):
        paths[ext] = workdir / f"tiny.{ext}"
        with warnings.catch_warnings():  # mdtraj's advice to install netCDF4
            warnings.simplefilter("ignore")
            traj.save(str(paths[ext]))
    seeds["gro+xtc"].append(_pair("mdtraj tiny gro+xtc", paths["gro"], paths["xtc"]))
    seeds["gro+trr"].append(_pair("mdtraj tiny gro+trr", paths["gro"], paths["trr"]))
    seeds["psf+dcd"].append(_pair("tiny.psf+mdtraj dcd", FIELD_CASES / "tiny.psf", paths["dcd"]))
    seeds["pdb+nc"].append(_pair("mdtraj tiny pdb+nc", paths["pdb"], paths["nc"]))
    seeds["pdb"].append(_file_seed("mdtraj tiny pdb", paths["pdb"]))
    for name, (top, fam) in {
        "XTC_multi_frame": ("gro", "gro+xtc"),
        "TRR_multi_frame": ("gro", "gro+trr"),
    }.items():
        real = _mdanalysis(name)
        if real is not None:  # 10 atoms, 10 frames: give it a 10-atom topology of its own
            frame = mdtraj.load(str(real), top=_ten_atom_topology(workdir))[:1]
            frame.save(str(workdir / f"{name}.{top}"))
            seeds[fam].append(_pair(f"MDAnalysisTests {name}", workdir / f"{name}.{top}", real))

    import ase
    import ase.io

    rng = np.random.default_rng(0)
    frames = []
    for k in range(4):
        atoms = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        atoms.positions += 0.01 * k
        atoms.set_momenta(rng.normal(size=(3, 3)) * 0.01)
        atoms.info["time"] = 0.5 * k
        atoms.cell = np.eye(3) * 10.0
        atoms.pbc = k % 2 == 0 or True
        frames.append(atoms)
    ase.io.write(str(workdir / "water.extxyz"), frames, format="extxyz")
    ase.io.write(str(workdir / "water_plain.xyz"), frames, format="xyz")
    seeds["xyz"].append(_file_seed("ase extxyz with momenta", workdir / "water.extxyz"))
    seeds["xyz"].append(_file_seed("ase plain xyz", workdir / "water_plain.xyz"))
    return seeds


def _ten_atom_topology(workdir: Path) -> str:
    lines = [
        f"ATOM  {i + 1:5d}  C   ALA A{i + 1:4d}    {i:8.3f}{0:8.3f}{0:8.3f}  1.00  0.00           C"
        for i in range(10)
    ]
    path = workdir / "ten.pdb"
    path.write_text("\n".join(lines) + "\nEND\n")
    return str(path)


def seed_corpus(families: tuple[str, ...] = FAMILIES) -> dict[str, list[Seed]]:
    """Seeds of each family in a fixed order (the order matters: a run is seeded by index)."""
    corpus: dict[str, list[Seed]] = {f: [] for f in FAMILIES}
    for path in sorted(FIELD_CASES.iterdir()):
        ext = path.suffix.lower()
        if ext in (".pdb", ".xyz", ".bvh"):
            corpus[ext[1:]].append(_file_seed(f"field case {path.name}", path))
    with tempfile.TemporaryDirectory(prefix="dynforecast-fuzz-seeds-") as tmp:
        written = _written(Path(tmp))
        for family, seeds in written.items():
            corpus[family].extend(seeds)
        dcd = Path(tmp) / "tiny.dcd"
        corpus["psf+dcd"].append(
            _pair("tiny_inscode.psf+dcd", FIELD_CASES / "tiny_inscode.psf", dcd)
        )
    for family, names in _MDA_SEEDS.items():
        for name in names:
            if isinstance(name, tuple):
                top, traj = (_mdanalysis(n) for n in name)
                if top and traj:
                    corpus[family].append(_pair(f"MDAnalysisTests {'+'.join(name)}", top, traj))
            elif (path := _mdanalysis(name)) is not None:
                corpus[family].append(_file_seed(f"MDAnalysisTests {name}", path))
    corpus["bvh"].extend(_synthetic_bvh())
    corpus["asf+amc"].extend(_asf_amc())
    return {f: corpus[f] for f in families}


def _synthetic_bvh() -> list[Seed]:
    """A random skeleton and motion from the project's own generator, written by its BVH writer."""
    import numpy as np

    from dynforecast.io.bvh import format_bvh
    from dynforecast.io.bvh_synthetic import random_motion, random_skeleton

    rng = np.random.default_rng(1)
    skeleton = random_skeleton(rng, 6, six_channel_fraction=0.3)
    text = format_bvh(skeleton, random_motion(rng, skeleton, 5), 1 / 120)
    return [Seed("synthetic bvh", (("synthetic.bvh", text.encode()),), "synthetic.bvh")]


#: A small CMU-style skeleton: root + four bones, non-zero axes, each kind of dof list, limits.
_ASF = """# fuzz seed
:version 1.10
:name fuzz
:units
  mass 1.0
  length 0.45
  angle deg
:documentation
  written for the fuzzer
:root
  order TX TY TZ RX RY RZ
  axis XYZ
  position 0 0 0
  orientation 0 0 0
:bonedata
  begin
    id 1
    name lhipjoint
    direction 0.6 -0.7 0.3
    length 2.4
    axis 0 0 0 XYZ
  end
  begin
    id 2
    name lfemur
    direction 0.34 -0.94 0
    length 7.1
    axis 0 0 20 XYZ
    dof rx ry rz
    limits (-160.0 20.0)
           (-70.0 70.0)
           (-60.0 70.0)
  end
  begin
    id 3
    name ltibia
    direction 0.34 -0.94 0
    length 7.5
    axis 0 0 20 XYZ
    dof rx
    limits (-10.0 170.0)
  end
  begin
    id 4
    name lowerback
    direction 0.01 0.99 -0.05
    length 2.0
    axis 0 30 0 ZYX
    dof rz rx ry
  end
:hierarchy
  begin
    root lhipjoint lowerback
    lhipjoint lfemur
    lfemur ltibia
  end
"""


def _asf_amc() -> list[Seed]:
    """The skeleton above with a 4-frame motion in degrees (CMU's layout, frames from 1)."""
    rows = []
    for frame in range(1, 5):
        a = 3.0 * frame
        rows += [
            str(frame),
            f"root {0.1 * frame:.4f} 17.2 {-0.5 * frame:.4f} {a:.3f} {-a:.3f} {2 * a:.3f}",
            f"lfemur {-20 + a:.3f} {5 - a:.3f} {a / 2:.3f}",
            f"ltibia {30 + a:.3f}",
            f"lowerback {a:.3f} {-a / 3:.3f} 1.5",
        ]
    amc = "#!OML:ASF fuzz.asf\n:FULLY-SPECIFIED\n:DEGREES\n" + "\n".join(rows) + "\n"
    files = (("skel.asf", _ASF.encode()), ("walk.amc", amc.encode()))
    return [Seed("generated CMU-style asf+amc", files, "walk.amc", "skel.asf")]
