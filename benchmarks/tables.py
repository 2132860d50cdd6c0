"""Markdown tables from the cached cell results of benchmarks/run.py.

Run: ``python -m benchmarks.tables [--quick] [--out FILE]``. Without ``--out`` the tables replace
the block between ``<!-- tables:begin -->`` and ``<!-- tables:end -->`` in benchmarks/README.md.

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

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- tables:begin -->", "<!-- tables:end -->"
HEADER = "| data set | model | split | test MSE | sd | seeds | epochs | s/run |"
RULE = "|---|---|---|---|---|---|---|---|"


def load_results(folder: Path) -> list[dict]:
    """Every cell record (``<model>-seed<S>.json``) under ``folder``; other JSON there (the
    learning-rate sweeps) is not a cell."""
    paths = sorted(folder.rglob("*-seed*.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _number(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.4g}"


def table_markdown(name: str, records: list[dict]) -> str:
    """The Markdown of one table (title, header, rows) from its cell records."""
    table = TABLES[name]
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
    parser.add_argument("--out", type=Path, help="write here instead of benchmarks/README.md")
    args = parser.parse_args(argv)
    markdown = all_tables(load_results(QUICK_RESULTS if args.quick else RESULTS))
    if args.out is not None:
        args.out.write_text(markdown + "\n", encoding="utf-8")
    else:
        README.write_text(replace_block(README.read_text(encoding="utf-8"), markdown), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
