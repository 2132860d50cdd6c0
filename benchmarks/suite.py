"""The benchmark tables: their data sets, how each is made from PyPI packages, and their cells.

A *cell* is one (table, data set, split, model, seed) training run, run through the CLI a user
runs (`dynforecast ingest` / `generate` -> `train` -> `evaluate --json`); its result is one JSON
file (benchmarks/run.py). Data sets are generated or extracted into the cache
(``$DYNFORECAST_CACHE/benchmarks``, the same cache as the built-in N-body set) and never
committed.

Tables (issue 12; the papers' protocols):

* ``md17``: GFN2-xTB trajectories of the eight MD17 molecules (benchmarks/md17_xtb.py), heavy
  atoms, ESTAG's MD17 protocol (T=10 frames 10 apart, target 100 frames after the first; bonds +
  2 hops), ESTAG's ``md17_reference`` split and a chronological 60/20/20 split.
* ``nbody``: EGNN's charged 5-body recipe (3000/2000/2000 trajectories, frame 30 -> 40 with
  velocities; `generate --recipe nbody_small`), split by whole trajectories in stored order.
* ``adk``: the three AdK transitions of MDAnalysisTests (DIMS 1, DIMS 2, NAMD TMD), C-alpha, radius
  graph, ESTAG's AdK window (T=10, D=5); one trajectory per split (train DIMS 1, validate on
  DIMS 2, test on the TMD transition), and ESTAG's ``adk_reference`` split within each one.
  The DIMS frames are steps along a sampled transition, not equal times, and the TMD file's
  header says 0.01 ps per frame: all three are ingested with one frame time (``--time-step
  "1 ps"``), so that windows count frames alike.
* ``motion``: full-body BVH clips shipped in the bvhtools sdist (PyPI), skeleton + 2 hops, ESTAG's
  motion window (T=10, D=5); clip-level split (train and validate on two parts of one clip, test
  on another clip of the same skeleton and frame rate) and the chronological split within clips.

``quick`` versions use tiny data and budgets so that every table runs end to end in minutes (3 for
ESTAG alone on 2 cores; CI runs them); their results go to a separate, uncommitted folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dynforecast.data.builtin import cache_dir

#: Models that are trained (one row each) and how they are configured on every table. "egnn_paper"
#: is EGNN configured like the papers' rows: one past frame (its velocity from the file where
#: the file has velocities), 16 wide and 4 layers deep (about 4k parameters); "egnn" is ours
#: (64 x 4, default window).
MODEL_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "estag": ("estag", ()),
    "sake": ("sake", ()),
    "egnn": ("egnn", ()),
    "egnn_paper": ("egnn", ("model.hidden_dim=16", "data.window.past_frames=1")),
}
#: Baselines read from every evaluation (not trained): the evaluate JSON's "baselines".
BASELINES = ("stay", "constant_velocity", "linear", "file_velocity")


@dataclass(frozen=True)
class DataSet:
    """One data file of a table: ``make(directory, quick)`` writes it and returns its path.

    ``command`` is the shell text that made it (for the table's provenance column) and
    ``quick_command`` the text that made the ``--quick`` file, where that differs.
    """

    name: str
    make: Callable[[Path, bool], Path]
    command: str
    quick_command: str | None = None

    def command_for(self, quick: bool) -> str:
        """The command that made this data set's file in a full or a ``--quick`` run."""
        return self.quick_command if quick and self.quick_command is not None else self.command


@dataclass(frozen=True)
class Split:
    """A named split of a table and the configuration keys that select it.

    ``quick_settings`` replace ``settings`` in ``--quick`` runs where the protocol's split cannot
    work on tiny data (ESTAG's MD17 split needs more than 20,000 frames).
    """

    name: str
    settings: tuple[str, ...]
    quick_settings: tuple[str, ...] | None = None

    def keys(self, quick: bool) -> tuple[str, ...]:
        """The configuration keys of this split in a full or a quick run."""
        return self.quick_settings if quick and self.quick_settings is not None else self.settings


@dataclass(frozen=True)
class Table:
    """A benchmark table: data sets x splits x models x seeds, with one training budget."""

    name: str
    title: str
    datasets: tuple[DataSet, ...]
    splits: tuple[Split, ...]
    settings: tuple[str, ...]
    epochs: int
    quick_epochs: int
    models: tuple[str, ...] = ("estag", "sake", "egnn")
    unit_scale: float = 1.0
    unit_label: str = ""
    model_settings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    quick_dataset: int = 0


def bench_cache() -> Path:
    """Where benchmark data and run directories live (outside the repository)."""
    return cache_dir() / "benchmarks"


def dynforecast_command() -> list[str]:
    """The CLI as a subprocess argv prefix (the same interpreter, so the same install)."""
    return [sys.executable, "-m", "dynforecast"]


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr[-2000:]}"
        )


# MD17 on xTB ----------------------------------------------------------------------------------

MD17_MOLECULES = (
    "aspirin",
    "benzene",
    "ethanol",
    "malonaldehyde",
    "naphthalene",
    "salicylic_acid",
    "toluene",
    "uracil",
)
MD17_STEPS, MD17_QUICK_STEPS = 50_000, 1000


def _md17(molecule: str) -> DataSet:
    def make(directory: Path, quick: bool) -> Path:
        from benchmarks.md17_xtb import simulate

        steps = MD17_QUICK_STEPS if quick else MD17_STEPS
        suffix = "-quick" if quick else ""
        xyz = simulate(molecule, directory / f"{molecule}{suffix}.extxyz", steps=steps)
        out = directory / f"{molecule}{suffix}.h5"
        if not out.exists():
            _run(
                [
                    *dynforecast_command(),
                    "ingest",
                    str(xyz),
                    "--select",
                    "not element H",
                    "--name",
                    molecule,
                    "-o",
                    str(out),
                ]
            )
        return out

    def command(steps: int, name: str) -> str:
        return (
            f"python -m benchmarks.md17_xtb {molecule} -o {name}.extxyz --steps {steps} && "
            f'dynforecast ingest {name}.extxyz --select "not element H" -o {name}.h5'
        )

    return DataSet(
        f"md17-{molecule}",
        make,
        command(MD17_STEPS, molecule),
        command(MD17_QUICK_STEPS, f"{molecule}-quick"),
    )


MD17_WINDOW = ("data.window.protocol=md17", "data.graph.kind=bonds", "data.graph.hops=2")

# N-body -----------------------------------------------------------------------------------------


def _nbody(directory: Path, quick: bool) -> Path:
    out = directory / ("nbody-quick.h5" if quick else "nbody_small.h5")
    if not out.exists():
        options = (
            ["--trajectories", "70", "--mode", "fast"] if quick else ["--recipe", "nbody_small"]
        )
        _run([*dynforecast_command(), "generate", "nbody", "-o", str(out), *options])
    return out


NBODY_FRACTIONS = "data.split.fractions=[0.428571428571,0.285714285714,0.285714285714]"

# AdK --------------------------------------------------------------------------------------------


def _adk(directory: Path, quick: bool) -> Path:
    from MDAnalysisTests.datafiles import DCD, DCD2, DCD_NAMD_GBIS, PSF, PSF_NAMD_GBIS

    out = directory / ("adk-quick.h5" if quick else "adk.h5")
    if out.exists():
        return out
    parts = []
    for name, topology, trajectory in (
        ("dims1", PSF, DCD),
        ("dims2", PSF, DCD2),
        ("tmd", PSF_NAMD_GBIS, DCD_NAMD_GBIS),
    ):
        part = directory / f"adk-{name}.h5"
        if not part.exists():
            _run(
                [
                    *dynforecast_command(),
                    "ingest",
                    trajectory,
                    "--topology",
                    topology,
                    "--select",
                    "name CA",
                    "--name",
                    name,
                    "--time-step",
                    "1 ps",
                    "-o",
                    str(part),
                ]
            )
        parts.append(part)
    _merge_h5md(parts, out)
    return out


def _merge_h5md(parts: list[Path], out: Path) -> None:
    """One file with the systems of ``parts`` in order (h5py copies; written then renamed)."""
    import h5py

    scratch = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(parts[0], scratch)
    with h5py.File(scratch, "a") as target:
        for part in parts[1:]:
            with h5py.File(part, "r") as source:
                for group in ("particles", "connectivity", "parameters/dynforecast"):
                    for name in source[group]:
                        source.copy(source[f"{group}/{name}"], target[group], name=name)
    scratch.replace(out)


def _chignolin(selection: str, label: str) -> DataSet:
    """The OpenMM chignolin trajectory (benchmarks/protein_openmm.py) with one atom selection."""

    def make(directory: Path, quick: bool) -> Path:
        from benchmarks.protein_openmm import simulate

        nanoseconds = PROTEIN_QUICK_NS if quick else PROTEIN_NS
        folder = directory / ("chignolin-quick" if quick else "chignolin")
        frames = round(nanoseconds * 2000)  # 0.5 ps per frame
        pdb, dcd = simulate(folder, frames, equilibration_steps=500 if quick else 5000)
        out = directory / f"chignolin-{label}{'-quick' if quick else ''}.h5"
        if not out.exists():
            _run(
                [
                    *dynforecast_command(),
                    "ingest",
                    str(dcd),
                    "--topology",
                    str(pdb),
                    "--select",
                    selection,
                    "--name",
                    f"chignolin-{label}",
                    "-o",
                    str(out),
                ]
            )
        return out

    def command(nanoseconds: float, folder: str, equilibration: int) -> str:
        return (
            f"python -m benchmarks.protein_openmm -o {folder} --nanoseconds {nanoseconds} "
            f"--equilibration-steps {equilibration} && dynforecast ingest {folder}/chignolin.dcd "
            f'--topology {folder}/chignolin.pdb --select "{selection}" -o {folder}-{label}.h5'
        )

    return DataSet(
        f"chignolin-{label}",
        make,
        command(PROTEIN_NS, "chignolin", 5000),
        command(PROTEIN_QUICK_NS, "chignolin-quick", 500),
    )


PROTEIN_NS = 2.0
PROTEIN_QUICK_NS = 0.03


ADK_COMMAND = (
    'for t in "dims1 adk.psf adk_dims.dcd" "dims2 adk.psf adk_dims2.dcd" '
    '"tmd adk_closed_NAMD.psf adk_gbis_tmd-fast1_NAMD.dcd"; do set -- $t; '
    'dynforecast ingest $3 --topology $2 --select "name CA" --name $1 --time-step "1 ps" '
    "-o adk-$1.h5; done "
    "(the three systems are then joined in one file, in this order)"
)

# Motion capture -------------------------------------------------------------------------------

BVHTOOLS_SDIST = "bvhtools==1.6.0"
#: Clips of the sdist with the same 21-joint skeleton and frame rate (1/30 s).
MOTION_CLIPS = ("tutorials/test1.bvh", "tutorials/test2.bvh")


def _bvhtools_clips(directory: Path) -> Path:
    """The bvhtools sdist, downloaded from PyPI with pip and unpacked once."""
    unpacked = directory / "bvhtools-1.6.0"
    if unpacked.exists():
        return unpacked
    download = directory / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(download),
            BVHTOOLS_SDIST,
        ]
    )
    archive = next(download.glob("bvhtools-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return unpacked


def _bvh_slice(source: Path, out: Path, first: int, stop: int) -> Path:
    """Frames [first, stop) of a BVH file, the hierarchy unchanged (motion rows copied as text)."""
    lines = source.read_text(encoding="utf-8").splitlines()
    motion = next(i for i, line in enumerate(lines) if line.strip().upper() == "MOTION")
    rows = lines[motion + 3 :]
    header = [*lines[: motion + 1], f"Frames: {stop - first}", lines[motion + 2]]
    out.write_text("\n".join(header + rows[first:stop]) + "\n", encoding="utf-8")
    return out


def _motion(directory: Path, quick: bool) -> Path:
    out = directory / ("motion-quick.h5" if quick else "motion.h5")
    if out.exists():
        return out
    clips = _bvhtools_clips(directory)
    first, second = (clips / clip for clip in MOTION_CLIPS)
    limit = 600 if quick else None
    first_frames = _bvh_frames(first) if limit is None else limit
    cut = int(first_frames * 0.8)
    pieces = [
        _bvh_slice(first, directory / "clip1-train.bvh", 0, cut),
        _bvh_slice(first, directory / "clip1-val.bvh", cut, first_frames),
        _bvh_slice(second, directory / "clip2-test.bvh", 0, limit or _bvh_frames(second)),
    ]
    _run(
        [
            *dynforecast_command(),
            "ingest",
            *map(str, pieces),
            "--name",
            "clip1_train",
            "--name",
            "clip1_val",
            "--name",
            "clip2_test",
            "-o",
            str(out),
        ]
    )
    return out


def _bvh_frames(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip().lower().startswith("frames:"):
                return int(line.split(":")[1])
    raise ValueError(f"{path}: no Frames: line")


MOTION_COMMAND = (
    "pip download --no-deps --no-binary :all: bvhtools==1.6.0; clips tutorials/test1.bvh (cut "
    "at 80 % of its frames into train and validation parts) and tutorials/test2.bvh (test); "
    "dynforecast ingest clip1-train.bvh clip1-val.bvh clip2-test.bvh -o motion.h5"
)
MOTION_QUICK_COMMAND = (
    "pip download --no-deps --no-binary :all: bvhtools==1.6.0; clips tutorials/test1.bvh (its "
    "first 600 frames, cut at 80 % into train and validation parts) and tutorials/test2.bvh (its "
    "first 600 frames, test); dynforecast ingest clip1-train.bvh clip1-val.bvh clip2-test.bvh "
    "-o motion-quick.h5"
)

# The tables -------------------------------------------------------------------------------------

CHRONOLOGICAL = Split(
    "chronological", ("data.split.mode=chronological", "data.split.fractions=[0.6,0.2,0.2]")
)
BY_SYSTEM_IN_ORDER = ("data.split.mode=systems", "data.split.fractions=[0.34,0.33,0.33]")

TABLES: dict[str, Table] = {
    "md17": Table(
        name="md17",
        title="MD17 protocol on GFN2-xTB trajectories (heavy atoms), test MSE x10^-3 Angstrom^2",
        datasets=tuple(_md17(m) for m in MD17_MOLECULES),
        splits=(
            Split(
                "md17_reference",
                ("data.split.mode=md17_reference",),
                quick_settings=("data.split.mode=random",),
            ),
            CHRONOLOGICAL,
        ),
        settings=MD17_WINDOW,
        epochs=200,
        quick_epochs=2,
        models=("estag", "sake", "egnn", "egnn_paper"),
        # Learning rates chosen on aspirin's validation windows (benchmarks.lr_sweep, 200 epochs,
        # results/md17/md17-aspirin/md17_reference/lr_sweep.json): estag 5e-4 / 1e-3 / 5e-3 gave
        # 1.88e-4 / 1.17e-4 / 1.41e-4 Angstrom^2, egnn 1.06e-4 / 1.34e-4 / 1.34e-4; sake (100
        # epochs) 5e-4 / 1e-3 / 2e-3 gave 4.80e-5 / 4.81e-5 / 4.78e-5 (the lowest is taken).
        model_settings={
            "estag": ("optim.lr=1e-3",),
            "egnn": ("optim.lr=5e-4",),
            "sake": ("optim.lr=2e-3",),
        },
        unit_scale=1e3,
        unit_label="x10^-3 Angstrom^2",
        quick_dataset=MD17_MOLECULES.index("ethanol"),
    ),
    "nbody": Table(
        name="nbody",
        title="Charged N-body (EGNN's recipe, frame 30 -> 40), test MSE",
        datasets=(
            DataSet(
                "nbody_small",
                _nbody,
                "dynforecast generate nbody --recipe nbody_small",
                "dynforecast generate nbody --trajectories 70 --mode fast",
            ),
        ),
        splits=(Split("recipe", ("data.split.mode=systems", NBODY_FRACTIONS)),),
        settings=("data.window.protocol=nbody-standard", "data.graph.kind=all_pairs"),
        epochs=100,
        quick_epochs=2,
        model_settings={
            "sake": (
                "model.hidden_dim=32",
                "model.num_layers=5",
                "model.num_heads=4",
                "optim.lr=1e-3",
                "optim.weight_decay=1e-10",
            )
        },
    ),
    "adk": Table(
        name="adk",
        title="AdK transitions (MDAnalysisTests), C-alpha, test MSE nm^2",
        datasets=(DataSet("adk", _adk, ADK_COMMAND),),
        # 100-frame transitions are too short for chronological blocks of a 51-frame span:
        # ESTAG's own AdK split (cuts on the start frame, leaky at the two cuts) instead.
        splits=(
            Split("by_trajectory", BY_SYSTEM_IN_ORDER),
            Split("adk_reference", ("data.split.mode=adk_reference",)),
        ),
        settings=(
            "data.window.protocol=adk",
            "data.graph.kind=radius",
            "data.graph.cutoff=1.0",
            "optim.batch_size=8",
        ),
        epochs=100,
        quick_epochs=2,
    ),
    "protein_md": Table(
        name="protein_md",
        title=(
            "Chignolin (OpenMM, ff14SB + GBn2, 300 K, 2 ns, 0.5 ps frames), ESTAG's AdK-style "
            "protocol, test MSE nm^2"
        ),
        datasets=(_chignolin("name CA", "ca"), _chignolin("backbone", "backbone")),
        splits=(Split(CHRONOLOGICAL.name, CHRONOLOGICAL.settings, ("data.split.mode=random",)),),
        settings=(
            "data.window.protocol=adk",
            "data.graph.kind=radius",
            "data.graph.cutoff=1.0",
        ),
        epochs=50,
        quick_epochs=2,
    ),
    "motion": Table(
        name="motion",
        title="Human motion capture (bvhtools clips), test MSE in the file's length unit",
        datasets=(DataSet("bvhtools", _motion, MOTION_COMMAND, MOTION_QUICK_COMMAND),),
        splits=(Split("by_clip", BY_SYSTEM_IN_ORDER), CHRONOLOGICAL),
        settings=("data.window.protocol=motion", "data.graph.kind=bonds", "data.graph.hops=2"),
        epochs=50,
        quick_epochs=2,
    ),
}
