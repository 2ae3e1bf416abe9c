"""Add a finished workflow's measured run times to the committed timing table that
`odtbench status` uses before this scale's runs have finished here (odtbench/workflow/status.py).

    python benchmarks/run_times.py --root /path/to/workflow/checkout --scale quick --suite toy \
        --machine "2-core VM, load ~12, 2 jobs at a time"

Per (scale, suite, dataset, method): the number of runs, their mean job wall seconds (Snakemake
benchmark files, start-up included: odtbench.analysis.runtime) and mean online-phase seconds
(curve.csv: odtbench.workflow.status.online_seconds). Rows of the same key are replaced, others kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from odtbench.analysis.runtime import read_benchmarks
from odtbench.workflow.status import TIMING_COLUMNS, TIMING_TABLE, online_seconds

HEADER = ("# Measured wall seconds per run, by scale, suite, dataset and method: job_s the whole\n"
          "# Snakemake job (start-up included), online_s the online phase alone (blank: not\n"
          "# measured). Written by benchmarks/run_times.py; read by `odtbench status`\n"
          "# (odtbench/workflow/status.py) for runs whose scale has no finished run here yet.\n")


def measure(root: Path, scale: str, suite: str, machine: str) -> list[dict[str, str]]:
    bench = read_benchmarks(root / "results/benchmarks" / scale, suite)
    runs = root / "results/runs" / scale / suite
    rows = []
    for (dataset, method), b in bench.groupby(["dataset", "method"], sort=True):
        online = []
        for summ in sorted((runs / dataset / method).glob("seed*/summary.json")):
            if json.loads(summ.read_text()).get("status") == "complete":
                if (o := online_seconds(summ.parent)) is not None:
                    online.append(o)
        day = time.strftime("%Y-%m-%d", time.gmtime(max(Path(f).stat().st_mtime for f in b["file"])))
        rows.append({"scale": scale, "suite": suite, "dataset": str(dataset), "method": str(method),
                     "runs": str(len(b)), "job_s": f"{b['s'].mean():.1f}",
                     "online_s": f"{sum(online) / len(online):.1f}" if online else "",
                     "measured": day, "machine": machine})
    return rows


def merge(table: Path, new: list[dict[str, str]]) -> None:
    key = lambda r: (r["scale"], r["suite"], r["dataset"], r["method"])  # noqa: E731
    old: list[dict[str, str]] = []
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as fh:
            old = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    keys = {key(r) for r in new}
    rows = sorted([r for r in old if key(r) not in keys] + new, key=key)
    with open(table, "w", newline="", encoding="utf-8") as fh:
        fh.write(HEADER)
        w = csv.DictWriter(fh, fieldnames=TIMING_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in TIMING_COLUMNS} for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("."), help="the workflow's checkout")
    p.add_argument("--scale", required=True)
    p.add_argument("--suite", required=True)
    p.add_argument("--machine", required=True, help="cores, load, jobs at a time")
    p.add_argument("--table", type=Path, default=TIMING_TABLE)
    a = p.parse_args()
    rows = measure(a.root, a.scale, a.suite, a.machine)
    if not rows:
        raise SystemExit(f"no benchmark files of {a.suite} under {a.root}/results/benchmarks/{a.scale}")
    merge(a.table, rows)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
