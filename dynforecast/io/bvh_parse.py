"""Parse BVH text into a `BvhSkeleton` and its motion channels, with one-line errors.

Accepts any channel order per joint, position channels below the root, ``End Site`` blocks,
CRLF/CR line endings, tabs and braces on the same line as a joint name. Keywords are
case-insensitive, as real writers vary (``HIERARCHY``, ``ROOT``, ``JOINT``, ``OFFSET``,
``CHANNELS``, ``End Site`` / ``End site`` / ``END SITE``, ``MOTION``, ``Frames:``,
``Frame Time:``, the last two with any spacing around the colon), and so are channel names
(``XPOSITION`` reads as ``Xposition``). ``End Site <name>`` keeps ``<name>`` as the end site's
particle name when it is unique, else the site is ``<parent>_end`` like an unnamed one. Every
problem is an `InputError` naming the file, and the line where one line is to blame.

What the parser drops or renames is returned as notes (`io.notes`): motion rows past the
header's frame count, and ``End Site <name>`` names that were already taken (renamed
``<parent>_end``).

The hierarchy is small and parsed token by token; the motion block, which can hold millions of
numbers, is parsed by NumPy in one call, and only when that fails are its rows inspected one by
one to name the offending line.

Shapes: F frames, J joints (end sites included), C channels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError
from dynforecast.io.bvh_kinematics import POSITION_CHANNELS, ROTATION_CHANNELS, BvhSkeleton
from dynforecast.io.notes import IngestNote, counted

#: Channel names by their upper-case spelling, for case-insensitive matching.
_CHANNEL_NAMES = {c.upper(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
_MOTION_LINE = re.compile(r"^[ \t]*MOTION[ \t]*$", re.MULTILINE | re.IGNORECASE)
_FRAMES = re.compile(r"frames[ \t]*:(.*)", re.IGNORECASE)
_FRAME_TIME = re.compile(r"frame[ \t]*time[ \t]*:(.*)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedBvh:
    """What a BVH file holds: hierarchy, frame time (s) and motion float64 [F, C]."""

    skeleton: BvhSkeleton
    frame_time: float
    motion: np.ndarray
    notes: tuple[IngestNote, ...] = ()


class _Tokens:
    """The hierarchy's tokens with their 1-based line numbers, read front to back."""

    def __init__(self, lines: list[str], path: Path, end: str) -> None:
        self.path = path
        self.end = end  # where the tokens stop: "before MOTION" or "of file"
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0

    def error(self, line: int, problem: str) -> InputError:
        return InputError(f"{self.path}: line {line}: {problem}")

    def peek(self) -> tuple[str, int] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self, context: str) -> tuple[str, int]:
        item = self.peek()
        if item is None:
            raise InputError(f"{self.path}: unexpected end {self.end} {context}")
        self.pos += 1
        return item

    def rest_of_line(self, line: int) -> list[str]:
        """Consume and return the tokens left on ``line``."""
        out = []
        while (item := self.peek()) is not None and item[1] == line:
            out.append(item[0])
            self.pos += 1
        return out


class _Hierarchy:
    """Collects joints in file order while the recursive descent walks the braces."""

    def __init__(self, tokens: _Tokens) -> None:
        self.tokens = tokens
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[tuple[float, float, float]] = []
        self.channels: list[tuple[str, ...]] = []
        self.end_site: list[bool] = []
        self.renamed: list[tuple[str, str]] = []  # (End Site name as written, name given)

    def joint(self, parent: int, keyword: str, line: int) -> None:
        """Parse ``<name> { OFFSET ... CHANNELS ... (JOINT | End Site)* }`` after ROOT/JOINT."""
        tokens = self.tokens
        words = tokens.rest_of_line(line)
        brace_inline = bool(words) and words[-1] == "{"
        name = " ".join(words[:-1] if brace_inline else words)
        if not name:
            raise tokens.error(line, f"{keyword} without a name")
        index = self._add(name, parent, end_site=False)
        if not brace_inline:
            self._open_brace(f"after {keyword} {name!r}")
        seen_offset = seen_channels = False
        while True:
            word, at = tokens.next(f"inside joint {name!r} (unbalanced braces)")
            keyword = word.upper()
            if word == "}":
                break
            if keyword == "OFFSET":
                self.offsets[index] = self._offset(at, name)
                seen_offset = True
            elif keyword == "CHANNELS":
                self.channels[index] = self._channels(at, name)
                seen_channels = True
            elif keyword == "JOINT":
                self.joint(index, "JOINT", at)
            elif (
                keyword == "END" and (nxt := tokens.peek()) is not None and nxt[0].upper() == "SITE"
            ):
                tokens.next("")
                self._end_site(index, nxt[1])
            elif keyword == "MOTION":
                raise tokens.error(at, f"unbalanced braces: joint {name!r} is not closed")
            else:
                raise tokens.error(
                    at,
                    f"unexpected {word!r} in joint {name!r} "
                    "(expected OFFSET, CHANNELS, JOINT, End Site or '}')",
                )
        if not seen_offset:
            raise tokens.error(line, f"joint {name!r} has no OFFSET")
        if not seen_channels:
            raise tokens.error(line, f"joint {name!r} has no CHANNELS")

    def _add(self, name: str, parent: int, *, end_site: bool) -> int:
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append((0.0, 0.0, 0.0))
        self.channels.append(())
        self.end_site.append(end_site)
        return len(self.names) - 1

    def _open_brace(self, context: str) -> None:
        word, at = self.tokens.next(context)
        if word != "{":
            raise self.tokens.error(at, f"expected '{{' {context}, got {word!r}")

    def _end_site(self, parent: int, line: int) -> None:
        """Parse ``End Site [<name>] { OFFSET x y z }``; ``line`` is the line of ``Site``."""
        parent_name = self.names[parent]
        words = self.tokens.rest_of_line(line)
        brace_inline = bool(words) and words[-1] == "{"
        given = " ".join(words[:-1] if brace_inline else words)
        name = given if given and given not in self.names else f"{parent_name}_end"
        suffix = 1
        while name in self.names:  # a joint with two end sites: keep names unique
            name, suffix = f"{parent_name}_end{suffix}", suffix + 1
        if given and name != given:
            self.renamed.append((given, name))
        index = self._add(name, parent, end_site=True)
        if not brace_inline:
            self._open_brace(f"after End Site of {parent_name!r}")
        word, at = self.tokens.next(f"inside End Site of {parent_name!r}")
        if word.upper() != "OFFSET":
            raise self.tokens.error(
                at, f"expected OFFSET in End Site of {parent_name!r}, got {word!r}"
            )
        self.offsets[index] = self._offset(at, f"End Site of {parent_name}")
        word, at = self.tokens.next(f"inside End Site of {parent_name!r} (unbalanced braces)")
        if word != "}":
            raise self.tokens.error(
                at, f"expected '}}' closing End Site of {parent_name!r}, got {word!r}"
            )

    def _offset(self, line: int, owner: str) -> tuple[float, float, float]:
        words = self.tokens.rest_of_line(line)
        try:
            values = tuple(float(w) for w in words)
        except ValueError:
            values = ()
        if len(values) != 3 or not np.all(np.isfinite(values)):
            raise self.tokens.error(
                line, f"OFFSET of {owner!r} needs 3 finite numbers, got {' '.join(words)!r}"
            )
        return values  # type: ignore[return-value]

    def _channels(self, line: int, owner: str) -> tuple[str, ...]:
        words = self.tokens.rest_of_line(line)
        if not words or not words[0].isdigit():
            raise self.tokens.error(line, f"CHANNELS of {owner!r} must start with a count")
        declared, names = int(words[0]), words[1:]
        if len(names) != declared:
            raise self.tokens.error(
                line, f"joint {owner!r} declares {declared} channels but lists {len(names)}"
            )
        for channel in names:
            if channel.upper() not in _CHANNEL_NAMES:
                raise self.tokens.error(line, f"unknown channel {channel!r} in joint {owner!r}")
        names = [_CHANNEL_NAMES[channel.upper()] for channel in names]
        positions = [c for c in names if c in POSITION_CHANNELS]
        if len(set(positions)) != len(positions):
            raise self.tokens.error(line, f"joint {owner!r} repeats a position channel")
        return tuple(names)

    def skeleton(self) -> BvhSkeleton:
        return BvhSkeleton(
            names=tuple(self.names),
            parents=np.array(self.parents, dtype=np.int64),
            offsets=np.array(self.offsets, dtype=np.float64).reshape(-1, 3),
            channels=tuple(self.channels),
            end_site=np.array(self.end_site, dtype=bool),
        )


def _parse_hierarchy(
    lines: list[str], path: Path, end: str
) -> tuple[BvhSkeleton, list[tuple[str, str]]]:
    """The skeleton, and the End Site names renamed because a joint already had them."""
    tokens = _Tokens(lines, path, end)
    first = tokens.next("(no HIERARCHY)")
    if first[0].upper() != "HIERARCHY":
        raise tokens.error(first[1], f"expected 'HIERARCHY', got {first[0]!r}")
    word, at = tokens.next("after HIERARCHY (no ROOT)")
    if word.upper() != "ROOT":
        raise tokens.error(at, f"expected 'ROOT', got {word!r}")
    hierarchy = _Hierarchy(tokens)
    hierarchy.joint(-1, "ROOT", at)
    if (extra := tokens.peek()) is not None:
        word, at = extra
        problem = (
            "unbalanced braces: '}' after the ROOT joint is closed"
            if word == "}"
            else "only one ROOT per file is supported"
            if word.upper() == "ROOT"
            else f"expected 'MOTION' after the hierarchy, got {word!r}"
        )
        raise tokens.error(at, problem)
    skeleton = hierarchy.skeleton()
    if skeleton.n_channels == 0:
        raise InputError(f"{path}: the hierarchy declares no channels")
    return skeleton, hierarchy.renamed


def _renamed_note(renamed: list[tuple[str, str]]) -> IngestNote:
    shown = ", ".join(f"{old} -> {new}" for old, new in renamed[:3])
    more = f", ... ({len(renamed) - 3} more)" if len(renamed) > 3 else ""
    return IngestNote(
        "renamed_end_sites",
        len(renamed),
        f"{counted(len(renamed), 'End Site name')} already taken by a joint, renamed after the "
        f"parent: {shown}{more}",
    )


def _header_value(
    lines: list[str], index: int, label: re.Pattern, motion_line: int, path: Path
) -> tuple[str, int]:
    """The value after ``label`` on the first non-blank line from ``lines[index]`` on, and the
    index of the line after it; ``lines`` start at the MOTION line (``motion_line``)."""
    name = "Frames:" if label is _FRAMES else "Frame Time:"
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines):
        raise InputError(f"{path}: unexpected end of file: expected '{name} ...' after MOTION")
    line = lines[index].strip()
    match = label.fullmatch(line)
    if match is None:
        raise InputError(f"{path}: line {motion_line + index}: expected '{name} ...', got {line!r}")
    return match.group(1).strip(), index + 1


def _motion_header(lines: list[str], motion_line: int, path: Path) -> tuple[int, float, int]:
    """(frame count, frame time, index of the first motion row) from the lines after MOTION."""
    frames_text, index = _header_value(lines, 1, _FRAMES, motion_line, path)
    if not frames_text.isdigit() or int(frames_text) == 0:
        raise InputError(
            f"{path}: line {motion_line + index - 1}: expected a positive frame count, "
            f"got {frames_text!r}"
        )
    time_text, index = _header_value(lines, index, _FRAME_TIME, motion_line, path)
    try:
        frame_time = float(time_text)
    except ValueError:
        frame_time = float("nan")
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise InputError(
            f"{path}: line {motion_line + index - 1}: expected a positive frame time, "
            f"got {time_text!r}"
        )
    return int(frames_text), frame_time, index


def _motion_rows(
    rows: list[str], line_numbers: np.ndarray, n_channels: int, path: Path
) -> np.ndarray:
    """Parse motion rows to float64 [F, C]; name the first bad line when that fails."""
    values = None
    try:
        values = np.loadtxt(rows, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        pass
    if values is None or values.shape[1] != n_channels:
        for row, line in zip(rows, line_numbers, strict=True):  # error path only
            words = row.split()
            if len(words) != n_channels:
                raise InputError(
                    f"{path}: line {line}: expected {n_channels} channel values, got {len(words)}"
                )
            for word in words:
                try:
                    float(word)
                except ValueError:
                    raise InputError(
                        f"{path}: line {line}: non-numeric value {word!r} in motion data"
                    ) from None
        raise InputError(f"{path}: motion data could not be parsed")  # numbers NumPy rejects
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"{path}: line {line_numbers[row]}: non-finite value {values[row, col]} in motion data"
        )
    return values


def parse_bvh(text: str, path: Path) -> ParsedBvh:
    """Parse a whole BVH file's text; ``path`` only names the file in error messages."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    marker = _MOTION_LINE.search(text)
    head = text[: marker.start()] if marker else text
    skeleton, renamed = _parse_hierarchy(
        head.splitlines(), path, "before MOTION" if marker else "of file"
    )
    if marker is None:
        raise InputError(f"{path}: no MOTION section")
    motion_line = head.count("\n") + 1
    lines = text[marker.end() :].splitlines()  # lines[0] is the rest of the MOTION line

    n_frames, frame_time, first_row = _motion_header(lines, motion_line, path)
    body = np.array(lines[first_row:], dtype=str)
    nonblank = np.flatnonzero(np.char.strip(body) != "") if body.size else np.zeros(0, int)
    if nonblank.size < n_frames:
        raise InputError(
            f"{path}: truncated BVH: expected {n_frames} frames of {skeleton.n_channels} "
            f"channels, got {nonblank.size}"
        )
    notes = [_renamed_note(renamed)] if renamed else []
    if nonblank.size > n_frames:
        extra = nonblank.size - n_frames
        first_extra = int(nonblank[n_frames]) + motion_line + first_row
        notes.append(
            IngestNote(
                "ignored_rows",
                extra,
                f"{counted(extra, 'motion row')} after the {n_frames} frames of 'Frames:' "
                "ignored "
                f"(from line {first_extra})",
            )
        )
    used = nonblank[:n_frames]
    rows = body[used].tolist()
    motion = _motion_rows(rows, used + motion_line + first_row, skeleton.n_channels, path)
    return ParsedBvh(skeleton=skeleton, frame_time=frame_time, motion=motion, notes=tuple(notes))
