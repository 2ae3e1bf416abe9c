"""One suite's analysis outputs from its run files: scores.csv, aggregates.json, the tables
(HTML/Markdown/LaTeX/CSV) and the figures (SVG/PNG). Pure functions of the run files, so
Snakemake can rebuild them without retraining anything."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TypedDict

import pandas as pd
from matplotlib.figure import Figure

from odtbench.analysis import tables
from odtbench.analysis.aggregates import SCHEMA, compute_aggregates
from odtbench.analysis.common import close, paper_domain, save_figure
from odtbench.analysis.curves import curve_table, mean_std, plot_curves
from odtbench.analysis.diagnostics import diagnostics_table, plot_diagnostics
from odtbench.analysis.reference import load_paper_results, task_info
from odtbench.analysis.rliable_plots import plot_aggregates, plot_improvement, plot_profiles
from odtbench.analysis.scores import build_scores, cell_summary, scores_csv_text
from odtbench.errors import OdtbenchError
from odtbench.runfiles.atomic import write_texts
from odtbench.runfiles.results import atomic_write_text, iter_runs, json_text, validate_run

DEFAULT_REPS = 2000  # quick/smoke; the study used 10 000 (pass reps=10000 at paper scale)


def scores_digest(scores: pd.DataFrame) -> str:
    """sha256 of the scores table's CSV text: aggregates.json records it so a report can tell
    whether stored aggregates still describe the current runs."""
    return "sha256:" + hashlib.sha256(scores_csv_text(scores).encode()).hexdigest()


def dataset_order(suite: str, datasets: Iterable[str]) -> list[str]:
    """Datasets in the study's table order where it has them, then alphabetically."""
    paper = list(load_paper_results(paper_domain(suite))["dataset"].drop_duplicates())
    pos = {d: paper.index(task_info(suite, d)["paper_dataset"])
           for d in datasets if task_info(suite, d)["paper_dataset"] in paper}
    return sorted(set(datasets), key=lambda d: (pos.get(d, len(paper)), d))


class SuiteTables(TypedDict):
    final: tables.Table
    before_after: tables.Table
    side_by_side: pd.DataFrame


def suite_tables(suite: str, scores: pd.DataFrame) -> SuiteTables:
    """The paper-style tables of a suite: final (+increase), before → after, and our cells next
    to the study's (a DataFrame; empty when the study has no table for the suite)."""
    cells = cell_summary(scores)
    order = dataset_order(suite, cells["dataset"].unique())
    final = tables.paper_table(cells, kind="final_increase", datasets=order,
                               title=f"{suite}: final score (+increase)")
    before_after = tables.paper_table(cells, kind="before_after", datasets=order,
                                      title=f"{suite}: before → after online finetuning")
    paper = load_paper_results(paper_domain(suite))
    names = {d: task_info(suite, d)["paper_dataset"] for d in order}
    side = (tables.side_by_side(cells, paper, datasets=order, paper_names=names)
            if not paper.empty else pd.DataFrame())
    return {"final": final, "before_after": before_after, "side_by_side": side}


def write_tables(suite: str, scores: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    out_dir = Path(out_dir)
    t = suite_tables(suite, scores)
    paths = tables.write_table(t["final"], out_dir / "table_final")
    paths += tables.write_table(t["before_after"], out_dir / "table_before_after")
    sbs = t["side_by_side"]
    if len(sbs):
        paths.append(atomic_write_text(out_dir / "table_vs_paper.csv", sbs.to_csv(index=False)))
        paths.append(atomic_write_text(out_dir / "table_vs_paper.md", tables.frame_to_markdown(sbs)))
    return paths


def load_records(runs_root: str | os.PathLike, suite: str) -> list:
    return [validate_run(p) for p in iter_runs(runs_root, suite)]


def suite_scores(runs_root: str | os.PathLike, suite: str, *,
                 expected: Iterable[tuple[str, str, int]] | None = None,
                 allow_mixed: bool = False) -> tuple[list, pd.DataFrame]:
    """The suite's validated run records and their scores table; one line if it has no run."""
    records = load_records(runs_root, suite)
    scores = build_scores(runs_root, suite, expected=expected, allow_mixed=allow_mixed,
                          records=records)
    if scores.empty:
        raise OdtbenchError(f"no runs of suite {suite!r} under {runs_root}; run them first "
                            f"(snakemake ... reports/{suite}.html or odtbench run ...)")
    return records, scores


def score_kind(records: list) -> str:
    """"success_rate" when every run scores success rates, else "normalized" (the label the
    figures and the report use)."""
    kinds = {(r.summary or {}).get("score_kind") or (r.config.get("reference") or {}).get("score_kind")
             for r in records}
    return "success_rate" if kinds == {"success_rate"} else "normalized"


def suite_figures(suite: str, records: list, aggregates: dict) -> dict[str, Figure]:
    """{name: Figure}: learning curves and rliable plots of the whole suite (callers close them)."""
    figs: dict[str, Figure] = {}
    stats = mean_std(curve_table(records))
    success = score_kind(records) == "success_rate"
    label = "Success Rate (%)" if success else "Normalized Score"
    if len(stats):
        figs["curves"] = plot_curves(stats, suite=suite,
                                     datasets=dataset_order(suite, stats["dataset"].unique()),
                                     ylabel="Success Rate (%)" if success else "Normalized Reward",
                                     limits=(0.0, 100.0) if success else None)
    diag = plot_diagnostics(diagnostics_table(records),
                            dataset_order(suite, [r.config["dataset"] for r in records]))
    if diag is not None:
        figs["diagnostics"] = diag
    group = aggregates["groups"].get("all", {})
    for name, fn in (("aggregates", partial(plot_aggregates, xlabel=label)),
                     ("profiles", partial(plot_profiles, xlabel=label)),
                     ("improvement", plot_improvement)):
        fig = fn(group) if group.get("methods") else None
        if fig is not None:
            figs[name] = fig
    return figs


def aggregate_suite(suite: str, runs_root: str | os.PathLike = "results/runs",
                    out_dir: str | os.PathLike | None = None, reps: int = DEFAULT_REPS,
                    allow_mixed: bool = False, *, seed: int = 0,
                    expected: Iterable[tuple[str, str, int]] | None = None,
                    figures_dir: str | os.PathLike | None = None) -> Path:
    """Write results/<suite>/{scores.csv, aggregates.json, table_*.{html,md,tex,csv}} and,
    if figures_dir is given, the figures as SVG and PNG. Returns out_dir."""
    if reps < 1:
        raise OdtbenchError(f"reps must be a positive number of bootstrap repetitions, got {reps}")
    out_dir = Path(out_dir) if out_dir is not None else Path("results") / suite
    records, scores = suite_scores(runs_root, suite, expected=expected, allow_mixed=allow_mixed)
    agg = compute_aggregates(scores, reps=reps, seed=seed)
    agg["scores_sha256"] = scores_digest(scores)
    # published together: a full disk leaves the old pair, never a new table beside old aggregates
    write_texts({out_dir / "scores.csv": scores_csv_text(scores),
                 out_dir / "aggregates.json": json_text(agg)})
    write_tables(suite, scores, out_dir)
    if figures_dir is not None:
        write_figures(suite, runs_root, figures_dir, agg, records=records)
    return out_dir


def write_figures(suite: str, runs_root: str | os.PathLike, figures_dir: str | os.PathLike,
                  aggregates: dict, *, records: list | None = None) -> list[Path]:
    """<figures_dir>/{curves,aggregates,profiles,improvement}.{svg,png}."""
    if records is None:
        records = load_records(runs_root, suite)
    paths = []
    for name, fig in suite_figures(suite, records, aggregates).items():
        paths += save_figure(fig, Path(figures_dir) / name)
        close(fig)
    return paths


def load_aggregates(path: str | os.PathLike, scores: pd.DataFrame | None = None,
                    reps: int | None = None) -> dict | None:
    """Stored aggregates.json if it matches `scores` (and `reps`), else None (recompute)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        agg = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON, or not UTF-8: damaged, so recompute like an outdated one
        return None
    if not isinstance(agg, dict) or agg.get("schema") != SCHEMA:
        return None
    if scores is not None and agg.get("scores_sha256") != scores_digest(scores):
        return None
    if reps is not None and agg.get("reps") != reps:
        return None
    return agg
