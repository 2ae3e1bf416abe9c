"""`odtbench status`: how far the workflow's planned runs are, from their files alone.

The planned runs come from workflows/config.yaml, expanded as the Snakefile does
(`odtbench.workflow.plan`). Each run's state comes from its run directory and logs, never
from a database:

    complete / diverged   summary.json exists (written last by a run) and says so
    running               no summary; log.txt or the job log changed in the last STALE_S s
                          (a live run logs a progress line every 30 s: odtbench/runfiles/progress.py)
                          and, for a Snakemake job, a Snakemake holds the workflow's lock
    interrupted           no summary; the run was stopped by Ctrl-C or SIGTERM: its log.txt
                          ends with an `interrupted` line (odtbench.runcore), or its job log
                          with `odtbench: interrupted`. Re-running resumes it.
    failed                no summary, logs older than that, the job log ending in an error
                          (its last line, shown). Re-running the workflow resumes it from its
                          checkpoint.
    stopped               no summary, logs older than that, no error in them: killed from
                          outside (SIGKILL, out of memory, the session or machine ended).
                          Re-running resumes it from its checkpoint.
    not started           no log.txt yet

Progress and the last score are the latest `progress` and `eval` lines of log.txt.

Each unfinished run's remaining time comes from the first of these that knows it, and the
table says which (`eta from`):
1. `its rate`: the run's own progress lines (its rate over its recent work, evaluations
   included), for the phase it is in; in pretraining, plus the online phase from 2-4;
2. `finished runs`: the mean time of this scale's finished runs of the same dataset and method;
3. `timing table`: the measured times committed in odtbench/reference/run_times.csv
   (scale, suite, dataset, method; written by benchmarks/run_times.py from a workflow's
   Snakemake benchmark files and run directories);
4. `other methods`: finished runs of other methods on the same dataset;
5. `declared ceiling`: the runtime the config declares to the scheduler, an upper bound.
The workflow ETA spreads the remaining times over the jobs that run at once.
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

from odtbench.runfiles.progress import LINE_PREFIX, format_duration
from odtbench.workflow import plan as wp

STALE_S = 300.0  # no log line for this long: the run is no longer running
TIMING_TABLE = Path(__file__).resolve().parents[1] / "reference" / "run_times.csv"
TIMING_COLUMNS = ("scale", "suite", "dataset", "method", "runs", "job_s", "online_s",
                  "measured", "machine")
_PROGRESS = re.compile(
    rf"^(?P<ts>\S+ \S+) {LINE_PREFIX} (?P<phase>\S+) (?P<done>\d+)/(?P<total>\d+) (?P<unit>\S+) "
    r"rate=(?P<rate>\S+)/s eta=(?P<eta>\S+?)s? score=(?P<score>\S+)( steps=\d+)?$")
# the last line of a job log that ended without a summary (an error, an interrupt)
_ENDED = re.compile(r"^odtbench: (error|interrupted|terminated)|^\w*(Error|Exception)\b|Killed")
_INTERRUPTED_JOB = re.compile(r"^odtbench: (interrupted|terminated)")
_EVAL = re.compile(r"^(?P<ts>\S+ \S+) eval (?P<phase>\S+) .*score=(?P<score>-?[\d.]+|nan|inf)")
# written by odtbench.runcore.core (INTERRUPTED_PREFIX) when a run stops on SIGINT / SIGTERM
_INTERRUPTED = re.compile(r"^(?P<ts>\S+ \S+) interrupted\b ?(?P<rest>.*)$")
_RESUMED = re.compile(r"^(?P<ts>\S+ \S+) resumed from checkpoint")
STATES = ("complete", "running", "interrupted", "stopped", "diverged", "failed", "not started")
_KILLED = ("killed without an error in its log (SIGKILL, out of memory, the session ended); "
           "re-running resumes it from its checkpoint")


@dataclass
class Timing:
    """Measured seconds of one run: the whole job, and its online phase alone (None where
    not measured)."""

    job_s: float | None
    online_s: float | None
    source: str


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
    rate: float | None = None  # units per second of its last progress line
    phase_left_s: float | None = None  # its last line's ETA for the phase, as of that line
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


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read_log(rs: RunStatus, log_txt: Path, now: float) -> float | None:
    """Fill phase, progress, score and the run's ETA from the latest lines of log.txt; returns
    the time of its `interrupted` line when that is the last thing the run did, else None."""
    prog = ev = None
    interrupted: float | None = None
    for line in log_txt.read_text(errors="replace").splitlines():
        if (m := _PROGRESS.match(line)) is not None:
            prog = m
        elif (m := _EVAL.match(line)) is not None:
            ev = m
        elif (m := _INTERRUPTED.match(line)) is not None:
            interrupted = _timestamp(m["ts"]) or 0.0
            rs.detail = m["rest"]
            continue
        elif _RESUMED.match(line) is None:
            continue
        interrupted = None  # it went on after the interrupt (resumed, progressed)
    if ev is not None:
        rs.score = float(ev["score"])
    if prog is not None:
        rs.phase, rs.unit = prog["phase"], prog["unit"]
        rs.done, rs.total = int(prog["done"]), int(prog["total"])
        rs.rate = _float(prog["rate"])
        if prog["eta"] != "?":
            t = _timestamp(prog["ts"])
            rs.phase_left_s = float(prog["eta"])
            rs.eta_s = max(rs.phase_left_s - (now - t if t else 0.0), 0.0)
    return interrupted


def _benchmark_s(path: Path) -> float | None:
    """The wall seconds of a job from its Snakemake benchmark file (start-up included)."""
    try:
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        return float(row["s"])
    except (OSError, StopIteration, KeyError, ValueError, UnicodeDecodeError):
        return None


def online_seconds(run_dir: Path) -> float | None:
    """In-run seconds of the online phase of a finished run: curve.csv's cumulative
    wall_time_s at its last row minus at its last pretraining row."""
    try:
        with open(run_dir / "curve.csv") as fh:
            rows = list(csv.DictReader(fh))
        pre = [float(r["wall_time_s"]) for r in rows if r["phase"] == "pretrain"]
        return float(rows[-1]["wall_time_s"]) - pre[-1] if pre else None
    except (OSError, KeyError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _peer_times(root: Path, scale: str, suite: str, dataset: str, method: str,
                source: str) -> Timing | None:
    """Mean wall time of the finished runs of (suite, dataset, method), whole job (the
    Snakemake benchmark file, else the run's own wall time) and online phase only; "*" for
    any method. None without a finished run."""
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
        if (o := online_seconds(summ.parent)) is not None:
            online.append(o)
    if not whole:
        return None
    return Timing(_mean(whole), _mean(online), source)


def read_timing_table(path: Path | None = TIMING_TABLE) -> dict[tuple[str, str, str, str], Timing]:
    """The committed run times by (scale, suite, dataset, method); empty if there are none."""
    out: dict[tuple[str, str, str, str], Timing] = {}
    if path is None:
        return out
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))]
    except (OSError, UnicodeDecodeError):
        return out
    for r in rows:
        job = _float(r.get("job_s") or "")
        if job is None:
            continue
        key = (r.get("scale", ""), r.get("suite", ""), r.get("dataset", ""), r.get("method", ""))
        out[key] = Timing(job, _float(r.get("online_s") or ""), "timing table")
    return out


def estimate_remaining(rs: RunStatus, running: bool, sources: list[Timing],
                       declared_s: float) -> None:
    """Set rs.remaining_s and rs.estimate (the module docstring's order). `sources`: the
    whole-run timings that apply, best first (finished runs, timing table, other methods)."""
    own_left = rs.eta_s if running else rs.phase_left_s  # this phase, at its own rate
    whole = sources[0] if sources else None
    frac_left = 1.0 - rs.done / rs.total if rs.total else 1.0
    if own_left is not None and rs.phase == "online":
        rs.remaining_s, rs.estimate = own_left, "its rate"
    elif own_left is not None and rs.phase == "pretraining":
        # the online phase is still to come: the best source's online time, else its whole
        # run less this run's pretraining at its own rate
        if whole is not None and whole.online_s is not None:
            rs.remaining_s, rs.estimate = own_left + whole.online_s, f"its rate + {whole.source}"
        elif whole is not None and whole.job_s is not None and rs.rate:
            rest = max(whole.job_s - rs.total / rs.rate, 0.0)
            rs.remaining_s, rs.estimate = own_left + rest, f"its rate + {whole.source}"
        else:
            rs.remaining_s, rs.estimate = max(declared_s, own_left), "declared ceiling"
    elif whole is not None and whole.job_s is not None:
        if rs.phase == "online" and whole.online_s is not None:
            rs.remaining_s = whole.online_s * frac_left
        else:
            rs.remaining_s = whole.job_s * (frac_left if rs.phase == "online" else 1.0)
        rs.estimate = whole.source
    else:
        rs.remaining_s, rs.estimate = declared_s, "declared ceiling"


def run_status(config: dict, scale: str, suite: str, dataset: str, method: str, seed: int,
               root: Path = Path("."), now: float | None = None,
               table: dict[tuple[str, str, str, str], Timing] | None = None) -> RunStatus:
    """The state of one planned run (see the module docstring). `table`: the committed run
    times (read_timing_table; None reads the package's)."""
    now = time.time() if now is None else now
    table = read_timing_table() if table is None else table
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
    last = _last_line(job_log) if job_log.is_file() else ""
    if not log_txt.is_file():
        if _INTERRUPTED_JOB.search(last):
            rs.state, rs.detail = "interrupted", "before it began; re-running starts it"
        elif job_log.is_file() and (now - job_log.stat().st_mtime >= STALE_S
                                    or not _snakemake_active(root)):
            rs.state, rs.detail = ("failed", last) if last else (
                "stopped", "killed before it began; re-running starts it")
        elif job_log.is_file():
            rs.state, rs.detail = "running", "starting"
    else:
        interrupted_at = _read_log(rs, log_txt, now)
        mtimes = [p.stat().st_mtime for p in (log_txt, job_log) if p.is_file()]
        # a job of Snakemake's can only be running while a Snakemake holds the workflow's lock
        orphan = job_log.is_file() and not _snakemake_active(root)
        alive = now - max(mtimes) < STALE_S and not _ENDED.search(last) and not orphan
        # a job log written after the interrupt, by a live job: the run was started again
        restarted = (interrupted_at is not None and job_log.is_file() and alive
                     and job_log.stat().st_mtime > interrupted_at + 1.0)
        if (interrupted_at is not None and not restarted) or _INTERRUPTED_JOB.search(last):
            rs.state = "interrupted"
            rs.detail = (rs.detail + "; " if rs.detail else "") + "re-running resumes it"
        elif alive:
            rs.state = "running"
            rs.detail = "" if interrupted_at is None else "resuming"
        elif last and LINE_PREFIX not in last:  # a job log ending in anything but progress
            rs.state, rs.detail = "failed", last
        else:
            rs.state, rs.detail = "stopped", _KILLED
    sources = [t for t in (
        _peer_times(root, scale, suite, dataset, method, "finished runs"),
        table.get((scale, suite, dataset, method)),
        _peer_times(root, scale, suite, dataset, "*", "other methods")) if t is not None]
    declared_s = 60.0 * float(wp.suite_config(config, scale, suite).get("runtime", 60))
    estimate_remaining(rs, rs.state == "running", sources, declared_s)
    return rs


def workflow_status(config: dict, scale: str, suites: list[str], root: Path = Path("."),
                    now: float | None = None, table_path: Path | None = TIMING_TABLE) -> list[RunStatus]:
    table = read_timing_table(table_path)
    out = []
    for suite in suites:
        p = wp.plan(config, scale, suite)
        for dataset in p["datasets"]:
            for method in p["methods"]:
                for seed in p["seeds"]:
                    out.append(run_status(config, scale, suite, dataset, method, seed, root, now,
                                          table))
    return out


def workflow_eta(runs: list[RunStatus], jobs: int) -> float:
    """Seconds until every planned run is done with `jobs` runs at a time: the remaining
    work spread over the jobs, but never less than the longest single run left."""
    left = [r.remaining_s or 0.0 for r in runs]
    return max(sum(left) / max(jobs, 1), max(left, default=0.0))


def format_status(runs: list[RunStatus], scale: str, jobs: int | None) -> str:
    counts = {s: sum(r.state == s for r in runs) for s in STATES}
    header = ("suite", "dataset", "method", "seed", "state", "progress", "score", "eta", "eta from")
    rows = [header] + [
        (r.suite, r.dataset, r.method, str(r.seed), r.state, r.progress,
         "" if r.score is None else f"{r.score:.2f}",
         format_duration(r.remaining_s) if r.remaining_s else "",
         r.estimate if r.remaining_s else "")
        for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in runs:
        if r.state in ("failed", "diverged", "interrupted", "stopped") and r.detail:
            lines.append(f"{r.state}: {r.suite}/{r.dataset} {r.method} seed {r.seed}: {r.detail}")
    n_jobs = jobs or max(counts["running"], 1)
    summary = (f"{len(runs)} planned runs at scale {scale}: "
               + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
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


__all__ = ["RunStatus", "Timing", "run_status", "workflow_status", "workflow_eta", "format_status",
           "estimate_remaining", "read_timing_table", "online_seconds", "STALE_S", "STATES",
           "TIMING_TABLE", "TIMING_COLUMNS"]
