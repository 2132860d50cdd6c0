"""Elements guessed from atom names, the way the field names atoms (CHARMM, AMBER, GROMOS, PDB).

Used wherever a molecular file has no element column (PDB without columns 77-78, GRO, a PSF or
PRMTOP without atomic numbers). mdtraj guesses there too, but from the first one or two letters of
the name only, so CHARMM's ions POT, SOD and CLA become Po, S and C; `guess_elements` replaces its
guess. The conventions (facts taken from MDAnalysis's ``guesser/tables.py`` and VMD's
name-based guess, implemented here):

1. Ion names of the force fields, in any residue: POT/K+/QK -> K, SOD/NA+/QN -> Na,
   CLA/CL-/CLAL -> Cl, CAL/CA2+ -> Ca, CES/CS+ -> Cs ... (table `ION_NAMES`); names that are
   also biomolecular atom names (CD2, ZN2, FE2, C0) only as single-atom residues.
2. A single-atom residue whose name (letters only) is an element symbol is that element: an atom
   CA in residue CA is calcium, NA in residue NA sodium, ZN zinc.
3. In larger residues two-letter symbols are read only for the few elements that atom names of
   biomolecules and ligands really mean (FE, ZN, MG, CU, BR, CL, SE: heme iron, chlorophyll
   magnesium, selenomethionine, halogenated ligands); every other name is its first letter after
   leading digits (1HB -> H, CA -> C, NE2 -> N, HG1 -> H), as protein naming means.
4. Virtual sites of water models (MW, EP, LP..., TIP4P's M) get no element (atomic number 0).

Work is per distinct (name, residue name, single-atom residue) triple, mapped back to atoms with
one `numpy.unique` inverse, so a million-atom topology costs a handful of dictionary look-ups.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

#: Element symbols of atomic numbers 1..118 (index = atomic number).
SYMBOLS = (
    "",
    *"H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As "
    "Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd "
    "Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am "
    "Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og".split(),
)
#: Atomic number of each symbol, keyed in upper case.
ATOMIC_NUMBERS = {symbol.upper(): z for z, symbol in enumerate(SYMBOLS) if symbol}

#: Force-field ion names (CHARMM, AMBER, GROMOS), upper case -> element symbol.
ION_NAMES = {
    "POT": "K",
    "K+": "K",
    "QK": "K",
    "SOD": "Na",
    "NA+": "Na",
    "QN": "Na",
    "CLA": "Cl",
    "CLAL": "Cl",
    "CL-": "Cl",
    "CAL": "Ca",
    "CA2+": "Ca",
    "CES": "Cs",
    "CS+": "Cs",
    "LIT": "Li",
    "LI+": "Li",
    "QL": "Li",
    "RUB": "Rb",
    "RB+": "Rb",
    "QR": "Rb",
    "BAR": "Ba",
    "MG2+": "Mg",
    "ZN2+": "Zn",
    "IOD": "I",
    "BR-": "Br",
    "F-": "F",
}
#: Ion names that are also atom names of biomolecules (a leucine's CD2 is a carbon, a ligand's
#: C0 too): read as ions only as the one atom of their residue.
SINGLE_ATOM_ION_NAMES = {"C0": "Ca", "ZN2": "Zn", "CD2": "Cd", "FE2": "Fe", "CU2": "Cu"}
#: Two-letter symbols read as such in multi-atom residues too.
MOLECULAR_TWO_LETTER = frozenset({"FE", "ZN", "MG", "CU", "BR", "CL", "SE"})
#: Names of massless virtual sites (TIP4P/TIP5P and lone pairs): no element.
_VIRTUAL = re.compile(r"^(?:MW\d*|EP\d*|LP\w*|M|OM)$")
_LEADING_DIGITS = re.compile(r"^[0-9]+")
_LETTERS = re.compile(r"[^A-Z]")


def guess_element(name: str, residue_name: str = "", single_atom_residue: bool = False) -> str:
    """Element symbol ("" when none fits) of one atom from its name and residue (rules above)."""
    upper = name.strip().upper()
    if not upper:
        return ""
    if upper in ION_NAMES:
        return ION_NAMES[upper]
    residue = residue_name.strip().upper()
    if single_atom_residue and upper in SINGLE_ATOM_ION_NAMES:
        return SINGLE_ATOM_ION_NAMES[upper]
    if single_atom_residue and residue in ION_NAMES:  # an ion residue SOD whose atom is "NA1"
        return ION_NAMES[residue]
    if _VIRTUAL.match(upper):
        return ""
    letters = _LETTERS.sub("", _LEADING_DIGITS.sub("", upper))
    if not letters:
        return ""
    if single_atom_residue:
        for candidate in (letters, letters[:2]):
            if candidate in ATOMIC_NUMBERS:
                return SYMBOLS[ATOMIC_NUMBERS[candidate]]
    if letters[:2] in MOLECULAR_TWO_LETTER:
        return SYMBOLS[ATOMIC_NUMBERS[letters[:2]]]
    if letters[0] in ATOMIC_NUMBERS:
        return letters[0]
    return ""


def guess_elements(
    names: np.ndarray, residue_names: np.ndarray, residue_indices: np.ndarray
) -> np.ndarray:
    """Element symbols [N] (str, "" for none) of atoms from names [N], residue names [N] and
    residue indices [N] (equal indices = one residue; a residue of one atom is an ion/atom)."""
    names = np.asarray(names, dtype=str)
    if names.size == 0:
        return np.zeros(0, dtype="<U2")
    residue_names = np.asarray(residue_names, dtype=str)
    _, residue_of, residue_sizes = np.unique(
        np.asarray(residue_indices), return_inverse=True, return_counts=True
    )
    single = residue_sizes[residue_of] == 1
    keys = np.char.add(np.char.add(names, "\x1f"), np.char.add(residue_names, "\x1f"))
    keys = np.char.add(keys, np.where(single, "1", "0"))
    unique, inverse = np.unique(keys, return_inverse=True)
    guessed = []
    for key in unique.tolist():
        name, residue, flag = key.split("\x1f")
        guessed.append(guess_element(name, residue, flag == "1"))
    return np.asarray(guessed, dtype="<U2")[inverse.reshape(-1)]


def atomic_numbers(symbols: np.ndarray) -> np.ndarray:
    """int32 [N] atomic numbers of element symbols [N] (0 for "" or unknown)."""
    symbols = np.asarray(symbols, dtype=str)
    unique, inverse = np.unique(np.char.upper(symbols), return_inverse=True)
    numbers = np.array([ATOMIC_NUMBERS.get(s, 0) for s in unique.tolist()], dtype=np.int32)
    return numbers[inverse.reshape(-1)]


def guess_summary(names: np.ndarray, symbols: np.ndarray, limit: int = 6) -> str:
    """'POT -> K (1), CLA -> Cl (1), ...': the most common name -> element guesses, for a note."""
    pairs = Counter(
        zip(np.asarray(names, str).tolist(), np.asarray(symbols, str).tolist(), strict=True)
    )
    shown = [
        f"{name} -> {symbol or 'none'} ({n})" for (name, symbol), n in pairs.most_common(limit)
    ]
    more = len(pairs) - len(shown)
    return ", ".join(shown) + (f", and {more} more names" if more > 0 else "")
