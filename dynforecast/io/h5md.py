"""The one on-disk format: H5MD 1.1 files holding one or more systems.

This is the only module that knows the HDF5 layout (DESIGN.md, "The on-disk format"):

    /h5md                               version [1, 1]; author (name); creator (name, version)
    /particles/<sys>/box                dimension 3, boundary ["none"] * 3, or ["periodic"] * 3
                                        with a unit cell:
    /particles/<sys>/box/edges/         value float32[F,3,3] (unit; box vectors as rows);
                                        step and time hard links to position's
    /particles/<sys>/position/          step int64[F], time float64[F] (unit), value float32[F,N,3] (unit)
    /particles/<sys>/velocity/          value (unit); step and time hard links to position's
    /particles/<sys>/species            int32[N]; charge float32[N] when charges are known
    /connectivity/<sys>/bonds           int32[M,2], attr particles_group -> /particles/<sys>
    /parameters/dynforecast/<sys>/      attrs: source, checksum, string parameters;
                                        datasets: names, array parameters (strings as vlen)
    /observables/<sys>/is_forecast/     value int8[F]; step and time hard links to position's

``box/edges`` is a time-dependent element (a cell per frame, as NPT runs need); its matrix form
is H5MD's triclinic box, which MDAnalysis reads as ``dimensions``. ``is_forecast`` is an H5MD
time-dependent element (a group with value/step/time) rather than a
bare dataset, because MDAnalysis's H5MD reader refuses observables that are not H5MD elements.
Frames are appended in chunks to resizable datasets, so a writer never holds a whole trajectory.
Writes go through `atomic_output`: the file appears under its name only once it is complete.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from dynforecast import __version__
from dynforecast.errors import InputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.checksum import file_checksum
from dynforecast.io.stream import empty_frames
from dynforecast.io.trajectory import ParameterValue, Trajectory, periodic_axes

__all__ = [
    "H5MDWriter",
    "file_checksum",
    "iter_h5md_blocks",
    "list_systems",
    "read_h5md",
    "read_is_forecast",
    "write_h5md",
]

#: System names become HDF5 group names; keep them portable and free of "/".
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

#: Parameter attributes with a fixed meaning (not part of ``Trajectory.parameters``).
_RESERVED_ATTRS = ("source", "checksum")

#: Chunks of the position dataset hold whole frames and about this many bytes.
_CHUNK_BYTES = 1 << 20

#: HDF5 file format bounds of written files: the 1.10 format (HDF5 >= 1.10, 2016; every h5py
#: wheel since 2.8) stores small groups and chunk indexes compactly, halving the size of files of
#: many small systems (13 KB instead of 26 KB per 49-frame 5-particle N-body system, measured by
#: benchmarks/h5md_layout.py). ("earliest", ...) is the layout of files written before.
LIBVER = ("v110", "v110")


def velocity_unit_for(length_unit: str, time_unit: str) -> str:
    """H5MD unit string of velocities: "nm ps-1"; unitless factors ("1") drop out."""
    if time_unit == "1":
        return length_unit
    return f"{time_unit}-1" if length_unit == "1" else f"{length_unit} {time_unit}-1"


def set_unit(dataset: h5py.Dataset, unit: str) -> None:
    """Attach an H5MD ``unit`` attribute; dimensionless data ("1") carries none (H5MD units
    module), which also lets MDAnalysis open such files with ``convert_units=False``."""
    if unit != "1":
        dataset.attrs["unit"] = unit


def get_unit(dataset: h5py.Dataset) -> str:
    """The ``unit`` attribute as text ("1" when absent; fixed-length byte strings decoded)."""
    unit = dataset.attrs.get("unit", "1")
    return unit.decode("ascii") if isinstance(unit, bytes) else str(unit)


class H5MDWriter:
    """Context manager that writes systems frame chunk by frame chunk into one H5MD file.

    Usage::

        with H5MDWriter(path, overwrite=False) as writer:
            writer.add_system("protein", n_particles=..., species=..., ...)
            writer.append_frames("protein", positions, time, step)

    The file is written to ``.<name>.tmp-<pid>`` beside ``path`` and renamed into place when the
    block ends without an exception; otherwise the temporary file is deleted.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        compression: str | None = None,
        libver: tuple[str, str] = LIBVER,
    ) -> None:
        if compression not in (None, "gzip", "lzf"):
            raise ValueError(f"expected compression None, 'gzip' or 'lzf' (got {compression!r})")
        self.path = Path(path)
        self.overwrite = overwrite
        self.compression = compression
        self.libver = libver
        self._stack = ExitStack()
        self._file: h5py.File | None = None

    def __enter__(self) -> H5MDWriter:
        scratch = self._stack.enter_context(atomic_output(self.path, overwrite=self.overwrite))
        try:
            self._file = h5py.File(scratch, "w", track_order=True, libver=self.libver)
        except OSError as exc:  # e.g. a directory that accepts no new files (/proc, quota)
            # Hand the error to atomic_output, which cleans up and raises its OutputError.
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._write_metadata(self._file)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._file is not None:
            self._file.close()
            self._file = None
        return self._stack.__exit__(exc_type, exc, traceback)

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            raise ValueError("expected an open writer (use it inside a `with` block)")
        return self._file

    @staticmethod
    def _write_metadata(h5: h5py.File) -> None:
        meta = h5.create_group("h5md")
        meta.attrs["version"] = np.array([1, 1], dtype=np.int32)
        try:
            author = getpass.getuser()
        except (KeyError, OSError):
            author = "unknown"
        meta.create_group("author").attrs["name"] = author
        creator = meta.create_group("creator")
        creator.attrs["name"] = "dynforecast"
        creator.attrs["version"] = __version__
        # track_order keeps systems in the order they were added (list_systems, read_h5md).
        h5.create_group("particles", track_order=True)
        h5.create_group("connectivity", track_order=True)
        h5.create_group("parameters").create_group("dynforecast", track_order=True)

    def add_system(
        self,
        name: str,
        *,
        n_particles: int,
        species: np.ndarray,
        length_unit: str,
        time_unit: str,
        bonds: np.ndarray | None = None,
        names: Sequence[str] = (),
        charges: np.ndarray | None = None,
        parameters: Mapping[str, ParameterValue] | None = None,
        has_velocities: bool = False,
        has_box: bool = False,
        source: str = "",
        checksum: str = "",
        velocity_unit: str | None = None,
        expected_frames: int | None = None,
    ) -> None:
        """Create the groups of one system with zero frames; `append_frames` fills them.

        ``has_box``: frames carry a periodic unit cell (``box/edges``, in ``length_unit``).
        ``expected_frames``, when the caller knows it, caps the chunk length: HDF5 allocates whole
        chunks, so a 49-frame system in 1024-frame chunks would take 20 times its size on disk.
        """
        if not SYSTEM_NAME.match(name):
            raise ValueError(f"expected a system name of letters, digits, _ - . (got {name!r})")
        h5 = self.file
        if name in h5["particles"]:
            raise ValueError(f"expected a new system name (got {name!r} twice)")
        species = np.asarray(species, dtype=np.int32)
        if species.shape != (n_particles,):
            raise ValueError(f"expected species of shape ({n_particles},) (got {species.shape})")

        group = h5["particles"].create_group(name)
        box = group.create_group("box")
        box.attrs["dimension"] = 3
        axes = periodic_axes(dict(parameters or {}), has_box)
        box.attrs["boundary"] = ["periodic" if periodic else "none" for periodic in axes]

        frame_cap = 1024 if expected_frames is None else max(1, min(1024, expected_frames))
        frames = max(1, min(frame_cap, _CHUNK_BYTES // max(1, 12 * n_particles)))
        position = group.create_group("position")
        step = position.create_dataset(
            "step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(frame_cap,)
        )
        time = position.create_dataset(
            "time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(frame_cap,)
        )
        set_unit(time, time_unit)
        set_unit(self._frame_dataset(position, "value", n_particles, frames), length_unit)
        if has_velocities:
            velocity = group.create_group("velocity")
            velocity["step"] = step
            velocity["time"] = time
            value = self._frame_dataset(velocity, "value", n_particles, frames)
            set_unit(value, velocity_unit or velocity_unit_for(length_unit, time_unit))
        if has_box:
            edges = box.create_group("edges")
            edges["step"] = step
            edges["time"] = time
            cells = edges.create_dataset(
                "value",
                shape=(0, 3, 3),
                maxshape=(None, 3, 3),
                dtype=np.float32,
                chunks=(frame_cap, 3, 3),
            )
            set_unit(cells, length_unit)
        group.create_dataset("species", data=species)
        if charges is not None:
            group.create_dataset("charge", data=np.asarray(charges, dtype=np.float32))

        bond_array = np.zeros((0, 2), np.int32) if bonds is None else np.asarray(bonds, np.int32)
        connectivity = h5["connectivity"].create_group(name)
        bonds_ds = connectivity.create_dataset("bonds", data=bond_array.reshape(-1, 2))
        bonds_ds.attrs["particles_group"] = group.ref

        params = h5["parameters/dynforecast"].create_group(name, track_order=True)
        params.attrs["source"] = source
        params.attrs["checksum"] = checksum
        params.create_dataset("names", data=list(names), dtype=h5py.string_dtype())
        for key, value in (parameters or {}).items():
            _write_parameter(params, key, value)

    def _frame_dataset(
        self, group: h5py.Group, key: str, n_particles: int, frames: int
    ) -> h5py.Dataset:
        return group.create_dataset(
            key,
            shape=(0, n_particles, 3),
            maxshape=(None, n_particles, 3),
            dtype=np.float32,
            chunks=(frames, max(1, n_particles), 3),
            compression=self.compression,
            shuffle=self.compression is not None,  # byte planes compress better than floats
        )

    def append_frames(
        self,
        name: str,
        positions: np.ndarray,
        time: np.ndarray,
        step: np.ndarray,
        velocities: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> None:
        """Append frames ``positions`` [f, N, 3], ``time`` [f], ``step`` [f] (and velocities
        [f, N, 3], unit cells ``box`` [f, 3, 3]: each given exactly when `add_system` said so)."""
        group = self._system_group(name)
        value = group["position/value"]
        f = positions.shape[0]
        if positions.shape[1:] != value.shape[1:]:
            raise ValueError(f"expected positions [f, {value.shape[1]}, 3] (got {positions.shape})")
        if np.shape(time) != (f,) or np.shape(step) != (f,):
            raise ValueError(f"expected time and step of shape ({f},)")
        has_velocity = "velocity" in group
        if has_velocity != (velocities is not None):
            raise ValueError(
                f"expected velocities {'with' if has_velocity else 'without'} "
                f"system {name!r}'s velocity group"
            )
        has_box = "edges" in group["box"]
        if has_box != (box is not None):
            raise ValueError(
                f"expected box {'with' if has_box else 'without'} system {name!r}'s box/edges group"
            )
        start = value.shape[0]
        datasets = [
            (value, positions, np.float32),
            (group["position/time"], time, np.float64),
            (group["position/step"], step, np.int64),
        ]
        if velocities is not None:
            if velocities.shape != positions.shape:
                raise ValueError(
                    f"expected velocities of shape {positions.shape} (got {velocities.shape})"
                )
            datasets.append((group["velocity/value"], velocities, np.float32))
        if box is not None:
            if np.shape(box) != (f, 3, 3):
                raise ValueError(f"expected box of shape ({f}, 3, 3) (got {np.shape(box)})")
            datasets.append((group["box/edges/value"], box, np.float32))
        for dataset, data, dtype in datasets:
            dataset.resize(start + f, axis=0)
            dataset[start : start + f] = np.asarray(data, dtype=dtype)

    def set_parameter(self, name: str, key: str, value: ParameterValue) -> None:
        """Add (or replace) one parameter of system ``name`` after it was created.

        For what is only known once the frames are written, such as a reader's ingest notes.
        """
        self._system_group(name)
        params = self.file[f"parameters/dynforecast/{name}"]
        if key in params.attrs:
            del params.attrs[key]
        if key in params:
            del params[key]
        _write_parameter(params, key, value)

    def set_is_forecast(self, name: str, flags: np.ndarray) -> None:
        """Mark each frame 0 (given) or 1 (predicted); call after all frames are appended."""
        group = self._system_group(name)
        n_frames = group["position/value"].shape[0]
        flags = np.asarray(flags, dtype=np.int8)
        if flags.shape != (n_frames,):
            raise ValueError(
                f"expected is_forecast flags of shape ({n_frames},) (got {flags.shape})"
            )
        self.set_observable(name, "is_forecast", flags)

    def set_observable(
        self, name: str, key: str, values: np.ndarray, *, unit: str | None = None
    ) -> None:
        """Write ``observables/<name>/<key>`` as an H5MD element (value [F, ...], step and time
        hard-linked to position's); ``unit`` is written unless dimensionless ("1" or None)."""
        group = self._system_group(name)
        n_frames = group["position/value"].shape[0]
        if values.shape[:1] != (n_frames,):
            raise ValueError(f"expected {key} values for {n_frames} frames (got {values.shape})")
        if "observables" not in self.file:
            self.file.create_group("observables", track_order=True)
        element = self.file["observables"].require_group(name)
        element = element.create_group(key)
        dataset = element.create_dataset("value", data=values)
        if unit is not None and unit != "1":
            dataset.attrs["unit"] = unit
        element["step"] = group["position/step"]
        element["time"] = group["position/time"]

    def _system_group(self, name: str) -> h5py.Group:
        particles = self.file.get("particles")
        if particles is None or name not in particles:
            raise ValueError(f"expected a system added with add_system (got {name!r})")
        return particles[name]


def _write_parameter(group: h5py.Group, key: str, value: ParameterValue) -> None:
    """Strings become attributes; arrays datasets (string arrays as variable-length strings)."""
    if key in _RESERVED_ATTRS or key == "names":
        raise ValueError(f"expected a parameter name other than {key!r} (reserved)")
    if isinstance(value, str):
        group.attrs[key] = value
        return
    array = np.asarray(value)
    if array.dtype.kind in "UO":
        group.create_dataset(key, data=array.astype(str).tolist(), dtype=h5py.string_dtype())
    else:
        group.create_dataset(key, data=array)


def write_h5md(
    path: str | Path,
    trajectories: Sequence[Trajectory],
    *,
    overwrite: bool = False,
    is_forecast: Mapping[str, np.ndarray] | None = None,
    compression: str | None = None,
    spread: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write in-memory trajectories (one system each) to ``path`` atomically.

    ``spread``: per system, an ensemble's per-particle spread float [F, N] (length unit), written
    as the observable ``observables/<system>/spread``.
    """
    for trajectory in trajectories:
        trajectory.validate()
    with H5MDWriter(path, overwrite=overwrite, compression=compression) as writer:
        for trajectory in trajectories:
            add_trajectory_system(
                writer,
                trajectory,
                has_velocities=trajectory.velocities is not None,
                has_box=trajectory.box is not None,
                expected_frames=trajectory.n_frames,
            )
            writer.append_frames(
                trajectory.name,
                trajectory.positions,
                trajectory.time,
                trajectory.step,
                trajectory.velocities,
                trajectory.box,
            )
        for name, flags in (is_forecast or {}).items():
            writer.set_is_forecast(name, flags)
        units = {t.name: t.length_unit for t in trajectories}
        for name, values in (spread or {}).items():
            writer.set_observable(
                name, "spread", np.asarray(values, dtype=np.float32), unit=units[name]
            )


def add_trajectory_system(
    writer: H5MDWriter,
    header: Trajectory,
    *,
    has_velocities: bool,
    has_box: bool = False,
    expected_frames: int | None = None,
) -> None:
    """`H5MDWriter.add_system` with every field taken from a (possibly zero-frame) `Trajectory`."""
    parameters = dict(header.parameters)
    writer.add_system(
        header.name,
        n_particles=header.n_particles,
        species=header.species,
        length_unit=header.length_unit,
        time_unit=header.time_unit,
        bonds=header.bonds,
        names=header.names,
        charges=header.charges,
        parameters=parameters,
        has_velocities=has_velocities,
        has_box=has_box,
        source=header.source,
        checksum=header.checksum,
        velocity_unit=_as_str(parameters.get("velocity_unit")),
        expected_frames=expected_frames,
    )


def _as_str(value: ParameterValue | None) -> str | None:
    return value if isinstance(value, str) else None


# Reading -------------------------------------------------------------------------------------


def _open(path: str | Path) -> h5py.File:
    """Open an H5MD file for reading, or raise InputError naming it and the problem."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        if not h5py.is_hdf5(path):
            raise InputError(f"{path}: not an HDF5 file")
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if "h5md" not in h5 or "particles" not in h5:
        h5.close()
        raise InputError(f"{path}: not an H5MD file (no /h5md or /particles group)")
    return h5


def list_systems(path: str | Path) -> list[str]:
    """Names of the systems in ``path``, in the order they were written."""
    with _open(path) as h5:
        return list(h5["particles"].keys())


def _name_list(names: list[str], shown: int = 8) -> str:
    """'systems: a, b' or, for many, the first few and a count: an error stays one readable line."""
    if not names:
        return "systems: none"
    if len(names) <= shown:
        return f"systems: {', '.join(names)}"
    return f"{len(names)} systems: {', '.join(names[:shown])}, ...; `dynforecast info` lists them"


def _system(h5: h5py.File, name: str) -> h5py.Group:
    particles = h5["particles"]
    if name not in particles:
        raise InputError(f"{h5.filename}: no system {name!r} ({_name_list(list(particles))})")
    group = particles[name]
    if "position" not in group or "value" not in group["position"]:
        raise InputError(f"{h5.filename}: system {name!r} has no position/value dataset")
    return group


def _read_header(h5: h5py.File, name: str) -> Trajectory:
    """Everything of a system but its frames, as a zero-frame `Trajectory`."""
    group = _system(h5, name)
    position = group["position"]
    n_particles = int(position["value"].shape[1])
    species = (
        group["species"][()].astype(np.int32)
        if "species" in group
        else np.zeros(n_particles, np.int32)
    )
    bonds_path = f"connectivity/{name}/bonds"
    bonds = h5[bonds_path][()].astype(np.int32) if bonds_path in h5 else np.zeros((0, 2), np.int32)
    charges = group["charge"][()].astype(np.float32) if "charge" in group else None

    names: list[str] = []
    parameters: dict[str, ParameterValue] = {}
    source = checksum = ""
    params_path = f"parameters/dynforecast/{name}"
    if params_path in h5:
        params = h5[params_path]
        source = str(params.attrs.get("source", ""))
        checksum = str(params.attrs.get("checksum", ""))
        for key, value in params.attrs.items():
            if key not in _RESERVED_ATTRS:
                parameters[key] = str(value)
        for key, dataset in params.items():
            if dataset.dtype.kind in "SO":
                strings = np.array(dataset.asstr()[()], dtype=str)
                if key == "names":
                    names = strings.tolist()
                else:
                    parameters[key] = strings
            else:
                parameters[key] = np.asarray(dataset[()])

    return Trajectory(
        name=name,
        species=species,
        length_unit=get_unit(position["value"]),
        time_unit=get_unit(position["time"]) if "time" in position else "1",
        bonds=bonds.reshape(-1, 2),
        charges=charges,
        names=names,
        parameters=parameters,
        source=source,
        checksum=checksum,
        **empty_frames(n_particles),
    )


def _frame_arrays(group: h5py.Group, frames: slice) -> dict[str, np.ndarray | None]:
    """positions/time/step/velocities/box of ``frames``, each read as one slab."""
    position = group["position"]
    value = position["value"]
    start, stop, _ = frames.indices(value.shape[0])
    count = max(0, stop - start)
    time = (
        position["time"][frames].astype(np.float64)
        if "time" in position
        else np.arange(start, start + count, dtype=np.float64)
    )
    step = (
        position["step"][frames].astype(np.int64)
        if "step" in position
        else np.arange(start, start + count, dtype=np.int64)
    )
    velocities = group["velocity/value"][frames].astype(np.float32) if "velocity" in group else None
    return {
        "positions": value[frames].astype(np.float32),
        "time": time,
        "step": step,
        "velocities": velocities,
        "box": _read_box(group["box"], frames, count) if "box" in group else None,
    }


def _lazy_frame_arrays(path: str | Path, name: str, group: h5py.Group) -> dict:
    """`_frame_arrays` of all frames with positions and velocities left in the file."""
    from dynforecast.io.h5md_frames import FileFrames

    arrays = _frame_arrays_without_values(group, group["position/value"].shape[0])
    arrays["velocities"] = None
    arrays["positions"] = FileFrames(path, f"particles/{name}/position/value")
    if "velocity" in group:
        arrays["velocities"] = FileFrames(path, f"particles/{name}/velocity/value")
    return arrays


def _frame_arrays_without_values(group: h5py.Group, n_frames: int) -> dict:
    position = group["position"]
    return {
        "time": position["time"][()].astype(np.float64)
        if "time" in position
        else np.arange(n_frames, dtype=np.float64),
        "step": position["step"][()].astype(np.int64)
        if "step" in position
        else np.arange(n_frames, dtype=np.int64),
        "box": _read_box(group["box"], slice(None), n_frames) if "box" in group else None,
    }


def _read_box(box: h5py.Group, frames: slice, count: int) -> np.ndarray | None:
    """float32 [f, 3, 3] unit cells of ``frames``, or None when the box has no edges.

    Ours are time-dependent [F, 3, 3] matrices; other H5MD writers may store a fixed box
    (a dataset) or cuboid edge lengths ([3] or [F, 3]), which H5MD allows: those become the
    same rows-as-vectors matrices, so every reader downstream sees one form.
    """
    if "edges" not in box:
        return None
    edges = box["edges"]
    if isinstance(edges, h5py.Group):
        cells = np.asarray(edges["value"][frames], dtype=np.float32)
    else:
        cells = np.broadcast_to(np.asarray(edges[()], dtype=np.float32), (count, *edges.shape))
    if cells.shape[1:] == (3,):
        cells = cells[:, :, None] * np.eye(3, dtype=np.float32)
    return np.ascontiguousarray(cells, dtype=np.float32)


def read_h5md(
    path: str | Path, systems: Sequence[str] | None = None, *, lazy: bool = False
) -> list[Trajectory]:
    """Read whole systems (all named, or all in the file); each dataset is read in one call.

    ``lazy``: positions and velocities stay in the file as `FileFrames` (read on demand by the
    data layer); everything else (times, steps, boxes, topology) is read.
    """
    with _open(path) as h5:
        names = list(h5["particles"].keys()) if systems is None else list(systems)
        trajectories = []
        for name in names:
            header = _read_header(h5, name)
            group = h5["particles"][name]
            if lazy:
                frames = _lazy_frame_arrays(path, name, group)
            else:
                frames = _frame_arrays(group, slice(None))
            trajectory = dataclasses.replace(header, **frames)
            _validate_read(path, trajectory)
            trajectories.append(trajectory)
    return trajectories


def frame_bytes(path: str | Path, systems: Sequence[str] | None = None) -> int:
    """Bytes of float32 positions and velocities of the systems (from shapes; nothing read)."""
    return shapes_frame_bytes(frame_shapes(path, systems).values())


def shapes_frame_bytes(shapes: Iterable[Sequence[tuple[int, ...]]]) -> int:
    """`frame_bytes` of systems whose `frame_shapes` are given."""
    return sum(int(np.prod(shape, dtype=np.int64)) * 4 for system in shapes for shape in system)


def frame_shapes(
    path: str | Path, systems: Sequence[str] | None = None
) -> dict[str, list[tuple[int, ...]]]:
    """Per system (all, in the file's order, or those given): the shape of position/value,
    then of velocity/value where it has one. Nothing but shapes is read, so the windows and the
    split of a file of thousands of systems are known before any system is
    (`dynforecast.data.scored`). InputError as `read_h5md` for a missing file or system.
    """
    shapes: dict[str, list[tuple[int, ...]]] = {}
    with _open(path) as h5:
        particles = h5["particles"]
        for name in list(particles.keys()) if systems is None else list(systems):
            group = _system(h5, name)
            shapes[name] = [
                tuple(group[key].shape)
                for key in ("position/value", "velocity/value")
                if key in group
            ]
    return shapes


def iter_h5md_blocks(path: str | Path, name: str, block_frames: int = 1024) -> Iterator[Trajectory]:
    """Yield system ``name`` as consecutive blocks of at most ``block_frames`` frames.

    For summaries of files larger than memory (`info`); each block is a full `Trajectory`.
    """
    if block_frames < 1:
        raise ValueError(f"expected block_frames >= 1 (got {block_frames})")
    with _open(path) as h5:
        header = _read_header(h5, name)
        group = h5["particles"][name]
        n_frames = group["position/value"].shape[0]
        for start in range(0, n_frames, block_frames):
            frames = _frame_arrays(group, slice(start, min(n_frames, start + block_frames)))
            yield dataclasses.replace(header, **frames)


def _validate_read(path: str | Path, trajectory: Trajectory) -> None:
    try:
        trajectory.validate()
    except ValueError as exc:
        raise InputError(f"{path}: system {trajectory.name!r} is inconsistent: {exc}") from exc


def read_observable(path: str | Path, name: str, key: str) -> np.ndarray | None:
    """The value of ``observables/<name>/<key>`` (e.g. "spread"), or None when absent."""
    with _open(path) as h5:
        _system(h5, name)
        element = f"observables/{name}/{key}/value"
        return h5[element][()] if element in h5 else None


def read_is_forecast(path: str | Path, name: str) -> np.ndarray | None:
    """The int8 [F] given/predicted flags of system ``name``, or None when it has none."""
    with _open(path) as h5:
        _system(h5, name)
        element = f"observables/{name}/is_forecast/value"
        return h5[element][()].astype(np.int8) if element in h5 else None
