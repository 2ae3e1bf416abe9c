"""Do two versions of the code train the DT family identically? (issue 28: a refactor must leave
every run's files as they were.)

`run` trains every registered DT-family method for seed 0 at the smoke scale on
mujoco/hopper-random and toy/bandit with the code on PYTHONPATH, one run directory per
(task, method) under OUT (building both smoke datasets first; MINARI_DATASETS_PATH as usual).
`compare` then checks two such folders run by run and writes a report:

- summary.json: every field equal, except `wall_time_s`;
- curve.csv and diagnostics.csv: every cell equal as text, except the columns `wall_time_s`
  and `diag_wall_s`;
- the final checkpoint's agent state (checkpoint/state.pt, "agent"): the same keys in the
  same order and every tensor bit-identical (torch.equal), every other value equal;
  the checkpoint's run state is compared too, except `wall_time_s`, `eval_s` and
  `diag_wall_s` (also inside its curve and diagnostics rows).

config.json is not compared: it records the code's hash and the time.

    PYTHONPATH=OLD_CHECKOUT python benchmarks/smoke_equivalence.py run --out REF/before
    PYTHONPATH=NEW_CHECKOUT python benchmarks/smoke_equivalence.py run --out REF/after
    python benchmarks/smoke_equivalence.py compare REF/before REF/after
        [--report benchmarks/out/smoke-equivalence.md]     (exit 1 on any difference)
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TASKS = ("mujoco/hopper-random", "toy/bandit")
IGNORED_SUMMARY = {"wall_time_s"}
IGNORED_COLUMNS = {"wall_time_s", "diag_wall_s"}
IGNORED_STATE = {"wall_time_s", "eval_s"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from odtbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def dt_methods() -> list[str]:
    """The registered methods of the DT family (`odtbench list methods`, family column `dt`)."""
    res = _cli("list", "methods")
    if res.returncode:
        sys.exit(res.stderr.strip())
    return [ln.split()[0] for ln in res.stdout.splitlines() if ln.split()[1:2] == ["dt"]]


def run_all(out: Path, methods: list[str]) -> int:
    for task in TASKS:
        res = _cli("dataset", "build", "--task", task, "--scale", "smoke")
        if res.returncode:
            sys.exit(f"dataset build {task}: {res.stderr.strip()}")
    failed = 0
    for task in TASKS:
        for method in methods:
            run_dir = out / task.replace("/", "-") / method
            res = _cli("run", "--task", task, "--method", method, "--seed", "0", "--scale",
                       "smoke", "--out", str(run_dir))
            print(f"{task} {method}: {'ok' if res.returncode == 0 else res.stderr.strip()}",
                  flush=True)
            failed += res.returncode != 0
    return 1 if failed else 0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in IGNORED_COLUMNS}
                for row in csv.DictReader(f)]


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if hasattr(a, "__array__") and hasattr(b, "__array__"):  # numpy RNG state arrays
        import numpy as np

        return bool(np.array_equal(a, b))
    return bool(a == b)


def _strip(x: Any) -> Any:
    """The checkpoint's run state without its wall times (its curve and diagnostics rows too)."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in IGNORED_STATE | IGNORED_COLUMNS}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def compare_run(a: Path, b: Path) -> list[str]:
    """The differences between two run directories of the same (task, method), as lines."""
    import torch

    diffs: list[str] = []
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in sorted((set(sa) | set(sb)) - IGNORED_SUMMARY):
        if sa.get(key) != sb.get(key):
            diffs.append(f"summary.json {key}: {sa.get(key)!r} != {sb.get(key)!r}")
    for name in ("curve.csv", "diagnostics.csv"):
        ra, rb = _rows(a / name), _rows(b / name)
        if len(ra) != len(rb):
            diffs.append(f"{name}: {len(ra)} rows != {len(rb)}")
        for i, (x, y) in enumerate(zip(ra, rb, strict=False)):
            if x != y:
                cols = [k for k in set(x) | set(y) if x.get(k) != y.get(k)]
                diffs.append(f"{name} row {i + 1}: columns {sorted(cols)} differ")
    ca, cb = (torch.load(d / "checkpoint" / "state.pt", weights_only=False) for d in (a, b))
    if list(ca["agent"]) != list(cb["agent"]):
        diffs.append(f"checkpoint agent keys: {list(ca['agent'])} != {list(cb['agent'])}")
    diffs += [f"checkpoint agent {k} differs" for k in ca["agent"]
              if k in cb["agent"] and not _same(ca["agent"][k], cb["agent"][k])]
    sa_, sb_ = _strip(ca["state"]), _strip(cb["state"])
    diffs += [f"checkpoint state {k} differs" for k in sorted(set(sa_) | set(sb_))
              if not _same(sa_.get(k), sb_.get(k))]
    return diffs


def compare(before: Path, after: Path, report: Path) -> int:
    runs = sorted(p.parent.relative_to(before) for p in before.glob("*/*/summary.json"))
    lines = [f"# Smoke equivalence: {before} against {after}", "",
             f"Ignored: summary.json {sorted(IGNORED_SUMMARY)}; curve.csv/diagnostics.csv "
             f"columns {sorted(IGNORED_COLUMNS)}; checkpoint run state {sorted(IGNORED_STATE | IGNORED_COLUMNS)}; "
             "config.json (code hash, time).", "", "| run | result |", "|---|---|"]
    bad = 0
    for rel in runs:
        if not (after / rel / "summary.json").exists():
            diffs = ["missing after"]
        else:
            diffs = compare_run(before / rel, after / rel)
        bad += bool(diffs)
        lines.append(f"| {rel} | {'identical' if not diffs else '; '.join(diffs[:5])} |")
    lines += ["", f"{len(runs) - bad} of {len(runs)} runs identical."]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if bad or not runs else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=Path("benchmarks/out/smoke-equivalence/run"))
    r.add_argument("--methods", nargs="*", help="default: every DT-family method")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--report", type=Path, default=Path("benchmarks/out/smoke-equivalence.md"))
    args = ap.parse_args()
    if args.cmd == "run":
        return run_all(args.out, args.methods or dt_methods())
    return compare(args.before, args.after, args.report)


if __name__ == "__main__":
    sys.exit(main())
