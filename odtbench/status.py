"""`odtbench status`: how far the workflow's planned runs are, from their files alone.

The planned runs come from workflows/config.yaml, expanded as the Snakefile does
(`odtbench.workflow_plan`). Each run's state comes from its run directory and logs, never
from a database:

    complete / diverged   summary.json exists (written last by a run) and says so
    running               no summary; log.txt or the job log changed in the last STALE_S s
                          (a live run logs a progress line every 30 s: odtbench/progress.py)
                          and, for a Snakemake job, a Snakemake holds the workflow's lock
    failed                no summary, logs older than that: the job stopped (an error, a
                          kill); the last line of its job log says why. Re-running the
                          workflow resumes it from its checkpoint.
    not started           no log.txt yet

Progress and the last score are the latest `progress` and `eval` lines of log.txt. The
workflow ETA adds each run's remaining time and spreads it over the jobs that run at once:
a running run's own ETA (online phase), else the wall time of finished runs of the same
dataset and method (else of any method), else the runtime the config declares to the
scheduler (an upper bound).
"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from odtbench import workflow_plan as wp
from odtbench.progress import LINE_PREFIX, format_duration

STALE_S = 300.0  # no log line for this long: the run is no longer running
_PROGRESS = re.compile(
    rf"^(?P<ts>\S+ \S+) {LINE_PREFIX} (?P<phase>\S+) (?P<done>\d+)/(?P<total>\d+) (?P<unit>\S+) "
    r"rate=(?P<rate>\S+)/s eta=(?P<eta>\S+?)s? score=(?P<score>\S+)( steps=\d+)?$")
# the last line of a job log that ended without a summary (an error, an interrupt)
_ENDED = re.compile(r"^odtbench: (error|interrupted|terminated)|^\w*(Error|Exception)\b|Killed")
_EVAL = re.compile(r"^(?P<ts>\S+ \S+) eval (?P<phase>\S+) .*score=(?P<score>-?[\d.]+|nan|inf)")


@dataclass
class RunStatus:
    """The state of one planned run, as its files show it."""

    suite: str
    dataset: str
    method: str
    seed: int
    state: str = "not started"
    phase: str = ""
    done: int = 0
    total: int = 0
    unit: str = ""
    score: float | None = None
    eta_s: float | None = None  # the run's own ETA for its current phase (running, online)
    detail: str = ""
    remaining_s: float | None = None  # for the workflow ETA
    estimate: str = ""  # where remaining_s comes from
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> str:
        if self.state in ("complete", "diverged"):
            return self.detail
        if not self.total:
            return self.detail if self.state == "running" else ""
        return f"{self.phase} {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"


def _snakemake_active(root: Path) -> bool:
    """Whether a Snakemake holds this workflow's lock (.snakemake/locks/, removed on exit)."""
    locks = root / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def _timestamp(ts: str) -> float | None:
    try:
        return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _read_log(rs: RunStatus, log_txt: Path, now: float) -> None:
    """Fill phase, progress, score and the run's ETA from the latest lines of log.txt."""
    prog = ev = None
    for line in log_txt.read_text(errors="replace").splitlines():
        if (m := _PROGRESS.match(line)) is not None:
            prog = m
        elif (m := _EVAL.match(line)) is not None:
            ev = m
    if ev is not None:
        rs.score = float(ev["score"])
    if prog is not None:
        rs.phase, rs.unit = prog["phase"], prog["unit"]
        rs.done, rs.total = int(prog["done"]), int(prog["total"])
        if prog["eta"] != "?":
            t = _timestamp(prog["ts"])
            rs.eta_s = max(float(prog["eta"]) - (now - t if t else 0.0), 0.0)


def _benchmark_s(path: Path) -> float | None:
    """The wall seconds of a job from its Snakemake benchmark file (start-up included)."""
    try:
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        return float(row["s"])
    except (OSError, StopIteration, KeyError, ValueError):
        return None


def _peer_times(root: Path, scale: str, suite: str, dataset: str,
                method: str) -> tuple[float | None, float | None]:
    """Mean wall time of the finished runs of (suite, dataset, method), whole job (the
    Snakemake benchmark file, else the run's own wall time) and online phase only (from
    curve.csv's cumulative wall_time_s); "*" for any method."""
    whole, online = [], []
    runs_root = root / "results/runs" / scale
    for summ in sorted((runs_root / suite / dataset).glob(f"{method}/seed*/summary.json")):
        try:
            s = json.loads(summ.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not JSON, or not UTF-8
            continue
        rel = summ.parent.relative_to(runs_root)
        bench = _benchmark_s(root / "results/benchmarks" / scale / rel.parent / f"{rel.name}.tsv")
        if bench is not None or s.get("wall_time_s"):
            whole.append(bench if bench is not None else float(s["wall_time_s"]))
        try:
            with open(summ.parent / "curve.csv") as fh:
                rows = list(csv.DictReader(fh))
            pre = [float(r["wall_time_s"]) for r in rows if r["phase"] == "pretrain"]
            if pre and rows:
                online.append(float(rows[-1]["wall_time_s"]) - pre[-1])
        except (OSError, KeyError, ValueError):
            pass
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return mean(whole), mean(online)


def run_status(config: dict, scale: str, suite: str, dataset: str, method: str, seed: int,
               root: Path = Path("."), now: float | None = None) -> RunStatus:
    """The state of one planned run (see the module docstring)."""
    now = time.time() if now is None else now
    keys = {"scale": scale, "suite": suite, "dataset": dataset, "method": method, "seed": seed}
    rd = root / wp.RUN_DIR.format(**keys)
    job_log = root / wp.JOB_LOG.format(**keys)
    rs = RunStatus(suite, dataset, method, seed)
    summary, log_txt = rd / "summary.json", rd / "log.txt"
    if summary.is_file():
        try:
            s = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not JSON, or not UTF-8: a damaged record
            s = None
        if not isinstance(s, dict):
            rs.state = "failed"
            rs.detail = f"{summary} is not a UTF-8 JSON object; delete {rd} and re-run the run"
            return rs
        rs.state = "diverged" if s.get("status") == "diverged" else "complete"
        rs.score = s.get("final_score")
        wall = s.get("wall_time_s")
        rs.detail = (s.get("diverged_reason") or "") if rs.state == "diverged" else (
            f"{s.get('online_transitions', 0)} transitions" + (f" in {format_duration(wall)}" if wall else ""))
        rs.remaining_s, rs.estimate = 0.0, "done"
        return rs
    if not log_txt.is_file():
        if job_log.is_file() and (now - job_log.stat().st_mtime >= STALE_S
                                  or not _snakemake_active(root)):
            rs.state, rs.detail = "failed", _last_line(job_log) or "stopped before it began"
        elif job_log.is_file():
            rs.state, rs.detail = "running", "starting"
    else:
        _read_log(rs, log_txt, now)
        mtimes = [p.stat().st_mtime for p in (log_txt, job_log) if p.is_file()]
        last = _last_line(job_log) if job_log.is_file() else ""
        # a job of Snakemake's can only be running while a Snakemake holds the workflow's lock
        orphan = job_log.is_file() and not _snakemake_active(root)
        if now - max(mtimes) < STALE_S and not _ENDED.search(last) and not orphan:
            rs.state = "running"
        else:
            rs.state = "failed"
            rs.detail = last if last and LINE_PREFIX not in last else \
                "stopped; re-running resumes it from its checkpoint"
    # remaining time, for the workflow ETA
    whole, online = _peer_times(root, scale, suite, dataset, method)
    if whole is None:  # no finished run of this method yet: those of the others
        whole, online = _peer_times(root, scale, suite, dataset, "*")
    frac_left = 1.0 - rs.done / rs.total if rs.total else 1.0
    if rs.state == "running" and rs.phase == "online" and rs.eta_s is not None:
        rs.remaining_s, rs.estimate = rs.eta_s, "its rate"
    elif rs.phase == "online" and online is not None:
        rs.remaining_s, rs.estimate = online * frac_left, "finished runs"
    elif whole is not None:
        pre_left = (rs.eta_s or 0.0) if rs.state == "running" and rs.phase == "pretraining" else None
        if pre_left is not None and online is not None:
            rs.remaining_s = pre_left + online
        else:
            rs.remaining_s = whole * (frac_left if rs.phase == "online" else 1.0)
        rs.estimate = "finished runs"
    else:
        rs.remaining_s = 60.0 * float(wp.suite_config(config, scale, suite).get("runtime", 60))
        rs.estimate = "declared runtime"
    return rs


def workflow_status(config: dict, scale: str, suites: list[str], root: Path = Path("."),
                    now: float | None = None) -> list[RunStatus]:
    out = []
    for suite in suites:
        p = wp.plan(config, scale, suite)
        for dataset in p["datasets"]:
            for method in p["methods"]:
                for seed in p["seeds"]:
                    out.append(run_status(config, scale, suite, dataset, method, seed, root, now))
    return out


def workflow_eta(runs: list[RunStatus], jobs: int) -> float:
    """Seconds until every planned run is done with `jobs` runs at a time: the remaining
    work spread over the jobs, but never less than the longest single run left."""
    left = [r.remaining_s or 0.0 for r in runs]
    return max(sum(left) / max(jobs, 1), max(left, default=0.0))


def format_status(runs: list[RunStatus], scale: str, jobs: int | None) -> str:
    states = ("complete", "running", "diverged", "failed", "not started")
    counts = {s: sum(r.state == s for r in runs) for s in states}
    header = ("suite", "dataset", "method", "seed", "state", "progress", "score", "eta")
    rows = [header] + [
        (r.suite, r.dataset, r.method, str(r.seed), r.state, r.progress,
         "" if r.score is None else f"{r.score:.2f}",
         format_duration(r.eta_s) if r.state == "running" and r.eta_s is not None else "")
        for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in runs:
        if r.state in ("failed", "diverged") and r.detail:
            lines.append(f"{r.state}: {r.suite}/{r.dataset} {r.method} seed {r.seed}: {r.detail}")
    n_jobs = jobs or max(counts["running"], 1)
    summary = (f"{len(runs)} planned runs at scale {scale}: "
               + ", ".join(f"{counts[s]} {s}" for s in states if counts[s]))
    if counts["complete"] + counts["diverged"] == len(runs):
        lines += [summary, "workflow: every run has ended"]
        return "\n".join(lines)
    sources: dict[str, int] = {}
    for r in runs:
        if r.remaining_s:
            sources[r.estimate] = sources.get(r.estimate, 0) + 1
    how = ", ".join(f"{n} from {k}" for k, n in sources.items())
    lines += [summary,
              f"workflow ETA: {format_duration(workflow_eta(runs, n_jobs))} for the runs at "
              f"{n_jobs} at a time (remaining times: {how}; analysis and report add seconds)"]
    return "\n".join(lines)


__all__ = ["RunStatus", "run_status", "workflow_status", "workflow_eta", "format_status", "STALE_S"]
