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
from dynforecast.io.inputs import extension_of
from dynforecast.io.molecular import TOPOLOGY_EXTENSIONS, TRAJECTORY_EXTENSIONS
from dynforecast.io.readers import SUPPORTED_EXTENSIONS

#: The project's own non-H5MD files (checkpoints, configurations, metrics, plots).
_OWN_FILES = (".pt", ".json", ".toml", ".csv", ".png", ".txt")

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
    )
) - {".h5", ".h5md", ".hdf5", ".hdf"}


def check_h5md_output_name(path: Path, hint: str = "") -> None:
    """UsageError (exit 2) when ``path`` ends in another format's extension; ``hint`` (e.g.
    where that format can be written) is added to the message."""
    extension = extension_of(path)
    if extension in OTHER_FORMATS:
        raise UsageError(
            f"-o {path}: the output is H5MD (HDF5), not {extension}; name it .h5{hint}"
        )
