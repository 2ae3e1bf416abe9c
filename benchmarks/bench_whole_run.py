#!/usr/bin/env python
"""Whole runs, speed "reference" against "fast" (issue 29): the same `odtbench run` from a
fresh run directory, in turn, each a separate process, timed from outside.

Per repetition three runs, alternating their order from one repetition to the next:
`reference`; `fast` on a cold compile cache (a new, empty `TORCHINDUCTOR_CACHE_DIR`); `fast`
on that cache warm (the same directory right after). Each is timed in wall seconds and in
the child's CPU seconds (user + sys of it and the descendants it reaped, `os.wait4`), so the compile is
inside the figure. The load average before and after each run is recorded: on a shared
machine quote the CPU-time ratios, the wall ones move with the load. The final score of each
run is kept too (the two paths agree to rounding; a run's score is chaotic in its last digits).

    python benchmarks/bench_whole_run.py --task mujoco/hopper-random --scale quick --reps 2
    python benchmarks/bench_whole_run.py --scale standard --reps 1 --together   # a long pair

`--together` starts the reference and the cold fast run at the same time (one core each on an
otherwise idle 2-core machine), each timed alone: its own CPU seconds (`os.wait4`) and wall
seconds; no warm run then.

Writes JSON (default benchmarks/out/bench_whole_run.json, an ignored folder), rewritten
after every run so an interrupted benchmark keeps what it measured, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _start(args: argparse.Namespace, speed: str, cache: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "odtbench.cli", "run", "--task", args.task, "--method", args.method,
           "--scale", args.scale, "--seed", str(args.seed), "--out", str(out), "--speed", speed]
    err = open(out.parent / f"{out.name}.stderr", "w")  # noqa: SIM115 (closed in _finish)
    return {"speed": speed, "out": out, "cmd": cmd, "err": err, "load0": os.getloadavg()[0],
            "t0": time.perf_counter(),
            "proc": subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)}


def _finish(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wait for started runs in the order they end: each one's own CPU time (os.wait4: the
    child and the descendants it reaped), its wall time and its score; in `runs`' order."""
    by_pid = {run["proc"].pid: run for run in runs}
    while any("result" not in run for run in runs):
        pid, status, usage = os.wait4(-1, 0)
        run = by_pid.get(pid)
        if run is None:
            continue
        wall = time.perf_counter() - run["t0"]
        run["err"].close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            tail = Path(run["err"].name).read_text()[-2000:]
            raise SystemExit(f"bench_whole_run: {' '.join(run['cmd'])} exited {code}:\n{tail}")
        out = run["out"]
        summary = json.loads((out / "summary.json").read_text())
        config = json.loads((out / "config.json").read_text())
        run["result"] = {"speed_asked": run["speed"],
                         "speed_ran": config.get("provenance", {}).get("speed"),
                         "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                         "load_before": run["load0"], "load_after": os.getloadavg()[0],
                         "final_score": summary.get("final_score")}
    return [run["result"] for run in runs]


def table(rows: list[dict[str, Any]]) -> str:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    ref = by.get("reference", [])
    lines = ["| path | runs | CPU s (median) | wall s (median) | CPU speed-up vs reference | final scores |",
             "|---|---|---|---|---|---|"]
    for label, rs in by.items():
        cpu = statistics.median(r["cpu_s"] for r in rs)
        up = statistics.median(r["cpu_s"] for r in ref) / cpu if ref else float("nan")
        scores = ", ".join(f"{r['final_score']:.2f}" for r in rs)
        lines.append(f"| {label} | {len(rs)} | {cpu:.0f} | {statistics.median(r['wall_s'] for r in rs):.0f} "
                     f"| {up:.2f}x | {scores} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="mujoco/hopper-random")
    p.add_argument("--method", default="TD3+ODT")
    p.add_argument("--scale", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--together", action="store_true",
                   help="start the reference and the cold fast run at once (half the wall time "
                   "of a long pair; each still timed alone: its own CPU and wall seconds)")
    p.add_argument("--machine", default="", help="the machine and its load, for the record")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/bench_whole_run.json"))
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="odtbench-whole-run-") as tmp:
        work = Path(tmp)
        for rep in range(args.reps):
            cache = work / f"inductor-{rep}"  # empty: the cold run fills it, the warm one reads it
            plan = [("reference", "reference"), ("fast-cold", "fast"), ("fast-warm", "fast")]
            if args.together:  # reference and fast-cold at once, under the same load
                runs = [_start(args, speed, cache, work / label) for label, speed in plan[:2]]
                done = [(label, result) for (label, _), result in zip(plan[:2], _finish(runs), strict=True)]
            else:
                # the reference first in even repetitions, last in odd ones; cold before warm
                order = plan if rep % 2 == 0 else plan[1:] + plan[:1]
                done = [(label, _finish([_start(args, speed, cache, work / "run")])[0])
                        for label, speed in order]
            for label, result in done:
                rows.append({"rep": rep, "label": label, "together": args.together, **result})
                print(json.dumps(rows[-1]), flush=True)
                record = {"task": args.task, "method": args.method, "scale": args.scale,
                          "seed": args.seed, "machine": args.machine, "rows": rows}
                tmp_out = args.out.with_suffix(".json.tmp")
                tmp_out.write_text(json.dumps(record, indent=1))
                tmp_out.replace(args.out)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
