"""`python -m fuzz.long_run --per-family 10000`: the long run, in resumable chunks.

The run is a sequence of chunks, one (family, seed) pair each: `--chunk` inputs of that family
drawn with that hypothesis seed (fuzz.ingest.fuzz_family). Each finished chunk appends one JSON
line to `<results>/log.jsonl` (counts, exit codes, findings, seconds, date, git commit); a restart
skips the chunks already logged, so the run can be stopped (Ctrl-C, a session's end) and resumed
with the same command. Chunks go round-robin over the families, so a run cut short has about the
same count in each. `--summary` prints the per-family totals of the log and runs nothing.

Findings are saved under `<results>/<family>/...` as fuzz.ingest saves them. A family whose
reader was fixed is re-run on new seeds with `--first-seed N`: totals then count seeds >= N only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from fuzz.ingest import DEFAULT_RESULTS, fuzz_family
from fuzz.runner import preload
from fuzz.seeds import FAMILIES, seed_corpus


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def read_log(log: Path) -> list[dict]:
    """The chunks logged so far (a line cut by a kill is ignored)."""
    if not log.exists():
        return []
    records = []
    for line in log.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def summary(records: list[dict], families: tuple[str, ...] = FAMILIES) -> list[str]:
    """One line per family: inputs, chunks, seeds, findings by kind, exit codes."""
    lines = []
    for family in families:
        mine = [r for r in records if r["family"] == family]
        inputs = sum(r["inputs"] for r in mine)
        kinds: Counter = Counter()
        codes: Counter = Counter()
        for r in mine:
            kinds.update(r["kinds"])
            codes.update(r["exit_codes"])
        seeds = sorted(r["seed"] for r in mine)
        span = f"seeds {seeds[0]}-{seeds[-1]}" if seeds else "no chunks"
        found = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
        exits = ", ".join(f"exit {c}: {n}" for c, n in sorted(codes.items()))
        lines.append(
            f"{family}: {inputs} inputs in {len(mine)} chunks ({span}); findings: {found} [{exits}]"
        )
    return lines


def run_chunks(
    families: tuple[str, ...],
    *,
    per_family: int,
    chunk: int,
    first_seed: int,
    results: Path,
    timeout: float,
    echo=print,
) -> list[dict]:
    """Run the chunks not yet in the log until each family has ``per_family`` inputs logged."""
    log = results / "log.jsonl"
    results.mkdir(parents=True, exist_ok=True)
    done = {(r["family"], r["seed"]) for r in read_log(log)}
    counts = Counter()
    for r in read_log(log):
        if r["seed"] >= first_seed:
            counts[r["family"]] += r["inputs"]
    preload()
    corpus = seed_corpus(families)
    commit = _commit()
    new = []
    seed = first_seed
    with tempfile.TemporaryDirectory(prefix="dynforecast-fuzz-long-") as tmp:
        while any(counts[f] < per_family for f in families):
            for family in families:
                if counts[family] >= per_family or (family, seed) in done:
                    continue
                report = fuzz_family(
                    family,
                    corpus[family],
                    seconds=None,
                    inputs=min(chunk, per_family - counts[family]),
                    seed=seed,
                    timeout=timeout,
                    results=results,
                    workdir=Path(tmp),
                )
                record = {
                    "family": family,
                    "seed": seed,
                    "inputs": report.inputs,
                    "exit_codes": {str(k): v for k, v in report.exit_codes.items()},
                    "findings": dict(report.findings),
                    "kinds": dict(report.kinds),
                    "seconds": round(report.seconds, 1),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "commit": commit,
                }
                with log.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                counts[family] += report.inputs
                new.append(record)
                echo(f"seed {seed} {report.line()} (total {counts[family]})")
            seed += 1
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz.long_run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--per-family", type=int, default=10_000, help="inputs per family")
    parser.add_argument("--chunk", type=int, default=500, help="inputs per (family, seed) chunk")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="count only chunks from this seed on (a re-run after a fix starts past the old seeds)",
    )
    parser.add_argument(
        "--format",
        action="append",
        choices=FAMILIES,
        dest="formats",
        help="repeatable; default all",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per input (hang)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS / "long")
    parser.add_argument("--summary", action="store_true", help="print the log's totals and stop")
    args = parser.parse_args(argv)
    families = tuple(args.formats or FAMILIES)
    if not args.summary:
        run_chunks(
            families,
            per_family=args.per_family,
            chunk=args.chunk,
            first_seed=args.first_seed,
            results=args.results,
            timeout=args.timeout,
        )
    records = [r for r in read_log(args.results / "log.jsonl") if r["seed"] >= args.first_seed]
    for line in summary(records, families):
        print(line)
    return 1 if any(r["kinds"] for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
