"""Pick the reader of an input file by its extension.

One entry point for `ingest` and for library users: `open_input` streams a file's frames,
`read_trajectory` returns it whole. Unknown extensions are refused with the list of supported
ones; with ``topology`` the input is a trajectory whose atoms the topology file describes.
"""

from __future__ import annotations

from pathlib import Path

from dynforecast.errors import InputError, UsageError
from dynforecast.io.inputs import check_input_file, extension_of
from dynforecast.io.molecular import (
    STANDALONE_EXTENSIONS,
    TOPOLOGY_EXTENSIONS,
    TOPOLOGY_ONLY_EXTENSIONS,
    TRAJECTORY_EXTENSIONS,
    open_molecular,
)
from dynforecast.io.selection import check_syntax
from dynforecast.io.stream import StreamedSystem, collect
from dynforecast.io.trajectory import Trajectory
from dynforecast.io.xyz import XYZ_EXTENSIONS, open_xyz

#: Motion capture, read whole by dynforecast.io.bvh (BVH files are small).
BVH_EXTENSIONS = (".bvh",)

#: Extensions readable on their own.
SUPPORTED_EXTENSIONS = (*STANDALONE_EXTENSIONS, *XYZ_EXTENSIONS, *BVH_EXTENSIONS)


def _supported(extensions: tuple[str, ...]) -> str:
    return ", ".join(sorted(set(extensions)))


#: Trajectory formats whose every frame also writes the topology (names, residues): alone they
#: are their own topology, as a PDB is.
OWN_TOPOLOGY_EXTENSIONS = (".gro",)


def own_topology(path: str | Path, topology: str | Path | None) -> str | Path | None:
    """``topology``, or ``path`` itself for a GRO given without one (GROMACS writes the atom and
    residue names into every frame, so asking for ``--topology`` the same file is needless)."""
    if topology is None and extension_of(path) in OWN_TOPOLOGY_EXTENSIONS:
        return path
    return topology


def input_kind(
    path: str | Path,
    *,
    topology: str | Path | None = None,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
) -> str:
    """Check options, extension and readability without parsing; return the reader's kind.

    Kinds: "molecular" (mdtraj), "xyz" (ase), "bvh". `ingest` runs this on every input before
    converting the first one, so a typo in the last of several inputs fails at once.
    """
    if stride < 1:
        raise UsageError(f"--stride must be at least 1 (got {stride})")
    if chunk_frames is not None and chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be at least 1 (got {chunk_frames})")
    topology = own_topology(path, topology)
    extension = extension_of(path)
    if extension == ".amc" or (topology is not None and extension_of(topology) == ".asf"):
        return _amc_kind(path, topology)
    if topology is not None:
        top_extension = extension_of(topology)
        if top_extension not in TOPOLOGY_EXTENSIONS:
            raise InputError(
                f"{topology}: unknown topology extension {top_extension!r} "
                f"(supported: {_supported(TOPOLOGY_EXTENSIONS)})"
            )
        if extension not in TRAJECTORY_EXTENSIONS:
            raise InputError(
                f"{path}: unknown trajectory extension {extension!r} "
                f"(supported with --topology: {_supported(TRAJECTORY_EXTENSIONS)})"
            )
        check_input_file(topology)
        kind = "molecular"
    elif extension in STANDALONE_EXTENSIONS:
        kind = "molecular"
    elif extension in XYZ_EXTENSIONS or extension in BVH_EXTENSIONS:
        kind = "xyz" if extension in XYZ_EXTENSIONS else "bvh"
        if select is not None:
            check_syntax(select, reader=kind.upper(), has_elements=kind == "xyz")
    elif extension in TRAJECTORY_EXTENSIONS:
        raise InputError(f"{path}: a {extension} trajectory needs --topology")
    elif extension in TOPOLOGY_ONLY_EXTENSIONS:
        raise InputError(
            f"{path}: a {extension} file is a topology (no frames); give a trajectory with it: "
            f"ingest TRAJECTORY --topology {path}"
        )
    else:
        raise InputError(
            f"{path}: unknown extension {extension or '(none)'!r} "
            f"(supported: {_supported(SUPPORTED_EXTENSIONS)}; with --topology: "
            f"{_supported(TRAJECTORY_EXTENSIONS)})"
        )
    check_input_file(path)
    return kind


def _amc_kind(path: str | Path, topology: str | Path | None) -> str:
    """An AMC motion must come with its ASF skeleton (`io.amc`)."""
    if extension_of(path) != ".amc":
        raise InputError(
            f"{path}: an ASF skeleton (--topology {topology}) goes with .amc motion files"
        )
    if topology is None or extension_of(topology) != ".asf":
        raise InputError(
            f"{path}: an AMC motion needs its ASF skeleton: ingest SKELETON.asf {path} "
            f"(or --topology SKELETON.asf)"
        )
    check_input_file(topology)
    check_input_file(path)
    return "amc"


def open_input(
    path: str | Path,
    *,
    name: str,
    topology: str | Path | None = None,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
) -> StreamedSystem:
    """Open ``path`` (with its ``topology`` file, if any) as a stream of frame chunks.

    ``chunk_frames`` None picks about 8 MiB of positions per chunk. ``select`` is an mdtraj
    selection for molecular inputs, an `io.selection` one (element, name, index) for XYZ/BVH.
    """
    options = {"select": select, "stride": stride, "chunk_frames": chunk_frames}
    topology = own_topology(path, topology)
    kind = input_kind(path, topology=topology, **options)
    if kind == "molecular":
        return open_molecular(path, name=name, topology=topology, **options)
    if kind == "xyz":
        return open_xyz(path, name=name, **options)
    if kind == "amc":
        from dynforecast.io.amc import open_amc

        return open_amc(Path(path), asf=Path(topology), name=name, stride=stride, select=select)
    return _open_bvh(Path(path), name=name, stride=stride, select=select)


def _open_bvh(path: Path, *, name: str, stride: int, select: str | None) -> StreamedSystem:
    """A BVH skeleton as a one-chunk stream (its reader works on whole files)."""
    from dynforecast.io.bvh import open_bvh

    return open_bvh(path, name=name, stride=stride, select=select)


def read_trajectory(path: str | Path, *, name: str | None = None, **options) -> Trajectory:
    """Read a whole input file into memory (``options`` as for `open_input`)."""
    return collect(open_input(path, name=name or default_system_name(path), **options))


def default_system_name(path: str | Path) -> str:
    """A valid system name from a file name: ``runs/adk_dims.dcd`` -> ``adk_dims``."""
    stem = Path(path).name
    extension = extension_of(path)
    if extension and stem.lower().endswith(extension):
        stem = stem[: -len(extension)]
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in stem)
    return cleaned.strip(".") or "system"
