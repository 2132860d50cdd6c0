"""The particle selection language of ``ingest --select`` for readers without mdtraj.

One implementation for XYZ/extended XYZ atoms and BVH joints, meaning what mdtraj's language
means for the same keywords (mdtraj inputs keep mdtraj's own, richer language; a test holds
the shared keywords equal on a PDB and an XYZ of the same molecule):

    all, none                    every / no particle
    element H O                  atoms of these elements (case-sensitive symbols, as mdtraj)
    name CA "Left Arm"           particles with these names (atom names; BVH joint names)
    index 0 2 4, index 0 to 9    0-based particle indices; ``to`` ranges are inclusive
    index < 10  (<= > >= ==)     index comparisons
    not X, X and Y, X or Y       ``not`` binds tightest, then ``and``, then ``or``
    ( ... )                      grouping

Values may be quoted ('...' or "...") to hold spaces or parentheses. mdtraj's symbolic
operators (``!``, ``&&``, ``||``) are not accepted: mdtraj parses ``! element H && index < 50``
differently from ``not element H and index < 50``, so they could not mean the same here. Evaluation is one
vectorised boolean mask per term over all N particles. Every problem is a `UsageError` whose
one-line message quotes the selection and names the offending token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dynforecast.errors import UsageError

#: Keywords that take values, and the bare ones.
VALUE_KEYWORDS = ("element", "name", "index")
BARE_KEYWORDS = ("all", "none")
_NOT, _AND, _OR = ("not",), ("and",), ("or",)
_COMPARISONS = ("<", "<=", ">", ">=", "==")
_STOP = {*_NOT, *_AND, *_OR, *VALUE_KEYWORDS, *BARE_KEYWORDS, "(", ")"}
_TOKEN = re.compile(r"""\s*(?:(\(|\))|"([^"]*)"|'([^']*)'|([^\s()"']+)|(["']))""")


@dataclass(frozen=True)
class Particles:
    """What a selection looks at: ``names`` [N] (atom or joint names) and ``species`` int [N]
    (atomic numbers), or None where particles have no elements (BVH joints); ``what`` is the
    word messages use for them ("atoms", "joints") and ``reader`` the input's kind ("XYZ")."""

    names: Sequence[str]
    species: np.ndarray | None
    what: str = "atoms"
    reader: str = "XYZ"

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


class _Parser:
    """Recursive descent over the tokens, building boolean masks as it goes."""

    def __init__(self, text: str, particles: Particles) -> None:
        self.text = text
        self.particles = particles
        self.tokens = _tokenize(text, self.error)
        self.pos = 0
        self.names = np.asarray(list(particles.names), dtype=object)

    def error(self, problem: str) -> UsageError:
        return UsageError(f"--select {self.text!r}: {problem}")

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def is_operator(self, token: _Token | None, words: tuple[str, ...]) -> bool:
        return token is not None and not token.quoted and token.text in words

    def parse(self) -> np.ndarray:
        if not self.tokens:
            raise self.error("empty selection")
        mask = self.or_expr()
        if (extra := self.peek()) is not None:
            if extra.text == ")" and not extra.quoted:
                raise self.error("unmatched ')'")
            raise self.error(f"unexpected {extra.text!r} (expected 'and', 'or' or the end)")
        return mask

    def or_expr(self) -> np.ndarray:
        mask = self.and_expr()
        while self.is_operator(self.peek(), _OR):
            self.pos += 1
            mask = mask | self.and_expr()
        return mask

    def and_expr(self) -> np.ndarray:
        mask = self.not_expr()
        while self.is_operator(self.peek(), _AND):
            self.pos += 1
            mask = mask & self.not_expr()
        return mask

    def not_expr(self) -> np.ndarray:
        if self.is_operator(self.peek(), _NOT):
            self.pos += 1
            return ~self.not_expr()
        return self.term()

    def term(self) -> np.ndarray:
        token = self.peek()
        if token is None:
            previous = self.tokens[-1].text
            raise self.error(f"unexpected end after {previous!r}")
        self.pos += 1
        word = token.text
        if not token.quoted and word == "(":
            mask = self.or_expr()
            closing = self.peek()
            if closing is None or closing.quoted or closing.text != ")":
                raise self.error("missing ')'")
            self.pos += 1
            return mask
        if token.quoted or word not in (*VALUE_KEYWORDS, *BARE_KEYWORDS):
            known = ", ".join((*BARE_KEYWORDS, *VALUE_KEYWORDS))
            raise self.error(
                f"unknown keyword {word!r} ({self.particles.reader} selections know {known}; "
                "with and, or, not and parentheses)"
            )
        count = self.particles.count
        if word == "all":
            return np.ones(count, dtype=bool)
        if word == "none":
            return np.zeros(count, dtype=bool)
        if word == "index":
            return self.index_mask()
        values = self.values(word)
        if word == "name":
            return np.isin(self.names, values)
        return np.isin(self.species_of(word), [self.atomic_number(v) for v in values])

    def values(self, keyword: str) -> list[str]:
        """The values after ``keyword``, up to the next keyword, operator or parenthesis."""
        values = []
        while (token := self.peek()) is not None and (token.quoted or token.text not in _STOP):
            values.append(token.text)
            self.pos += 1
        if not values:
            raise self.error(f"{keyword!r} needs at least one value")
        return values

    def species_of(self, keyword: str) -> np.ndarray:
        if self.particles.species is None:
            raise self.error(
                f"{keyword!r}: {self.particles.reader} {self.particles.what} have no elements "
                "(select by name or index)"
            )
        return self.particles.species

    def atomic_number(self, symbol: str) -> int:
        from ase.data import atomic_numbers

        if symbol not in atomic_numbers:
            hint = symbol.capitalize()
            suggestion = f" (did you mean {hint!r}?)" if hint in atomic_numbers else ""
            raise self.error(f"unknown element {symbol!r}{suggestion}")
        return int(atomic_numbers[symbol])

    def index_mask(self) -> np.ndarray:
        count = self.particles.count
        index = np.arange(count)
        token = self.peek()
        if token is not None and not token.quoted and token.text in _COMPARISONS:
            self.pos += 1
            bound = self.integer(self.values(f"index {token.text}"), f"index {token.text}")
            return {
                "<": index < bound,
                "<=": index <= bound,
                ">": index > bound,
                ">=": index >= bound,
                "==": index == bound,
            }[token.text]
        words = self.values("index")
        mask = np.zeros(count, dtype=bool)
        k = 0
        while k < len(words):
            first = self.integer([words[k]], "index")
            if k + 1 < len(words) and words[k + 1] == "to":
                if k + 2 >= len(words):
                    raise self.error(f"'index {first} to' needs an end")
                last = self.integer([words[k + 2]], f"index {first} to")
                if last < first:
                    raise self.error(f"empty range 'index {first} to {last}'")
                mask[min(first, count) : min(last + 1, count)] = True
                k += 3
            else:
                if first < count:
                    mask[first] = True
                k += 1
        return mask

    def integer(self, words: list[str], context: str) -> int:
        word = words[0]
        if len(words) != 1 and context.startswith("index ") and context[6:] in _COMPARISONS:
            raise self.error(f"{context!r} takes one number, got {' '.join(words)!r}")
        if not re.fullmatch(r"[0-9]+", word):
            raise self.error(f"{context!r} expects a non-negative integer, got {word!r}")
        return int(word)


def _tokenize(text: str, error) -> list[_Token]:
    """Split ``text`` into parentheses, quoted values and bare words."""
    tokens = []
    for match in _TOKEN.finditer(text):
        paren, double, single, bare, stray = match.groups()
        if stray is not None:
            raise error(f"unclosed quote {stray} at character {match.start(5) + 1}")
        if paren is not None or bare is not None:
            tokens.append(_Token(paren if paren is not None else bare, False))
        else:
            tokens.append(_Token(double if double is not None else single, True))
    return tokens


def select(text: str, particles: Particles) -> np.ndarray:
    """int64 [K] sorted indices of the particles ``text`` selects (K >= 1).

    Raises UsageError for a malformed selection (naming the bad token) and for one that
    matches nothing.
    """
    mask = _Parser(text, particles).parse()
    if not mask.any():
        raise UsageError(f"--select {text!r}: matches no {particles.what}")
    return np.flatnonzero(mask).astype(np.int64)


def subset_bonds(bonds: np.ndarray, kept: np.ndarray, count: int) -> np.ndarray:
    """int32 [M', 2] the bonds [M, 2] between ``kept`` particles (of ``count``), renumbered."""
    new_index = np.full(count, -1, dtype=np.int64)
    new_index[kept] = np.arange(kept.size)
    pairs = new_index[np.asarray(bonds, dtype=np.int64).reshape(-1, 2)]
    return pairs[(pairs >= 0).all(axis=1)].astype(np.int32).reshape(-1, 2)


def select_subset(
    text: str, particles: Particles, bonds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices int64 [K], the bonds between them renumbered int32 [M', 2])."""
    kept = select(text, particles)
    return kept, subset_bonds(bonds, kept, particles.count)


def check_syntax(text: str, *, reader: str, has_elements: bool) -> None:
    """Raise the UsageError `select` would raise for a malformed ``text``, before any file is
    read (a selection that merely matches nothing is only known once the particles are)."""
    species = np.zeros(0, dtype=np.int32) if has_elements else None
    what = "atoms" if has_elements else "joints"
    _Parser(text, Particles([], species, what=what, reader=reader)).parse()
