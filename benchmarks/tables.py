"""Markdown tables from the cached cell results of benchmarks/run.py.

Run: ``python -m benchmarks.tables [--quick] [--out FILE]``. Without ``--out`` the tables of the
full results replace the block between ``<!-- tables:begin -->`` and ``<!-- tables:end -->`` in
benchmarks/README.md; those of the ``--quick`` results (tiny budgets, never to be quoted) go to
standard output, so that they can never replace the committed tables.

One row per data set, split and model: data set first, model second, then the test MSE's mean
and standard deviation over seeds (sample sd, n - 1; "-" for one seed), the seeds, the epochs and
the mean wall time per run. The baselines (not trained) come from the evaluations of the same
windows and have no spread. MD17 rows are in x10^-3 Angstrom^2 as in the ESTAG paper's Table 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.run import QUICK_RESULTS, RESULTS
from benchmarks.suite import BASELINES, TABLES
from dynforecast.data.splits import SEEDED_MODES

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- tables:begin -->", "<!-- tables:end -->"
HEADER = "| data set | model | split | test MSE | sd | seeds | epochs | s/run |"
RULE = "|---|---|---|---|---|---|---|---|"


def load_results(folder: Path) -> list[dict]:
    """Every cell record (``<model>-seed<S>.json``) under ``folder``; other JSON there (the
    learning-rate sweeps) is not a cell."""
    paths = sorted(folder.rglob("*-seed*.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _number(value: float | None, scale: float, digits: int = 4) -> str:
    return "-" if value is None else f"{value * scale:.{digits}g}"


def _distinct_numbers(values: list[float], scale: float) -> str:
    """The values, comma-separated, with the fewest significant digits (at least 4, at most 9)
    that tell every pair apart: two realisations whose stay MSEs agree to 4 digits still read
    as two numbers."""
    for digits in range(4, 10):
        shown = [_number(v, scale, digits) for v in values]
        if len(set(shown)) == len(shown):
            break
    return ", ".join(shown)


def _config(record: dict) -> dict:
    return record.get("config") or {}


def data_fingerprint(record: dict) -> tuple[tuple[str, str, str], float | str | None]:
    """((data set, split, model), what identifies the data a model's cell was scored on).

    Normally the stay baseline's test MSE: the file checksum is not used, because it also
    changes when only the file's metadata does, and the stay baseline depends on the model's
    window (one past frame or ten give other test windows), hence the model in the key. On a
    split whose test windows depend on the seed (`dynforecast.data.splits.SEEDED_MODES`, e.g.
    the ``--quick`` stand-in for ESTAG's MD17 split) the stay differs per seed on the same
    data, so the data file's checksum is the fingerprint there.
    """
    key = (record["dataset"], record["split"], record["model"])
    train_config = _config(record).get("train_config", {})
    if train_config.get("data", {}).get("split", {}).get("mode") in SEEDED_MODES:
        checksum = _config(record).get("data_checksum")
        return key, None if checksum is None else f"checksum {checksum[:8]}"
    stay = record.get("baselines", {}).get("stay")
    return key, None if stay is None else float(f"{stay:.9g}")


def _realisations(values: set[float | str], scale: float) -> str:
    """The fingerprints of several realisations as the note under a table shows them."""
    numbers = sorted(v for v in values if isinstance(v, float))
    texts = sorted(v for v in values if isinstance(v, str))
    shown = [f"stay MSE {_distinct_numbers(numbers, scale)}"] if numbers else []
    return "; ".join(shown + ([", ".join(texts)] if texts else []))


def current_data(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(records on the current data, records left out).

    A data set regenerated after a lost cache need not be the same trajectory (OpenMM on
    several threads is not bit-reproducible), and seeds on two realisations must not be averaged
    as one: per data set, split and model, the data of the most recently finished cell is
    current; that model's cells scored on other data are left out (and listed under the table).
    """
    latest: dict[tuple[str, str, str], tuple[str, float | str | None]] = {}
    for record in records:
        key, stay = data_fingerprint(record)
        finished = record.get("finished", "")
        if key not in latest or finished > latest[key][0]:
            latest[key] = (finished, stay)
    kept, left_out = [], []
    for record in records:
        key, stay = data_fingerprint(record)
        current = latest[key][1]
        if stay is None or current is None or stay == current:
            kept.append(record)
        else:
            left_out.append(record)
    return kept, left_out


def table_markdown(name: str, records: list[dict]) -> str:
    """The Markdown of one table (title, header, rows) from its cell records; cells on an
    earlier realisation of a regenerated data set are left out and listed under the table."""
    table = TABLES[name]
    records, left_out = current_data(records)
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["dataset"], record["split"], record["model"])].append(record)
    order = {m: i for i, m in enumerate(table.models)}
    lines = [f"### {table.title}", "", HEADER, RULE]
    split_order = {s.name: i for i, s in enumerate(table.splits)}
    datasets = sorted({key[:2] for key in groups}, key=lambda k: (k[0], split_order.get(k[1], 99)))
    for dataset, split in datasets:
        cells = sorted(
            (key for key in groups if key[:2] == (dataset, split)),
            key=lambda key: order.get(key[2], 99),
        )
        for key in cells:
            runs = groups[key]
            values = [r["test_mse"] for r in runs]
            mean = statistics.fmean(values)
            sd = statistics.stdev(values) if len(values) > 1 else None
            seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
            seconds = statistics.fmean(r["seconds"] for r in runs)
            lines.append(
                f"| {dataset} | {key[2]} | {split} | {_number(mean, table.unit_scale)} | "
                f"{_number(sd, table.unit_scale)} | {seeds} | {runs[0]['epochs']} | {seconds:.0f} |"
            )
        # Baselines do not depend on the model: any cell of this data set and split gives them
        # (a baseline added later is in the newer cells' records only).
        records_here = [r for key in cells for r in groups[key]]
        for baseline in BASELINES:
            values = [r["baselines"][baseline] for r in records_here if baseline in r["baselines"]]
            known = [v for v in values if v is not None]
            value = known[0] if known else None
            if values and (known or baseline != "file_velocity"):
                lines.append(
                    f"| {dataset} | {baseline} | {split} | {_number(value, table.unit_scale)} "
                    "| - | - | - | - |"
                )
    for dataset, split in datasets:
        fingerprints = {
            data_fingerprint(r)[1]
            for r in records
            if (r["dataset"], r["split"]) == (dataset, split)
            and data_fingerprint(r)[1] is not None
            and not r["model"].endswith("_paper")  # its own window: its own stay
        }
        if len(fingerprints) > 1:
            shown = _realisations(fingerprints, table.unit_scale)
            lines += [
                "",
                f"Not comparable yet: the models of {dataset} {split} were scored on different "
                f"realisations of the data ({shown}); the baseline rows are one of them.",
            ]
    if left_out:
        names = ", ".join(
            f"{r['dataset']} {r['split']} {r['model']} seed {r['seed']}"
            for r in sorted(
                left_out, key=lambda r: (r["dataset"], r["split"], r["model"], r["seed"])
            )
        )
        lines += ["", f"Left out (trained on an earlier realisation of regenerated data): {names}."]
    return "\n".join(lines)


def all_tables(records: list[dict]) -> str:
    """Every table that has results, in suite order, with the machines they ran on."""
    by_table: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_table[record["table"]].append(record)
    parts = [table_markdown(name, by_table[name]) for name in TABLES if by_table.get(name)]
    machines = sorted(
        {
            f"{r['machine']['cpu']} ({r['machine']['cores']} cores), torch {r['machine']['torch']}"
            for r in records
        }
    )
    if machines:
        parts.append("Machines: " + "; ".join(machines) + ".")
    return "\n\n".join(parts) if parts else "(no results yet)"


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the BEGIN and END markers replaced by ``block``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"expected {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the benchmark tables as Markdown.")
    parser.add_argument("--quick", action="store_true", help="tables of the --quick results")
    parser.add_argument(
        "--out",
        type=Path,
        help="write here instead of benchmarks/README.md (--quick: instead of standard output)",
    )
    args = parser.parse_args(argv)
    markdown = all_tables(load_results(QUICK_RESULTS if args.quick else RESULTS))
    if args.out is not None:
        args.out.write_text(markdown + "\n", encoding="utf-8")
    elif args.quick:
        print(markdown)
    else:
        README.write_text(replace_block(README.read_text(encoding="utf-8"), markdown), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
