#!/usr/bin/env python
"""Per line of the quick-scale ablation figures: final score (mean ± std over seeds), the
score's jitter between evaluations, and the means over the online diagnostics rows of how far
online states go from the offline data (online_max_abs_z), the online episode length and the
cosine between the actor's supervised and RL gradients (issue 18's closing comparison).

    python benchmarks/ablation_lines.py --runs evidence/ablations/quick/runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from odtbench.analysis import ablations as ab
from odtbench.analysis.diagnostics import diagnostics_table
from odtbench.workflow import plan as wp

DIAG = ("online_max_abs_z", "online_length_mean", "grad_cosine")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="runs root holding SUITE/DATASET/...")
    p.add_argument("--scale", default="quick")
    p.add_argument("--config", default="workflows/config.yaml")
    a = p.parse_args(argv)
    plan = wp.ablation_plan(wp.load_config(a.config), a.scale)
    records = ab.load_plan_records(plan, a.runs)
    rows = []
    for fig in plan["figures"]:
        summary = ab.line_summary(ab.figure_table(fig, plan["seeds"], records, a.runs))
        for _, r in summary.iterrows():
            panel = fig["panels"][int(r["panel"])]
            diag = []
            for seed in plan["seeds"]:
                rec = records.get((panel["suite"], panel["dataset"], r["run_method"], int(seed)))
                d = diagnostics_table([rec]) if rec is not None else None
                if d is not None and not d.empty:
                    diag.append(d.loc[d["phase"] == "online", list(DIAG)].mean())
            means = pd.concat(diag, axis=1).mean(axis=1) if diag else pd.Series(dtype=float)
            rows.append({"figure": fig["figure"], "dataset": r["dataset"], "line": r["line"],
                         "runs": r["runs"], "final": f"{r['final']:.2f} ± {r['final_std']:.2f}",
                         "best": round(r["best"], 2), "jitter": round(r["jitter"], 2),
                         **{k: round(float(means.get(k, float("nan"))), 2) for k in DIAG}})
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
