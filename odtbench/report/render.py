"""The HTML report of a suite: one self-contained file (inline CSS, figures as data: URIs, no
external URL) rendered with jinja2 from the run files, the stored aggregates when they still
match the runs, and Snakemake's benchmark files."""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

import odtbench
from odtbench.analysis import tables
from odtbench.analysis.aggregates import METRIC_LABELS, METRICS, compute_aggregates
from odtbench.analysis.common import FLOORS, OURS, close, figure_data_uri, paper_domain
from odtbench.analysis.reference import PAPER_TABLE, comparability_notes
from odtbench.analysis.runtime import read_benchmarks, runtime_by_method
from odtbench.analysis.suite import (
    DEFAULT_REPS,
    load_aggregates,
    score_kind,
    scores_digest,
    suite_figures,
    suite_scores,
    suite_tables,
)
from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"
FIGURE_CAPTIONS = {
    "curves": "{score} vs online transitions: mean ± std over seeds, bands clipped to the "
              "achievable range (the study's Fig. 6 layout and legend order).",
    "diagnostics": "Learning diagnostics (diagnostics.csv, mean over seeds): how well the "
                   "critic's Q tracks the discounted return actually obtained along evaluation "
                   "episodes, its overestimation at the first state, the replay buffer's online "
                   "share, the cosine between the actor's supervised and RL gradients (near -1: "
                   "the two terms cancel), and how far online states sit outside the frozen "
                   "state normalisation. ODT and PDT have no critic.",
    "aggregates": "rliable aggregates of the final scores with 95 % stratified-bootstrap CIs "
                  "(the study's Fig. 7).",
    "profiles": "Performance profiles: fraction of runs whose final {score_lc} exceeds τ, with "
                "95 % CIs.",
    "improvement": f"Probability that {OURS} improves on each other method, P({OURS} > Y), with "
                   "95 % CIs.",
}
# online_budget is not here: the protocol's "Online budget" row shows it beside what the runs did
EVAL_KEYS = ("eval_episodes", "eval_rtg", "eval_context_len", "online_rtg",
             "pretrain_updates", "pretrain_iters", "eval_every", "context_len", "max_episode_len")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    return env


def _num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA:
        return "—"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    try:
        return f"{float(v):,.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def _ci(d: Mapping) -> dict:
    return {"point": d["point"], "low": d["low"], "high": d["high"]}


def _aggregate_rows(group: dict) -> list[dict]:
    return [{"method": m, "n_runs": group["n_runs"].get(m),
             **{k: _ci(group["metrics"][m][k]) for k in METRICS}}
            for m in group["methods"] if m in group["metrics"]]


def _file_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _newest_run_file(records: list) -> float:
    return max((p.stat().st_mtime for r in records for p in r.path.glob("*.*")
                if p.name in ("config.json", "curve.csv", "summary.json")), default=0.0)


def _figures(suite: str, records: list, aggregates: dict, figures_dir: Path | None,
             stored_ok: bool, score: str = "Normalised score") -> list[dict]:
    """Figures as data URIs: the SVGs the `figures` step wrote when they are newer than every
    run file and the aggregates were stored ones (stored_ok), else drawn now."""
    out, drawn = [], suite_figures(suite, records, aggregates)
    newest = _newest_run_file(records)
    floors = [FLOORS[m] for m in FLOORS if any(r.config["method"] == m for r in records)]
    for name, fig in drawn.items():
        stored = figures_dir / f"{name}.svg" if figures_dir is not None else None
        fresh = stored if (stored_ok and stored is not None and stored.is_file()
                           and stored.stat().st_mtime >= newest) else None
        uri = _file_uri(fresh) if fresh is not None else figure_data_uri(fig)
        close(fig)
        caption = FIGURE_CAPTIONS.get(name, "").format(score=score, score_lc=score.lower())
        if floors and name == "curves":
            caption += (f" Dashed black: {', '.join(floors)}, TD3 trained online only from an "
                        "empty buffer with the same budget and evaluation — the level the "
                        "offline data should lift a method above (docs/methods/td3-scratch.md).")
        elif floors and name in ("aggregates", "profiles", "improvement"):
            caption += f" {', '.join(floors)} is left out (a reference, not a compared method)."
        out.append({"name": name, "uri": uri, "caption": caption})
    return out


def _load_recipes(dataset_stats: str | os.PathLike | Mapping | None) -> dict[str, dict]:
    """{dataset: the recipe record of its build} (a stand-in's policy), from the files
    `odtbench dataset build --stats` writes; {} for a mapping of bare stats."""
    if dataset_stats is None or isinstance(dataset_stats, Mapping):
        return {}
    path = Path(dataset_stats)
    out = {}
    for f in sorted(path.rglob("*.json")) if path.is_dir() else [path] if path.is_file() else []:
        try:
            obj = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:  # not JSON or not UTF-8: _load_stats reports it
            continue
        if isinstance(obj, dict) and isinstance(obj.get("recipe"), dict):
            name = str(obj.get("task", "")).split("/", 1)[-1] if obj.get("task") else f.stem
            out[name] = obj["recipe"]
    return out


def _load_stats(dataset_stats: str | os.PathLike | Mapping | None) -> dict[str, dict]:
    """{dataset: stats} from a mapping, one JSON file (keyed by dataset) or a directory of
    `<dataset>.json` files as written by `odtbench dataset build --stats`. Stats that do not
    apply (None: a success-rate task's data have no normalised score) are left out."""
    return {d: {k: v for k, v in st.items() if v is not None}
            for d, st in _load_stats_raw(dataset_stats).items()}


def _load_stats_raw(dataset_stats: str | os.PathLike | Mapping | None) -> dict[str, dict]:
    if dataset_stats is None:
        return {}
    if isinstance(dataset_stats, Mapping):
        return {str(k): dict(v) for k, v in dataset_stats.items()}
    path = Path(dataset_stats)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path] if path.is_file() else []
    out = {}
    for f in files:
        try:
            obj = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as exc:  # not JSON, or not UTF-8
            why = "UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"valid JSON ({exc})"
            raise OdtbenchError(f"{f}: dataset stats are not {why}; rebuild them "
                                "with `odtbench dataset build --stats`") from None
        if not isinstance(obj, dict):
            continue
        name = str(obj.get("task", "")).split("/", 1)[-1] if obj.get("task") else f.stem
        out[name] = obj.get("stats", obj) if isinstance(obj.get("stats", obj), dict) else obj
    return out


def _common(dicts: list[Mapping]) -> dict[str, Any]:
    """Keys whose value is the same in every dict; others map to "varies"."""
    keys = sorted(set().union(*dicts)) if dicts else []
    out = {}
    for k in keys:
        vals = {json.dumps(d.get(k), sort_keys=True, default=str) for d in dicts}
        out[k] = dicts[0].get(k) if len(vals) == 1 else "varies"
    return out


def _protocol(suite: str, scores: pd.DataFrame, records: list, stats: dict, aggregates: dict,
              expected_n: int | None, recipes: dict | None = None) -> dict:
    done = scores[scores["status"].isin(["complete", "diverged"])]
    provs = [r.config.get("provenance", {}) for r in records]
    hps = [r.config.get("hyperparameters", {}) for r in records]
    by_method = {}
    for m in scores["method"].unique():
        h = [r.config.get("hyperparameters", {}) for r in records if r.config["method"] == m]
        by_method[m] = _common(h) if h else {}
    datasets = []
    for d, g in scores[scores["status"] != "missing"].groupby("dataset", sort=False):
        first = g.iloc[0]
        datasets.append({"dataset": d, "id": first["dataset_id"], "source": first["dataset_source"],
                         "checksum": first["dataset_checksum"], "env_id": first["env_id"],
                         "paper_dataset": first["paper_dataset"],
                         "reference": f"[{_num(first['reference_min'])}, {_num(first['reference_max'])}] "
                                      f"— {first['reference_source']}",
                         "stats": stats.get(d, {}),
                         "policy": ((recipes or {}).get(d) or {}).get("policy")})
    common_hp = _common(hps)
    versions = {k: sorted({str(p.get(k)) for p in provs if p.get(k) is not None})
                for k in ("odtbench_version", "python", "torch", "numpy", "gymnasium", "mujoco",
                          "minari")}
    hardware = {k: sorted({str(p.get(k)) for p in provs if p.get(k) is not None})
                for k in ("cpu", "cpu_count", "device", "hostname", "platform")}
    return {
        "scales": sorted(done["scale"].dropna().unique()),
        "seeds": sorted(int(s) for s in scores["seed"].unique()),
        "n_runs": len(scores), "n_expected": expected_n,
        "budget": {"online_min": done["online_transitions"].min() if len(done) else None,
                   "online_max": done["online_transitions"].max() if len(done) else None,
                   "configured": sorted({int(h["online_budget"]) for h in hps
                                         if isinstance(h.get("online_budget"), (int, float))}),
                   "grad_min": done["gradient_steps"].min() if len(done) else None,
                   "grad_max": done["gradient_steps"].max() if len(done) else None},
        "eval": {k: common_hp[k] for k in EVAL_KEYS if k in common_hp},
        "hyperparameters": by_method,
        "datasets": datasets,
        "git_commits": sorted({str(p.get("git_commit")) for p in provs}),
        "git_dirty": any(p.get("git_dirty") for p in provs),
        "versions": versions, "hardware": hardware,
        "reps": aggregates.get("reps"), "bootstrap_seed": aggregates.get("seed"),
        "ci": aggregates.get("ci"), "paper_table": PAPER_TABLE.get(paper_domain(suite)),
        "report_odtbench": odtbench.__version__,
    }


def _run_details(records: list, scores: pd.DataFrame) -> list[dict]:
    out = []
    for rec in records:
        c = rec.curve
        curve = [] if c is None else c[["phase", "iteration", "online_transitions",
                                         "gradient_steps", "wall_time_s", "return_mean",
                                         "score_mean", "score_std"]].to_dict("records")
        out.append({"anchor": _anchor(rec.config["dataset"], rec.config["method"], rec.config["seed"]),
                    "dataset": rec.config["dataset"], "method": rec.config["method"],
                    "seed": rec.config["seed"], "status": rec.status,
                    "summary": rec.summary, "hyperparameters": rec.config.get("hyperparameters", {}),
                    "sources": rec.config.get("hyperparameter_sources", {}),
                    "path": str(rec.path), "curve": curve})
    return out


def _records(df: pd.DataFrame) -> list[dict]:
    """DataFrame rows as dicts with NaN / <NA> turned into None (templates test for None)."""
    return [{k: (None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v)
             for k, v in row.items()} for row in df.to_dict("records")]


def _anchor(dataset: str, method: str, seed: int) -> str:
    return "run-" + "".join(ch if ch.isalnum() else "_" for ch in f"{dataset}-{method}-{seed}")


def _toy_section(records: list, reps: int, seed: int) -> dict | None:
    from odtbench.analysis import toy

    probes = toy.toy_probes(records)
    if not probes:
        return None
    figs = []
    for key, fn in (("a", toy.fig_reward), ("b", toy.fig_actions), ("c", toy.fig_critic),
                    ("d", toy.fig_policy)):
        fig = fn(probes)
        # (b) scatters thousands of points: PNG stays small where SVG would not.
        figs.append({"key": key, "uri": figure_data_uri(fig, "png" if key == "b" else "svg")})
        close(fig)
    final = toy.final_rewards(records)
    noises = {r.config.get("hyperparameters", {}).get("expl_noise") for r in records}
    return {"figures": figs, "table": toy.final_table(final, reps=reps, seed=seed),
            "noise": f"{noises.pop():g}" if len(noises) == 1 and None not in noises else None,
            "claims": toy.claim_check(final), "n_seeds": {m: len(r) for m, r in probes.items()}}


def render_report(suite: str, runs_root: str | os.PathLike = "results/runs",
                  out_html: str | os.PathLike | None = None, *,
                  aggregates_dir: str | os.PathLike | None = None, reps: int | None = None,
                  seed: int = 0, allow_mixed: bool = False,
                  expected: Iterable[tuple[str, str, int]] | None = None,
                  dataset_stats: str | os.PathLike | Mapping | None = None,
                  benchmarks_root: str | os.PathLike | None = "results/benchmarks",
                  figures_dir: str | os.PathLike | None = None, title: str | None = None,
                  include_figures: bool = True) -> Path:
    """Render reports/<suite>.html from the runs under runs_root.

    Aggregates are read from aggregates_dir/aggregates.json when it describes exactly these
    runs (same scores table; same reps if reps is given), otherwise recomputed with `reps`
    (default 2000). Figures come from figures_dir/*.svg when those are newer than the runs
    and the aggregates were reused, else are drawn now;
    include_figures=False leaves out the suite figures (a quick text-only preview; the toy's
    Figure 2 panels are always drawn).
    """
    out_html = Path(out_html) if out_html is not None else Path("reports") / f"{suite}.html"
    expected = list(expected) if expected is not None else None
    records, scores = suite_scores(runs_root, suite, expected=expected, allow_mixed=allow_mixed)
    agg = None
    if aggregates_dir is not None:
        agg = load_aggregates(Path(aggregates_dir) / "aggregates.json", scores, reps)
    agg_source = "stored" if agg is not None else "computed"
    if agg is None:
        agg = compute_aggregates(scores, reps=reps or DEFAULT_REPS, seed=seed)
        agg["scores_sha256"] = scores_digest(scores)
    t = suite_tables(suite, scores)
    bench = read_benchmarks(benchmarks_root, suite)
    status_counts = scores["status"].value_counts().reindex(
        ["complete", "diverged", "incomplete", "missing"], fill_value=0).to_dict()
    groups = [{"name": "All tasks" if k == "all" else k.split(":", 1)[1], "key": k,
               "tasks": g["tasks"], "notes": g["notes"], "rows": _aggregate_rows(g),
               "poi": [{"other": m, **v} for m, v in g["probability_of_improvement"].items()]}
              for k, g in agg["groups"].items()]
    success = score_kind(records) == "success_rate"
    ctx = {
        "title": title or f"odtbench report — {suite}",
        "suite": suite,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "banner": comparability_notes(scores, [r.config.get("hyperparameters", {}) for r in records],
                                      _load_recipes(dataset_stats)),
        "success_rate": success,
        "score_label": "success rate" if success else "normalised score",
        "status_counts": status_counts,
        "groups": groups, "metric_labels": [METRIC_LABELS[k] for k in METRICS], "metrics": METRICS,
        "ours": OURS, "agg_source": agg_source,
        "figures": _figures(suite, records, agg, Path(figures_dir) if figures_dir else None,
                            agg_source == "stored", "Success rate (%)" if success else
                            "Normalised score") if include_figures else [],
        "table_final": tables.to_html(t["final"]),
        "table_before_after": tables.to_html(t["before_after"]),
        "side_by_side": _records(t["side_by_side"]),
        "runs": [{**r, "anchor": _anchor(r["dataset"], r["method"], r["seed"])}
                 for r in _records(scores)],
        "runtime": _records(runtime_by_method(bench, scores)),
        "n_benchmarks": len(bench),
        "protocol": _protocol(suite, scores, records, _load_stats(dataset_stats), agg,
                              len(expected) if expected is not None else None,
                              _load_recipes(dataset_stats)),
        "details": _run_details(records, scores),
        "toy": _toy_section(records, reps or DEFAULT_REPS, seed),
    }
    html = _env().get_template("report.html.j2").render(**ctx)
    return atomic_write_text(out_html, html)


def ablation_banner(table: pd.DataFrame, hyperparameters: list[dict],
                    recipes: Mapping[str, dict] | None = None) -> list[str]:
    """The suite reports' banner (comparability_notes) for the ablations' runs, per suite:
    the figures span suites, whose reasons differ (stand-in data, budgets)."""
    notes: list[str] = []
    done = table[table["status"].isin(["complete", "diverged", "incomplete"])]
    for suite, g in done.groupby("suite", sort=True):
        for note in comparability_notes(g, hyperparameters, dict(recipes or {})):
            line = f"{suite}: {note}"
            if line not in notes:
                notes.append(line)
    pending = sorted(set(table.loc[table["status"] == "pending", "method"]))
    if pending:
        notes.append(f"Methods not registered in this build, so their lines have no runs: "
                     f"{', '.join(pending)}.")
    return notes


def render_ablations(plan: Mapping[str, Any], runs_root: str | os.PathLike,
                     out_html: str | os.PathLike = "reports/ablations.html", *,
                     dataset_stats: str | os.PathLike | None = None,
                     title: str | None = None) -> Path:
    """Render reports/ablations.html: each of the plan's figures (odtbench.workflow.plan.
    ablation_plan) drawn from the runs under runs_root (results/runs/<scale>), with its lines'
    scores, the banner of the suite reports and the protocol."""
    from odtbench.analysis import ablations as ab

    records = ab.load_plan_records(plan, runs_root)
    seeds = [int(s) for s in plan["seeds"]]
    figures, tables_ = [], []
    for fig in plan["figures"]:
        table = ab.figure_table(fig, seeds, records, runs_root)
        tables_.append(table)
        drawn = ab.plot_figure(fig, seeds, records)
        uri = figure_data_uri(drawn)
        close(drawn)
        summary = ab.line_summary(table)
        lines = []
        for row in _records(summary):
            panel = fig["panels"][int(row["panel"])]
            lines.append({**row, "suite": panel["suite"], "y": panel["y"],
                          "x_max": panel.get("x_max")})
        figures.append({"figure": fig["figure"], "title": fig["title"], "study": fig.get("study"),
                        "caption": fig.get("caption"), "study_panels": fig.get("study_panels") or [],
                        "uri": uri, "lines": lines})
    every = (pd.concat(tables_, ignore_index=True) if tables_
             else pd.DataFrame(columns=ab.TABLE_COLUMNS))
    # a run shared by two figures (TD3+ODT in Figs. 9 and 11) counts once
    runs = every.drop_duplicates(["suite", "dataset", "run_method", "seed"])
    status_counts = runs["status"].value_counts().reindex(
        ["complete", "diverged", "incomplete", "missing", "pending"], fill_value=0).to_dict()
    recipes: dict[str, dict] = {}
    for suite in sorted(set(runs["suite"].dropna())):
        if dataset_stats is not None:
            recipes.update(_load_recipes(Path(dataset_stats) / suite))
    provs = [r.config.get("provenance", {}) for r in records.values()]
    sources = runs[runs["dataset_source"].notna()].drop_duplicates(["suite", "dataset"])
    ctx = {
        "title": title or "odtbench report — the study's ablations",
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "odtbench_version": odtbench.__version__,
        "scale": plan["scale"], "seeds": seeds, "n_runs": len(runs),
        "status_counts": status_counts,
        "banner": ablation_banner(runs, [r.config.get("hyperparameters", {})
                                         for r in records.values()], recipes),
        "figures": figures,
        "datasets": [{"task": f"{r['suite']}/{r['dataset']}", "source": r["dataset_source"]}
                     for r in _records(sources)],
        "git_commits": sorted({str(p.get("git_commit")) for p in provs}),
        "git_dirty": any(p.get("git_dirty") for p in provs),
    }
    html = _env().get_template("ablations.html.j2").render(**ctx)
    return atomic_write_text(out_html, html)
