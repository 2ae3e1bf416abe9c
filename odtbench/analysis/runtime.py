"""Runtime per method from Snakemake `benchmark:` files (TSV: s, h:m:s, max_rss, ...), found
anywhere below a root as `.../<suite>/<dataset>/<method>/seed<k>.tsv` (one job per seed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from odtbench.analysis.common import sort_methods
from odtbench.errors import OdtbenchError

_SEED = re.compile(r"^seed(\d+)\.tsv$")
NUMERIC = ("s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load",
           "cpu_time")


def read_benchmarks(root: str | os.PathLike | None, suite: str) -> pd.DataFrame:
    """One row per benchmark file of `suite` (several repeats in one file are averaged); an
    empty table when root is None or not a directory."""
    rows = []
    base = Path(root) if root else None
    found = ([(p, p.relative_to(base).parts) for p in sorted(base.rglob("seed*.tsv"))]
             if base is not None and base.is_dir() else [])
    for path, parts in found:
        m = _SEED.match(path.name)
        if not m or len(parts) < 4 or parts[-4] != suite:
            continue
        try:
            df = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise OdtbenchError(f"{path}: not a Snakemake benchmark TSV ({exc}); delete it and "
                                "re-run the job") from None
        if "s" not in df.columns:
            raise OdtbenchError(f"{path}: column 's' missing; not a Snakemake benchmark file")
        row = {"dataset": parts[-3], "method": parts[-2], "seed": int(m.group(1)),
               "file": str(path)}
        for col in NUMERIC:
            if col in df.columns:
                row[col] = pd.to_numeric(df[col], errors="coerce").mean()
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "file", *NUMERIC])


def runtime_by_method(bench: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per method: jobs, mean/total wall seconds and peak memory (benchmarks), and the mean
    in-run wall time the runs report themselves (summary.json), when available."""
    methods = set(bench["method"]) | (set(scores["method"]) if scores is not None else set())
    rows = []
    for m in sort_methods(methods):
        b = bench[bench["method"] == m]
        r = {"method": m, "jobs": len(b),
             "mean_s": b["s"].mean() if len(b) else None,
             "total_h": b["s"].sum() / 3600 if len(b) else None,
             "max_rss_mb": b["max_rss"].max() if len(b) and b["max_rss"].notna().any() else None,
             "mean_cpu_s": b["cpu_time"].mean() if len(b) and b["cpu_time"].notna().any() else None,
             "run_wall_s": None}
        if scores is not None:
            w = scores.loc[scores["method"] == m, "wall_time_s"].dropna()
            r["run_wall_s"] = w.mean() if len(w) else None
        rows.append(r)
    return pd.DataFrame(rows)
