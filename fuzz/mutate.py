"""Mutations of seed files, drawn by hypothesis (`st.data()`), so a run is reproducible from its seed.

Each operator takes the file's bytes and a `draw` function and returns new bytes. Text operators
work on lines (duplicate, delete, swap, truncate at a section boundary, replace a number by
NaN/inf/huge/garbage, CRLF, tabs, unicode); byte operators flip, insert and truncate anywhere, so
binary formats (DCD, XTC, TRR, NetCDF) are reached too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy], object]

#: What a number may become: the special floats, overflow, garbage and edge integers.
NUMBER_REPLACEMENTS = (
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e39",
    "-1e39",
    "99999999999",
    "-0",
    "0",
    "1e",
    "abc",
    "",
    "-",
    ".",
    "0x1F",
    "1,5",
    "1e-320",
    "2147483648",
    "-1",
    "*",
    "١٢",
)
UNICODE = ("é", "\u00a0", "\ufeff", "日本", "\x00", "\u2212", "\U0001f600", "\x1a", "\xff")
_NUMBER = re.compile(rb"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _index(draw: Draw, n: int) -> int:
    return draw(st.integers(0, max(n - 1, 0)))


def flip_bytes(data: bytes, draw: Draw) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        i = _index(draw, len(out))
        out[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(out)


def set_bytes(data: bytes, draw: Draw) -> bytes:
    """Overwrite a few bytes with 0x00, 0xff, 0x7f or a random byte (binary headers' counts)."""
    if not data:
        return data
    out = bytearray(data)
    i = _index(draw, len(out))
    value = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80]) | st.integers(0, 255))
    for k in range(draw(st.integers(1, 4))):
        if i + k < len(out):
            out[i + k] = value
    return bytes(out)


def truncate_anywhere(data: bytes, draw: Draw) -> bytes:
    return data[: _index(draw, len(data) + 1)]


def section_starts(data: bytes) -> list[int]:
    """Byte offsets where a line's first word differs from the previous line's (PDB records,
    BVH keywords, XYZ count lines, PSF sections)."""
    offsets, position, previous = [], 0, None
    for line in _lines(data):
        word = line.split()[:1]
        if word != previous:
            offsets.append(position)
        previous = word
        position += len(line)
    return offsets or [0]


def truncate_at_section(data: bytes, draw: Draw) -> bytes:
    starts = section_starts(data)
    cut = starts[_index(draw, len(starts))]
    return data[: cut + draw(st.sampled_from([0, 0, 1, 5]))]


def duplicate_line(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    i = _index(draw, len(lines))
    return b"".join(lines[: i + 1] + lines[i:])


def delete_lines(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    i = _index(draw, len(lines))
    return b"".join(lines[:i] + lines[i + draw(st.integers(1, 3)) :])


def swap_lines(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    if len(lines) < 2:
        return data
    i, j = _index(draw, len(lines)), _index(draw, len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def blank_line(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    i = _index(draw, len(lines) + 1)
    return b"".join(
        [*lines[:i], draw(st.sampled_from([b"\n", b"   \n", b"\t\n", b"\r\n"])), *lines[i:]]
    )


def replace_number(data: bytes, draw: Draw) -> bytes:
    """One number (or, with keep_width, one of the same width) becomes a special or garbage one."""
    matches = list(_NUMBER.finditer(data))
    if not matches:
        return data
    m = matches[_index(draw, len(matches))]
    text = draw(st.sampled_from(NUMBER_REPLACEMENTS)).encode()
    if draw(st.booleans()):  # fixed-column formats (PDB, GRO): keep the columns where they were
        width = m.end() - m.start()
        text = text[:width].rjust(width)
    return data[: m.start()] + text + data[m.end() :]


def replace_all_numbers_in_line(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    i = _index(draw, len(lines))
    text = draw(st.sampled_from(NUMBER_REPLACEMENTS)).encode()
    lines[i] = _NUMBER.sub(text, lines[i])
    return b"".join(lines)


def crlf(data: bytes, draw: Draw) -> bytes:
    if draw(st.booleans()):
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r")


def tabs(data: bytes, draw: Draw) -> bytes:
    lines = _lines(data)
    if not lines:
        return data
    if draw(st.booleans()):
        return data.replace(b" ", b"\t")
    i = _index(draw, len(lines))
    lines[i] = lines[i].replace(b" ", b"\t")
    return b"".join(lines)


def unicode(data: bytes, draw: Draw) -> bytes:
    char = draw(st.sampled_from(UNICODE))
    encoded = char.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"])), "replace")
    i = _index(draw, len(data) + 1)
    return data[:i] + encoded + data[i:]


def insert_bytes(data: bytes, draw: Draw) -> bytes:
    i = _index(draw, len(data) + 1)
    return data[:i] + draw(st.binary(min_size=1, max_size=16)) + data[i:]


def empty(data: bytes, draw: Draw) -> bytes:
    return draw(st.sampled_from([b"", b"\n", b" ", b"\x00"]))


OPERATORS: dict[str, Callable[[bytes, Draw], bytes]] = {
    "flip_bytes": flip_bytes,
    "set_bytes": set_bytes,
    "truncate_anywhere": truncate_anywhere,
    "truncate_at_section": truncate_at_section,
    "duplicate_line": duplicate_line,
    "delete_lines": delete_lines,
    "swap_lines": swap_lines,
    "blank_line": blank_line,
    "replace_number": replace_number,
    "replace_all_numbers_in_line": replace_all_numbers_in_line,
    "crlf": crlf,
    "tabs": tabs,
    "unicode": unicode,
    "insert_bytes": insert_bytes,
    "empty": empty,
}


def mutate(data: bytes, draw: Draw) -> tuple[bytes, list[str]]:
    """Apply 1-3 drawn operators to ``data``; return the mutant and the operators' names."""
    names = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(OPERATORS)))
        data = OPERATORS[name](data, draw)
        names.append(name)
    return data, names
