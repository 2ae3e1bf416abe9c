"""Run-result files (docs/contracts.md §1): atomic writing, reading, validation, provenance.

This module is the public interface between whatever trains (our loop, a baseline, an external
program) and the analysis: keep it small and stable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import odtbench
from odtbench import atomic
from odtbench.errors import OdtbenchError

CONFIG_SCHEMA = "odtbench.config/1"
SUMMARY_SCHEMA = "odtbench.summary/1"
CURVE_COLUMNS: tuple[str, ...] = (
    "phase", "iteration", "online_transitions", "gradient_steps", "wall_time_s",
    "return_mean", "return_std", "score_mean", "score_std", "length_mean", "success_rate",
)
# diagnostics.csv: one row per evaluation of a DT-family run (odtbench/diagnostics.py).
DIAGNOSTIC_COLUMNS: tuple[str, ...] = (
    "phase", "iteration", "online_transitions", "gradient_steps",
    "q_s0", "mc_return_s0", "q_mc_corr", "buffer_online_share",
    "online_episodes", "online_return_mean", "online_length_mean", "online_max_abs_z",
    "grad_sup_norm", "grad_rl_norm", "grad_cosine", "critic_loss", "diag_wall_s",
)
PHASES = ("pretrain", "online")
STATUSES = ("complete", "diverged")
SCORE_KINDS = ("normalized", "success_rate", "raw")
_INT_COLUMNS = ("iteration", "online_transitions", "gradient_steps")
_SEED_DIR = re.compile(r"^seed(\d+)$")
# Scores are written with full float precision, but writers may round the curve: compare loosely.
_SCORE_TOL = 1e-3


# ----------------------------------------------------------------------------- writing

def _jsonable(obj: Any) -> Any:
    """Plain-JSON version of obj: numpy scalars/arrays unwrapped, non-finite floats -> null."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN; the contract uses null for "no finite value"
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text so that readers see the old file or the new one, never a partial one."""
    return atomic.write_text(path, text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write obj as indented JSON (numpy values converted, NaN/inf -> null)."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(float(value)) else repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def curve_to_csv(rows: Sequence[Mapping[str, Any]],
                 columns: Sequence[str] = CURVE_COLUMNS, what: str = "curve") -> str:
    """CSV text of rows with exactly `columns` (missing keys -> empty cells)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for i, row in enumerate(rows):
        unknown = set(row) - set(columns)
        if unknown:
            raise OdtbenchError(
                f"{what} row {i} has unknown column(s) {sorted(unknown)}; "
                f"valid columns: {', '.join(columns)}")
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def write_curve(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Atomically (re)write curve.csv with one row per evaluation so far."""
    return atomic_write_text(path, curve_to_csv(rows))


def write_diagnostics(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Atomically (re)write diagnostics.csv with one row per evaluation so far."""
    return atomic_write_text(path, curve_to_csv(rows, DIAGNOSTIC_COLUMNS, "diagnostics"))


def write_run(out_dir: str | os.PathLike, config: Mapping, curve_rows: Sequence[Mapping],
              summary: Mapping, *, validate: bool = True) -> Path:
    """Write a finished run's three files in contract order (summary.json last), then validate.

    For programs that produce a whole run at once (external baselines, importers); the
    training loop writes the files incrementally with the functions above instead.
    """
    out = Path(out_dir)
    atomic_write_json(out / "config.json", {"schema": CONFIG_SCHEMA, **config})
    write_curve(out / "curve.csv", curve_rows)
    atomic_write_json(out / "summary.json", {"schema": SUMMARY_SCHEMA, **summary})
    if validate:
        validate_run(out)
    return out


def run_dir(root: str | os.PathLike, suite: str, dataset: str, method: str, seed: int) -> Path:
    """`<root>/<suite>/<dataset>/<method>/seed<k>` (method names verbatim, '+' included)."""
    for name, part in (("suite", suite), ("dataset", dataset), ("method", method)):
        if not part or "/" in part or part in (".", ".."):
            raise OdtbenchError(f"invalid {name} {part!r} for a run directory; use a plain name")
    return Path(root) / suite / dataset / method / f"seed{int(seed)}"


# ----------------------------------------------------------------------------- provenance

def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str]) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(odtbench.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None  # not a checkout, or no git: provenance says so instead of crashing
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str = "cpu") -> dict[str, Any]:
    """What produced a result: code version, library versions, machine, time (UTC)."""
    commit = _git(["rev-parse", "HEAD"])
    dirty = _git(["status", "--porcelain", "--untracked-files=no"]) if commit else None
    from odtbench.codehash import code_fingerprint

    return {
        "odtbench_version": odtbench.__version__,
        # the training code's content hash: tells an edited working tree from its commit
        "code_sha256": code_fingerprint(),
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        "python": platform.python_version(),
        **{name: _version(dist) for name, dist in (
            ("torch", "torch"), ("numpy", "numpy"), ("gymnasium", "gymnasium"),
            ("mujoco", "mujoco"), ("minari", "minari"))},
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "device": device,
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# ----------------------------------------------------------------------------- reading

@dataclass
class RunRecord:
    """One run directory, loaded. summary is None while the run has not ended.

    In config and summary, "dataset" is always the dataset name and "dataset_info" the dataset
    record (id, source, checksum, ...), whichever spelling the writer used.
    """

    path: Path
    config: dict
    curve: pd.DataFrame
    summary: dict | None

    @property
    def key(self) -> tuple[str, str, str, int]:
        c = self.config
        return c["suite"], c["dataset"], c["method"], int(c["seed"])

    @property
    def status(self) -> str:
        return self.summary["status"] if self.summary else "incomplete"


def _bad(path: Path, field: str, problem: str) -> OdtbenchError:
    # the run directory holds the file: deleting it is what makes a re-run start over
    return OdtbenchError(f"{path}: {field} {problem}; fix the program that wrote it, or delete "
                         f"{path.parent} and re-run the run")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise OdtbenchError(f"{path}: file missing; re-run the run (see docs/contracts.md §1)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise _bad(path, "content", f"is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, "content", f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise _bad(path, "content", "is not a JSON object")
    return obj


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _require(path: Path, obj: Mapping, field: str, kind: str, *, nullable: bool = False) -> Any:
    if field not in obj:
        raise _bad(path, f"field '{field}'", "is missing")
    v = obj[field]
    if v is None and nullable:
        return v
    ok = {"str": lambda x: isinstance(x, str) and x != "",
          "int": lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0,
          "num": _is_num,
          "dict": lambda x: isinstance(x, dict)}[kind](v)
    if not ok:
        want = {"str": "a non-empty string", "int": "a non-negative integer",
                "num": "a finite number", "dict": "an object"}[kind]
        raise _bad(path, f"field '{field}'", f"must be {want}{' or null' if nullable else ''}, got {v!r}")
    return v


def _normalise_dataset(path: Path, obj: dict, name: str | None = None) -> dict:
    """Return obj with "dataset" = the dataset name and "dataset_info" = the dataset record.

    docs/contracts.md shows both under the key "dataset" (a JSON object cannot hold both; a
    writer's dict literal keeps the last one, the record). Accept either spelling: the name from
    a string "dataset", else from dataset_info["task"] ("suite/dataset"), else from the run
    directory `<dataset>/<method>/seed<k>`.
    """
    v = obj.get("dataset")
    info = obj.get("dataset_info") if isinstance(obj.get("dataset_info"), dict) else None
    if isinstance(v, dict):
        info = {**(info or {}), **v}
        task = str(info.get("task", ""))
        run = path.parent
        if "/" in task:
            v = task.split("/", 1)[1]
        elif name is not None:
            v = name
        elif _SEED_DIR.match(run.name):
            v = run.parent.parent.name
        else:
            raise _bad(path, "field 'dataset'", "must name the dataset (a string)")
    if info is None:
        raise _bad(path, "field 'dataset_info'", "is missing (need id, source, checksum)")
    return {**obj, "dataset": v, "dataset_info": info}


def _check_dataset_reference(path: Path, obj: Mapping) -> None:
    ds = obj["dataset_info"]
    for f in ("id", "source", "checksum"):
        _require(path, ds, f, "str")
    ref = _require(path, obj, "reference", "dict")
    _require(path, ref, "min", "num")
    _require(path, ref, "max", "num")
    _require(path, ref, "source", "str")


def _validate_config(path: Path) -> dict:
    cfg = _read_json(path)
    if cfg.get("schema") != CONFIG_SCHEMA:
        raise _bad(path, "field 'schema'", f"must be {CONFIG_SCHEMA!r}, got {cfg.get('schema')!r}")
    cfg = _normalise_dataset(path, cfg)
    for f in ("suite", "dataset", "method", "scale"):
        _require(path, cfg, f, "str")
    _require(path, cfg, "seed", "int")
    for f in ("hyperparameters", "provenance"):
        _require(path, cfg, f, "dict")
    _check_dataset_reference(path, cfg)
    return cfg


def _read_curve(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise OdtbenchError(f"{path}: file missing; re-run the run (see docs/contracts.md §1)")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))  # plain csv + numpy: pandas per-column work is 10x slower
    except UnicodeDecodeError as exc:
        raise _bad(path, "content", f"is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise _bad(path, "content", f"is not valid CSV ({exc})") from None
    header = rows[0] if rows else None
    if header is None or tuple(header) != CURVE_COLUMNS:
        raise _bad(path, "header", f"must be exactly {','.join(CURVE_COLUMNS)}, got {header}")
    body = rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(CURVE_COLUMNS):
            raise _bad(path, f"row {i + 2}", f"has {len(r)} cells, expected {len(CURVE_COLUMNS)}")
        if r[0] not in PHASES:
            raise _bad(path, f"row {i + 2} column 'phase'", f"must be one of {PHASES}, got {r[0]!r}")
    data: dict[str, Any] = {"phase": [r[0] for r in body]}
    for j, col in enumerate(CURVE_COLUMNS[1:], start=1):
        vals = np.empty(len(body))
        for i, r in enumerate(body):
            cell = r[j].strip()
            try:
                vals[i] = float(cell) if cell else np.nan
            except ValueError:
                raise _bad(path, f"row {i + 2} column '{col}'", f"must be a number, got {cell!r}") from None
        data[col] = vals
    for col in (*_INT_COLUMNS, "wall_time_s"):
        v = data[col]
        bad = np.isnan(v) | (v < 0)
        if bad.any():
            raise _bad(path, f"row {int(np.flatnonzero(bad)[0]) + 2} column '{col}'",
                       "must be a non-negative number")
    for col in ("online_transitions", "gradient_steps"):
        if (np.diff(data[col]) < 0).any():
            raise _bad(path, f"column '{col}'", "must not decrease from one row to the next")
    sr = data["success_rate"]
    if ((sr < 0) | (sr > 1)).any():
        raise _bad(path, "column 'success_rate'", "must lie in [0, 1] or be empty")
    for col in _INT_COLUMNS:
        data[col] = data[col].astype(np.int64)
    return pd.DataFrame(data, columns=list(CURVE_COLUMNS))


def _validate_summary(path: Path, cfg: Mapping, curve: pd.DataFrame) -> dict:
    s = _read_json(path)
    if s.get("schema") != SUMMARY_SCHEMA:
        raise _bad(path, "field 'schema'", f"must be {SUMMARY_SCHEMA!r}, got {s.get('schema')!r}")
    s = _normalise_dataset(path, s, cfg["dataset"])
    for f in ("suite", "dataset", "method", "scale", "seed"):
        if s.get(f) != cfg[f]:
            raise _bad(path, f"field '{f}'", f"is {s.get(f)!r} but config.json says {cfg[f]!r}")
    status = _require(path, s, "status", "str")
    if status not in STATUSES:
        raise _bad(path, "field 'status'", f"must be one of {STATUSES}, got {status!r}")
    diverged = status == "diverged"
    for f in ("before_score", "final_score", "best_score"):
        _require(path, s, f, "num", nullable=diverged)
    if diverged:
        _require(path, s, "diverged_reason", "str")
    for f in ("online_transitions", "gradient_steps"):
        _require(path, s, f, "int")
    _require(path, s, "wall_time_s", "num")
    if _require(path, s, "score_kind", "str") not in SCORE_KINDS:
        raise _bad(path, "field 'score_kind'", f"must be one of {SCORE_KINDS}, got {s['score_kind']!r}")
    _check_dataset_reference(path, s)
    for f in ("id", "source", "checksum"):
        if s["dataset_info"][f] != cfg["dataset_info"][f]:
            raise _bad(path, f"field 'dataset.{f}'",
                       f"differs from config.json ({cfg['dataset_info'][f]!r})")
    # The summary must agree with the curve it summarises (contract: final = last evaluation).
    scores = curve["score_mean"].to_numpy()
    finite = scores[np.isfinite(scores)]
    if s["final_score"] is not None and len(finite):
        if not math.isclose(s["final_score"], finite[-1], rel_tol=1e-6, abs_tol=_SCORE_TOL):
            raise _bad(path, "field 'final_score'",
                       f"is {s['final_score']} but the last evaluation in curve.csv is {finite[-1]}")
    pre = curve.loc[curve["phase"] == "pretrain", "score_mean"].dropna()
    if s["before_score"] is not None and len(pre):
        if not math.isclose(s["before_score"], pre.iloc[-1], rel_tol=1e-6, abs_tol=_SCORE_TOL):
            raise _bad(path, "field 'before_score'",
                       f"is {s['before_score']} but the last pretrain evaluation is {pre.iloc[-1]}")
    return s


def validate_run(path: str | os.PathLike) -> RunRecord:
    """Load a run directory, checking every file against the contract.

    Raises OdtbenchError naming the bad file and field. A run without summary.json (still
    running or killed) is returned with summary None.
    """
    path = Path(path)
    if not path.is_dir():
        raise OdtbenchError(f"{path}: run directory missing; run it first (odtbench run ...)")
    cfg = _validate_config(path / "config.json")
    curve = _read_curve(path / "curve.csv") if (path / "curve.csv").exists() else None
    summary_path = path / "summary.json"
    if not summary_path.exists():
        return RunRecord(path, cfg, curve if curve is not None else
                         pd.DataFrame(columns=list(CURVE_COLUMNS)), None)
    if curve is None:
        if _read_json(summary_path).get("status") == "diverged":
            # diverged before its first evaluation (older writers left no curve.csv): the
            # run has no evaluations, which the report shows, rather than blocking the suite
            curve = pd.DataFrame(columns=list(CURVE_COLUMNS))
        else:
            raise OdtbenchError(f"{path / 'curve.csv'}: file missing although summary.json "
                                f"exists; delete {path} and re-run the run")
    return RunRecord(path, cfg, curve, _validate_summary(summary_path, cfg, curve))


def load_run(path: str | os.PathLike) -> RunRecord:
    """Config, curve (DataFrame) and summary of one run; validated (see validate_run)."""
    return validate_run(path)


def iter_runs(runs_root: str | os.PathLike, suite: str) -> Iterator[Path]:
    """Run directories `<runs_root>/<suite>/<dataset>/<method>/seed<k>` that hold a config.json,
    sorted by dataset, method, seed number."""
    base = Path(runs_root) / suite
    found = []
    for cfg in base.glob("*/*/seed*/config.json"):
        m = _SEED_DIR.match(cfg.parent.name)
        if m:
            found.append((cfg.parent.parent.parent.name, cfg.parent.parent.name, int(m.group(1)),
                          cfg.parent))
    yield from (p for *_, p in sorted(found))
