"""The tidy scores table of a suite (`results/<suite>/scores.csv`), built only from run files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from odtbench.analysis.common import sort_methods
from odtbench.analysis.reference import task_info
from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import RunRecord, atomic_write_text, iter_runs, validate_run

SCORE_COLUMNS = [
    "suite", "dataset", "method", "seed", "scale", "status", "diverged_reason",
    "domain", "quality", "paper_dataset", "env_id",
    "before_score", "final_score", "best_score", "increase",
    "online_transitions", "gradient_steps", "wall_time_s", "score_kind",
    "dataset_id", "dataset_source", "dataset_checksum",
    "reference_min", "reference_max", "reference_source", "git_commit", "run_dir",
]


def score_row(rec: RunRecord, runs_root: Path) -> dict:
    """One run's row of the scores table (SCORE_COLUMNS)."""
    cfg, s = rec.config, rec.summary or {}
    ds, ref = (s or cfg)["dataset_info"], (s or cfg)["reference"]
    info = task_info(cfg["suite"], cfg["dataset"])
    before, final = s.get("before_score"), s.get("final_score")
    try:
        rel = os.path.relpath(rec.path, runs_root)
    except ValueError:  # other drive (Windows)
        rel = str(rec.path)
    return {
        "suite": cfg["suite"], "dataset": cfg["dataset"], "method": cfg["method"],
        "seed": int(cfg["seed"]), "scale": cfg["scale"], "status": rec.status,
        "diverged_reason": s.get("diverged_reason"),
        "domain": info["domain"], "quality": info["quality"],
        "paper_dataset": info["paper_dataset"], "env_id": info["env_id"],
        "before_score": before, "final_score": final, "best_score": s.get("best_score"),
        "increase": None if before is None or final is None else final - before,
        "online_transitions": s.get("online_transitions"),
        "gradient_steps": s.get("gradient_steps"), "wall_time_s": s.get("wall_time_s"),
        "score_kind": s.get("score_kind"),
        "dataset_id": ds["id"], "dataset_source": ds["source"], "dataset_checksum": ds["checksum"],
        "reference_min": ref["min"], "reference_max": ref["max"], "reference_source": ref["source"],
        "git_commit": cfg.get("provenance", {}).get("git_commit"),
        "run_dir": rel,
    }


def check_mixing(scores: pd.DataFrame) -> None:
    """Refuse a table that mixes scales, dataset sources or score kinds (one-line error)."""
    done = scores[scores["status"] != "missing"]
    fix = "aggregate them separately or pass allow_mixed=True (odtbench aggregate --allow-mixed)"
    scales = sorted(done["scale"].dropna().unique())
    if len(scales) > 1:
        raise OdtbenchError(f"runs mix scales {', '.join(scales)}; {fix}")
    kinds = sorted({s.split(":", 1)[0] for s in done["dataset_source"].dropna()})
    if len(kinds) > 1:
        raise OdtbenchError(f"runs mix dataset sources ({', '.join(kinds)}); {fix}")
    for dataset, g in done.groupby("dataset"):
        versions = g[["dataset_source", "dataset_checksum"]].drop_duplicates()
        if len(versions) > 1:
            raise OdtbenchError(f"runs on dataset {dataset!r} used {len(versions)} different "
                                f"dataset versions (source/checksum); {fix}")
    score_kinds = sorted(done["score_kind"].dropna().unique())
    if len(score_kinds) > 1:
        raise OdtbenchError(f"runs mix score kinds {', '.join(score_kinds)}; {fix}")


def build_scores(runs_root: str | os.PathLike, suite: str, *,
                 expected: Iterable[tuple[str, str, int]] | None = None,
                 allow_mixed: bool = False,
                 records: Iterable[RunRecord] | None = None) -> pd.DataFrame:
    """One row per run of `suite` under runs_root, validated against the file contract.

    `expected` (dataset, method, seed) triples without a run directory appear with status
    "missing"; runs without summary.json with status "incomplete"; nothing is dropped.
    `records`: the already validated runs (saves reading them twice).
    """
    runs_root = Path(runs_root)
    rows = []
    if records is None:
        records = [validate_run(p) for p in iter_runs(runs_root, suite)]
    for rec in records:
        if rec.config["suite"] != suite:
            raise OdtbenchError(f"{rec.path / 'config.json'}: field 'suite' is "
                                f"{rec.config['suite']!r} but the run lies under suite {suite!r}")
        rows.append(score_row(rec, runs_root))
    have = {(r["dataset"], r["method"], r["seed"]) for r in rows}
    for dataset, method, seed in expected or ():
        if (dataset, method, int(seed)) not in have:
            info = task_info(suite, dataset)
            rows.append({"suite": suite, "dataset": dataset, "method": method, "seed": int(seed),
                         "status": "missing", "domain": info["domain"],
                         "quality": info["quality"], "paper_dataset": info["paper_dataset"],
                         "env_id": info["env_id"]})
            have.add((dataset, method, int(seed)))
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    if not allow_mixed:
        check_mixing(df)
    return _order(df)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(sort_methods(df["method"].unique()))}
    df = df.assign(_m=df["method"].map(order))
    df = df.sort_values(["dataset", "_m", "seed"], kind="stable").drop(columns="_m")
    for col in ("before_score", "final_score", "best_score", "increase", "wall_time_s",
                "reference_min", "reference_max"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("online_transitions", "gradient_steps"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["seed"] = df["seed"].astype(int)
    return df.reset_index(drop=True)


def scores_csv_text(scores: pd.DataFrame) -> str:
    return scores.to_csv(index=False, lineterminator="\n")


def write_scores(scores: pd.DataFrame, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, scores_csv_text(scores))


def cell_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method): mean final, increase, before and best over runs with a final
    score, with the number of such runs (n), how many of them diverged (n_diverged: they count
    with the scores they reached, as in the study's tables) and of runs planned (n_runs)."""
    ok = scores[scores["final_score"].notna()]
    g = ok.groupby(["dataset", "method"])
    out = pd.DataFrame({
        "final": g["final_score"].mean(), "final_std": g["final_score"].std(ddof=0),
        "increase": g["increase"].mean(), "before": g["before_score"].mean(),
        "best": g["best_score"].mean(), "n": g.size(),
        "n_diverged": g["status"].agg(lambda s: int((s == "diverged").sum())),
    })
    n_runs = scores.groupby(["dataset", "method"]).size().rename("n_runs")
    out = out.join(n_runs, how="right").reset_index()
    out["n"] = out["n"].fillna(0).astype(int)
    out["n_diverged"] = out["n_diverged"].fillna(0).astype(int)
    return out
