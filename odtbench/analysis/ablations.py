"""The study's ablation figures from the suite's runs (reports/ablations.html, docs/ablations.md).

Input: the plan of `odtbench.workflow.plan.ablation_plan` (figures -> panels -> lines, each
line a method or one swept value, with its run directory name), and the runs under
`results/runs/<scale>`. The curves, their mean ± std over seeds and the panels' axes are the
suite report's own (`curves`, `diagnostics`); only the grouping differs: a line is a run
directory name, not a method, since a sweep runs one method many times.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from odtbench.analysis.common import METHOD_COLORS
from odtbench.analysis.curves import (
    GRID_LAYOUTS,
    curve_table,
    draw_lines,
    mean_std,
    panel_layout,
    shared_legend,
    style_axis,
)
from odtbench.analysis.diagnostics import diagnostics_table
from odtbench.analysis.scores import SCORE_COLUMNS, score_row
from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import RunRecord, atomic_write_text, run_dir, validate_run

# Lines of a sweep are ordered values, not methods: a sequential palette keeps them apart.
_SWEEP_COLORS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#c8a600", "#e8590c", "#9c36b5")
X_LABELS = {"online_transitions": "Online Transitions", "gradient_steps": "Gradient Steps"}
# The figure tables: one row per (panel, line, seed); status "pending" = the method is not
# registered in this build, "missing" = no run directory yet.
TABLE_COLUMNS = ["figure", "panel", "panel_title", "line", "run_method", "y",
                 *[c for c in SCORE_COLUMNS if c not in ("run_dir",)], "score_jitter", "run_dir"]
RunKey = tuple[str, str, str, int]  # suite, dataset, run method directory, seed


def run_path(runs_root: str | os.PathLike, suite: str, dataset: str, run_method: str,
             seed: int) -> Path:
    """A line's run directory under the scale's runs root (the workflow's RUN_DIR below it)."""
    return run_dir(runs_root, suite, dataset, run_method, seed)


def load_plan_records(plan: Mapping[str, Any],
                      runs_root: str | os.PathLike) -> dict[RunKey, RunRecord]:
    """The validated run of every planned (non-pending) line and seed that has a run directory
    with a config.json; refuses runs of another scale than the plan's (one line)."""
    out: dict[RunKey, RunRecord] = {}
    for fig in plan["figures"]:
        for panel in fig["panels"]:
            for line in panel["lines"]:
                if line["pending"]:
                    continue
                for seed in plan["seeds"]:
                    key = (panel["suite"], panel["dataset"], line["run_method"], int(seed))
                    path = run_path(runs_root, *key)
                    if key in out or not (path / "config.json").is_file():
                        continue
                    rec = validate_run(path)
                    if rec.config.get("scale") != plan["scale"]:
                        raise OdtbenchError(f"{path}: a {rec.config.get('scale')!r}-scale run in "
                                            f"the {plan['scale']!r}-scale ablations; move it")
                    out[key] = rec
    return out


def score_jitter(rec: RunRecord) -> float | None:
    """Mean |change of the score| between consecutive online evaluations of one run: how
    much its curve moves from one evaluation to the next (the study's "less stable", Fig. 5a);
    None with fewer than two online evaluations."""
    c = rec.curve
    if c is None or c.empty:
        return None
    online = c.loc[c["phase"] == "online", "score_mean"].astype(float)
    return float(online.diff().abs().mean()) if len(online) >= 2 else None


def figure_table(fig: Mapping[str, Any], seeds: list[int], records: Mapping[RunKey, RunRecord],
                 runs_root: str | os.PathLike) -> pd.DataFrame:
    """One row per (panel, line, seed) of a figure: the run's scores as in scores.csv, or
    status "missing" (no run yet) / "pending" (method not registered)."""
    rows = []
    for i, panel in enumerate(fig["panels"]):
        for line in panel["lines"]:
            for seed in seeds:
                key = (panel["suite"], panel["dataset"], line["run_method"], int(seed))
                head = {"figure": fig["figure"], "panel": i, "panel_title": panel["title"],
                        "line": line["label"], "run_method": line["run_method"], "y": panel["y"]}
                rec = records.get(key)
                if rec is not None:
                    rows.append({**head, **score_row(rec, Path(runs_root)),
                                 "score_jitter": score_jitter(rec)})
                else:
                    rows.append({**head, "suite": panel["suite"], "dataset": panel["dataset"],
                                 "method": line["method"], "seed": int(seed),
                                 "status": "pending" if line["pending"] else "missing"})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def write_figure_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def panel_stats(panel: Mapping[str, Any], seeds: list[int],
                records: Mapping[RunKey, RunRecord]) -> pd.DataFrame:
    """mean_std() of one panel, one "method" per line label: the normalised score (y =
    "score", curve.csv) or a diagnostics.csv column, against the panel's x."""
    parts = []
    for line in panel["lines"]:
        recs = [records[k] for k in ((panel["suite"], panel["dataset"], line["run_method"], int(s))
                                     for s in seeds) if k in records]
        if not recs:
            continue
        if panel["y"] == "score":
            t = curve_table(recs)
            y = "score_mean"
        else:
            t = diagnostics_table(recs)
            y = panel["y"]
            if t.empty or y not in t:
                continue
        if t.empty:
            continue
        x = "x" if panel["x"] == "online_transitions" and "x" in t else panel["x"]
        parts.append(mean_std(t.assign(method=line["label"]), y=y, x=x)
                     .assign(dataset=panel["dataset"]))
    cols = ["dataset", "method", "x", "mean", "std", "n"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _colors(panels: list[Mapping[str, Any]]) -> dict[str, str]:
    labels = list(dict.fromkeys(line["label"] for p in panels for line in p["lines"]))
    return {lab: METHOD_COLORS.get(lab, _SWEEP_COLORS[i % len(_SWEEP_COLORS)])
            for i, lab in enumerate(labels)}


def _grid(fig: Mapping[str, Any]) -> list[list[int | None]]:
    """Panel indices in rows: the study's Fig. 6 grid when every panel is a score panel of
    a different dataset of one gridded suite (Figs. 8, 9), else four per row."""
    panels = fig["panels"]
    suites = {p["suite"] for p in panels}
    datasets = [p["dataset"] for p in panels]
    if (len(suites) == 1 and next(iter(suites)) in GRID_LAYOUTS and len(set(datasets)) == len(panels)
            and all(p["y"] == "score" for p in panels) and len(panels) > 4):
        at = {d: i for i, d in enumerate(datasets)}
        return [[at[d] if d else None for d in row]
                for row in panel_layout(next(iter(suites)), datasets)]
    n = len(panels)
    ncol = min(4, max(1, n))
    return [[i if i < n else None for i in range(r, r + ncol)] for r in range(0, n, ncol)]


def plot_figure(fig: Mapping[str, Any], seeds: list[int],
                records: Mapping[RunKey, RunRecord]) -> Figure:
    """One study figure, one panel per cell, one shared legend; a panel without data says
    why (no runs yet, or its methods not registered) instead of drawing an empty axis."""
    panels = fig["panels"]
    grid = _grid(fig) or [[None]]
    nr, nc = len(grid), len(grid[0])
    out = Figure(figsize=(3.3 * nc, 2.6 * nr + 0.8), layout="constrained")
    axes = out.subplots(nr, nc, squeeze=False)
    colors = _colors(panels)
    for r, row in enumerate(grid):
        for c, i in enumerate(row):
            ax = axes[r][c]
            if i is None:
                ax.set_axis_off()
                continue
            panel = panels[i]
            labels = [line["label"] for line in panel["lines"]]
            drawn = draw_lines(ax, panel_stats(panel, seeds, records), labels, colors)
            pending = list(dict.fromkeys(ln["method"] for ln in panel["lines"] if ln["pending"]))
            if not drawn:
                ax.text(0.5, 0.5, empty_reason(panel), ha="center", va="center", wrap=True,
                        fontsize=8, color="#b42318", transform=ax.transAxes)
            elif pending:  # the panel shows some of its lines: say which are missing
                ax.text(0.02, 0.02, "not registered: " + ", ".join(pending), fontsize=7,
                        color="#b42318", transform=ax.transAxes)
            ax.set_title(panel["title"], fontsize=10)
            style_axis(ax, ylabel=("Normalized Reward" if panel["y"] == "score"
                                   else panel["y"].replace("_", " ")) if c == 0 or
                       panel["y"] != "score" else None,
                       xlabel=X_LABELS[panel["x"]] if r == nr - 1 or grid[r + 1][c] is None
                       else None)
    shared_legend(out, axes.flat, list(colors))
    out.suptitle(fig["title"])
    return out


def empty_reason(panel: Mapping[str, Any]) -> str:
    pending = [line["method"] for line in panel["lines"] if line["pending"]]
    if pending and len(pending) == len(panel["lines"]):
        return "not runnable yet:\n" + ", ".join(dict.fromkeys(pending)) + "\nnot registered"
    if panel["y"] != "score":
        return f"no run has written\n{panel['y']!r} yet"
    return "no runs yet"


def line_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (panel, line): runs with a final score / planned, mean ± std of final, before,
    best and the score's jitter between evaluations, and the status of the line (pending / missing / partial / complete)."""
    rows = []
    for (panel, line), g in table.groupby(["panel", "line"], sort=False):
        ok = g[g["final_score"].notna()]
        status = ("pending" if (g["status"] == "pending").all() else
                  "missing" if (g["status"] == "missing").all() else
                  "complete" if len(ok) == len(g) else "partial")
        rows.append({"panel": panel, "panel_title": g["panel_title"].iloc[0],
                     "dataset": g["dataset"].iloc[0], "line": line,
                     "run_method": g["run_method"].iloc[0], "runs": f"{len(ok)}/{len(g)}",
                     "status": status,
                     "before": ok["before_score"].mean() if len(ok) else None,
                     "final": ok["final_score"].mean() if len(ok) else None,
                     "final_std": ok["final_score"].std(ddof=0) if len(ok) else None,
                     "best": ok["best_score"].mean() if len(ok) else None,
                     "jitter": ok["score_jitter"].mean() if len(ok) else None,
                     "online_transitions": ok["online_transitions"].max() if len(ok) else None})
    return pd.DataFrame(rows)


__all__ = ["load_plan_records", "score_jitter", "figure_table", "write_figure_table", "panel_stats",
           "plot_figure", "line_summary", "empty_reason", "run_path", "TABLE_COLUMNS"]
