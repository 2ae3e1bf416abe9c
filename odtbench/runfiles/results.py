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
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.overrides import (
    VARIANT_SEP,  # a sweep's run directory: <method>@<key>=<value>,...
)
from odtbench.runfiles import atomic, contract
from odtbench.runfiles.contract import bad_file

# The contract's schemas (odtbench/runfiles/schemas/) define the files; these names are read from them.
CONFIG_SCHEMA: str = contract.load_schema("config")["properties"]["schema"]["const"]
SUMMARY_SCHEMA: str = contract.load_schema("summary")["properties"]["schema"]["const"]
CURVE_COLUMNS: tuple[str, ...] = contract.columns("curve")
# diagnostics.csv: one row per evaluation of a DT-family run (odtbench/runfiles/diagnostics.py).
DIAGNOSTIC_COLUMNS: tuple[str, ...] = contract.columns("diagnostics")
# Columns added after files were written without them (always last): a file whose header
# lacks them reads with them empty (docs/contracts.md §1).
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "diagnostics": ("ppo_ratio_mean", "ppo_ratio_max", "ppo_log_ratio_max")}
_INT_COLUMNS = ("iteration", "online_transitions", "gradient_steps")
_SEED_DIR = re.compile(r"^seed(\d+)$")
# The summary's scores are copies of curve rows, both written with repr() precision: they
# must agree to float rounding (a curve missing rows must not pass for the finished one).
_SCORE_TOL = 1e-9


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


def json_text(obj: Any) -> str:
    """obj as indented JSON text (numpy values converted, NaN/inf -> null)."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write obj as indented JSON (numpy values converted, NaN/inf -> null)."""
    return atomic_write_text(path, json_text(obj))


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
    from odtbench.runfiles.codehash import code_fingerprint

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


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise OdtbenchError(f"{path}: file missing; re-run the run (see docs/contracts.md §1)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise bad_file(path, "content", f"is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise bad_file(path, "content",
                       f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(obj, dict):
        raise bad_file(path, "content", "is not a JSON object")
    return obj


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
            raise bad_file(path, "field 'dataset'", "must name the dataset (a string)")
    if info is None:
        raise bad_file(path, "field 'dataset_info'", "is missing (need id, source, checksum)")
    return {**obj, "dataset": v, "dataset_info": info}


def _validate_config(path: Path) -> dict:
    cfg = _normalise_dataset(path, _read_json(path))
    contract.check(path, "config", cfg)
    return cfg


def _cell(text: str) -> float | str | None:
    """A CSV cell as the row schemas see it: empty (or non-finite, which writers leave
    empty) -> None, a number -> float, anything else stays text for the schema to name."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else None


def read_rows(path: str | os.PathLike, kind: str) -> list[dict[str, Any]]:
    """The rows of a run's CSV file (kind "curve" or "diagnostics"), each checked against
    its row schema (odtbench/runfiles/schemas/); empty cells are None."""
    path = Path(path)
    if not path.is_file():
        raise OdtbenchError(f"{path}: file missing; re-run the run (see docs/contracts.md §1)")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))  # plain csv: pandas per-column work is 10x slower
    except UnicodeDecodeError as exc:
        raise bad_file(path, "content", f"is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise bad_file(path, "content", f"is not valid CSV ({exc})") from None
    cols = contract.columns(kind)
    header = rows[0] if rows else None
    added = ADDED_COLUMNS.get(kind, ())
    older = cols[:len(cols) - len(added)]
    if header is None or tuple(header) not in (cols, older):
        raise bad_file(path, "header", f"must be exactly {','.join(cols)}, got {header}")
    present = cols if tuple(header) == cols else older
    out: list[dict[str, Any]] = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(present):
            raise bad_file(path, f"row {i}", f"has {len(r)} cells, expected {len(present)}")
        row: dict[str, Any] = dict.fromkeys(cols)
        row.update({c: (cell if c == "phase" else _cell(cell))
                    for c, cell in zip(present, r, strict=True)})
        contract.check(path, kind, row, where=f"row {i}")
        out.append(row)
    for col in ("online_transitions", "gradient_steps"):
        counts = [row[col] for row in out]
        if any(b < a for a, b in zip(counts, counts[1:], strict=False)):
            raise bad_file(path, f"column '{col}'", "must not decrease from one row to the next")
    return out


def _read_curve(path: Path) -> pd.DataFrame:
    rows = read_rows(path, "curve")
    data: dict[str, Any] = {"phase": [r["phase"] for r in rows]}
    for col in CURVE_COLUMNS[1:]:
        data[col] = np.array([np.nan if r[col] is None else r[col] for r in rows], dtype=float)
    for col in _INT_COLUMNS:
        data[col] = data[col].astype(np.int64)
    return pd.DataFrame(data, columns=list(CURVE_COLUMNS))


def _validate_summary(path: Path, cfg: Mapping, curve: pd.DataFrame) -> dict:
    s = _normalise_dataset(path, _read_json(path), cfg["dataset"])
    contract.check(path, "summary", s)
    for f in ("suite", "dataset", "method", "scale", "seed"):
        if s.get(f) != cfg[f]:
            raise bad_file(path, f"field '{f}'", f"is {s.get(f)!r} but config.json says {cfg[f]!r}")
    for f in ("id", "source", "checksum"):
        if s["dataset_info"][f] != cfg["dataset_info"][f]:
            raise bad_file(path, f"field '{f}' (in dataset_info)",
                           f"differs from config.json ({cfg['dataset_info'][f]!r})")
    # The summary must agree with the curve it summarises (contract: final = last evaluation;
    # a complete run's last evaluation is at its last transition).
    if s["status"] == "complete" and len(curve) and \
            s["online_transitions"] != curve["online_transitions"].iloc[-1]:
        raise bad_file(path, "field 'online_transitions'",
                       f"is {s['online_transitions']} but the last row of curve.csv is at "
                       f"{curve['online_transitions'].iloc[-1]} (curve.csv cut short?)")
    scores = curve["score_mean"].to_numpy()
    finite = scores[np.isfinite(scores)]
    if s["final_score"] is not None and len(finite):
        if not math.isclose(s["final_score"], finite[-1], rel_tol=_SCORE_TOL, abs_tol=_SCORE_TOL):
            raise bad_file(path, "field 'final_score'",
                           f"is {s['final_score']} but the last evaluation in curve.csv is {finite[-1]}")
    pre = curve.loc[curve["phase"] == "pretrain", "score_mean"].dropna()
    if s["before_score"] is not None and len(pre):
        if not math.isclose(s["before_score"], pre.iloc[-1], rel_tol=_SCORE_TOL, abs_tol=_SCORE_TOL):
            raise bad_file(path, "field 'before_score'",
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


def iter_runs(runs_root: str | os.PathLike, suite: str, *,
              variants: bool = False) -> Iterator[Path]:
    """Run directories `<runs_root>/<suite>/<dataset>/<method>/seed<k>` that hold a config.json,
    sorted by dataset, method, seed number. A sweep's runs (`<method>@<key>=<value>/`,
    docs/ablations.md) are another configuration of their method: left out unless
    `variants`, so a suite's tables never mix them with the method's own runs."""
    base = Path(runs_root) / suite
    found = []
    for cfg in base.glob("*/*/seed*/config.json"):
        m = _SEED_DIR.match(cfg.parent.name)
        if m and (variants or VARIANT_SEP not in cfg.parent.parent.name):
            found.append((cfg.parent.parent.parent.name, cfg.parent.parent.name, int(m.group(1)),
                          cfg.parent))
    yield from (p for *_, p in sorted(found))
