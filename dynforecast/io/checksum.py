"""SHA-256 checksums of input and output files, streamed so that any file size fits in memory.

A run directory and every ingested system record the checksum of the files they came from, so
that a result can be traced back to the exact bytes it was computed from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

#: Read size for hashing: large enough to amortise the Python call, small enough to stay cheap.
_BLOCK_BYTES = 1 << 20


def file_checksum(path: str | Path) -> str:
    """SHA-256 (hex) of one file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def combined_checksum(paths: Sequence[str | Path]) -> str:
    """One checksum for a system read from several files (topology + trajectory).

    A single file keeps its plain SHA-256 (so ``sha256sum`` agrees); several files hash the
    concatenation of their hex digests in the given order.
    """
    digests = [file_checksum(path) for path in paths]
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode("ascii")).hexdigest()
