"""`python -m fuzz.ingest --seconds N [--format F] [--seed S] [--inputs K]`: fuzz every reader.

For each format family (fuzz/seeds.py) hypothesis draws a seed file and 1-3 mutations
(fuzz/mutate.py); each mutant is ingested through the CLI's own command in a forked child with a
timeout (fuzz/runner.py). Findings: an internal error (exit 1), a crash, a hang, a file left in the
output directory, an output written by a failed ingest, a written file that `info` cannot read.
Each is saved (its input files and traceback) under the results folder, at most a few per cause;
a summary line per family gives inputs tried and findings. Exit status 1 if anything was found.

Why hypothesis and not atheris: atheris's coverage guidance sees only Python code, and the
readers' risky parts are C (mdtraj's DCD/XTC/TRR plugins); it runs inputs in its own process, so a
hang or segfault would end the run, where a fork per input isolates each; and hypothesis's
generator is seeded, so the same --seed gives the same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from fuzz.mutate import mutate
from fuzz.runner import Outcome, preload, run_input
from fuzz.seeds import FAMILIES, Seed, seed_corpus

#: Findings kept on disk per cause (signature); all are counted.
KEEP_PER_SIGNATURE = 3
DEFAULT_RESULTS = Path(__file__).resolve().parent.parent / "fuzz-results"


@dataclass
class FamilyReport:
    """Counts of one family's run."""

    family: str
    inputs: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    findings: Counter = field(default_factory=Counter)  # signature -> count
    kinds: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        codes = ", ".join(f"exit {c}: {n}" for c, n in sorted(self.exit_codes.items(), key=str))
        found = sum(self.findings.values())
        causes = f" in {len(self.findings)} causes" if found else ""
        kinds = (
            f" ({', '.join(f'{k} {n}' for k, n in sorted(self.kinds.items()))})" if found else ""
        )
        return (
            f"{self.family}: {self.inputs} inputs, {found} findings{causes}{kinds} "
            f"in {self.seconds:.0f} s [{codes}]"
        )


class _Budget(Exception):
    """Raised inside the hypothesis test when the family's time is spent."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def _save(
    results: Path,
    family: str,
    seed: Seed,
    files: dict[str, bytes],
    operators: list[str],
    outcome: Outcome,
    report: FamilyReport,
) -> None:
    if report.findings[outcome.signature] > KEEP_PER_SIGNATURE:
        return
    digest = hashlib.sha1(b"".join(files.values())).hexdigest()[:10]
    folder = results / _slug(family) / f"{outcome.finding}-{_slug(outcome.signature)}" / digest
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    top = f" --topology {seed.topology}" if seed.topology else ""
    (folder / "finding.txt").write_text(
        f"kind: {outcome.finding}\nexit code: {outcome.exit_code}\nseed file: {seed.label}\n"
        f"mutations: {', '.join(operators)}\n"
        f"reproduce: cd {folder} && dynforecast --debug ingest {seed.input}{top} -o /tmp/x.h5\n\n"
        f"{outcome.detail}\n"
    )


def fuzz_family(
    family: str,
    seeds: list[Seed],
    *,
    seconds: float | None,
    inputs: int | None,
    seed: int,
    timeout: float,
    results: Path,
    workdir: Path,
) -> FamilyReport:
    """Fuzz one family until ``seconds`` pass or ``inputs`` inputs ran, whichever is first."""
    report = FamilyReport(family)
    start = time.monotonic()
    counter = iter(range(10**12))
    stopped = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=inputs or 10**9,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @given(st.data())
    def one_input(data: st.DataObject) -> None:
        if seconds is not None and time.monotonic() - start > seconds:
            stopped.append(True)
            raise _Budget
        chosen = seeds[data.draw(st.integers(0, len(seeds) - 1))]
        files = dict(chosen.files)
        target = chosen.input
        if chosen.topology is not None and data.draw(st.booleans()):
            target = chosen.topology
        files[target], operators = mutate(files[target], data.draw)
        case = workdir / f"case-{next(counter)}"
        inputs_dir, output_dir = case / "in", case / "out"
        inputs_dir.mkdir(parents=True)
        output_dir.mkdir()
        for name, content in files.items():
            (inputs_dir / name).write_bytes(content)
        topology = inputs_dir / chosen.topology if chosen.topology else None
        outcome = run_input([inputs_dir / chosen.input], topology, output_dir / "out.h5", timeout)
        report.inputs += 1
        report.exit_codes[outcome.exit_code] += 1
        if outcome.finding:
            report.findings[outcome.signature] += 1
            report.kinds[outcome.finding] += 1
            _save(results, family, chosen, files, operators, outcome, report)
        shutil.rmtree(case, ignore_errors=True)

    try:
        one_input()
    except Exception:  # hypothesis may wrap _Budget (its replay of the "failing" example)
        if not stopped:
            raise
    report.seconds = time.monotonic() - start
    return report


def run(
    families: tuple[str, ...],
    *,
    seconds: float | None,
    inputs: int | None,
    seed: int = 0,
    timeout: float = 5.0,
    results: Path = DEFAULT_RESULTS,
    echo=print,
) -> list[FamilyReport]:
    """Fuzz ``families``: ``seconds`` is the whole run's time, shared equally by the families."""
    preload()
    corpus = seed_corpus(families)
    per_family = None if seconds is None else seconds / len(families)
    reports = []
    with tempfile.TemporaryDirectory(prefix="dynforecast-fuzz-") as tmp:
        for family in families:
            report = fuzz_family(
                family,
                corpus[family],
                seconds=per_family,
                inputs=inputs,
                seed=seed,
                timeout=timeout,
                results=results,
                workdir=Path(tmp),
            )
            echo(report.line())
            reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="time budget of the whole run, shared by the families",
    )
    parser.add_argument("--inputs", type=int, default=None, help="at most this many per family")
    parser.add_argument(
        "--format",
        action="append",
        choices=FAMILIES,
        dest="formats",
        help="a format family (repeatable; default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per input (hang)")
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="folder for findings (default: fuzz-results/, not committed)",
    )
    args = parser.parse_args(argv)
    if args.seconds is None and args.inputs is None:
        parser.error("give --seconds and/or --inputs")
    reports = run(
        tuple(args.formats or FAMILIES),
        seconds=args.seconds,
        inputs=args.inputs,
        seed=args.seed,
        timeout=args.timeout,
        results=args.results,
    )
    total = sum(sum(r.findings.values()) for r in reports)
    print(
        f"total: {sum(r.inputs for r in reports)} inputs, {total} findings"
        + (f" (saved under {args.results})" if total else "")
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
