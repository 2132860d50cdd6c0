"""An H5MD output may not carry another format's name: ``-o out.pdb`` would be HDF5 inside.

A user who types ``predict ... -o forecast.pdb`` or ``ingest traj.dcd -o traj.xyz`` expects that
format and would get an HDF5 file under a name every other tool misreads. Names that no format
claims (``.h5``, ``.h5md``, ``.hdf5``, or none) are the user's choice and are kept.
"""

from __future__ import annotations

from pathlib import Path

from dynforecast.errors import UsageError
from dynforecast.io.amc import AMC_EXTENSIONS, ASF_EXTENSIONS
from dynforecast.io.export import EXPORT_EXTENSIONS
from dynforecast.io.molecular import TOPOLOGY_EXTENSIONS, TRAJECTORY_EXTENSIONS
from dynforecast.io.readers import SUPPORTED_EXTENSIONS

#: The project's own non-H5MD files (checkpoints, configurations, metrics, plots), and other
#: common formats of the field and of data files in general.
_OWN_FILES = (".pt", ".json", ".toml", ".csv", ".png", ".txt")
_COMMON = (".cif", ".mmcif", ".crd", ".mdcrd", ".npy", ".npz", ".pdf", ".svg", ".jpg", ".tar")
#: Compression and archive suffixes: an HDF5 file under such a name cannot be unpacked.
COMPRESSED = frozenset({".gz", ".bz2", ".xz", ".zst", ".zip", ".tgz", ".7z", ".lz4"})

#: Extensions that name a format other than H5MD (lower case, compression suffix included).
OTHER_FORMATS = frozenset(
    (
        *SUPPORTED_EXTENSIONS,
        *TOPOLOGY_EXTENSIONS,
        *TRAJECTORY_EXTENSIONS,
        *EXPORT_EXTENSIONS,
        *ASF_EXTENSIONS,
        *AMC_EXTENSIONS,
        *_OWN_FILES,
        *_COMMON,
    )
) - {".h5", ".h5md", ".hdf5", ".hdf"}


def check_h5md_output_name(path: Path, hint: str = "") -> None:
    """UsageError (exit 2) when ``path`` ends in another format's extension or in a compression
    or archive suffix (``.gz``, ``.zip``, ...); ``hint`` (e.g. where that format can be written)
    is added to the message."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in OTHER_FORMATS or last in COMPRESSED:
        extension = "".join(suffixes[-2:]) if last in COMPRESSED else last
        raise UsageError(
            f"-o {path}: the output is H5MD (HDF5), not {extension}; name it .h5{hint}"
        )
