#!/usr/bin/env python
"""Interleaved A/B of the DT update speed: `odtbench/methods/nets.py` at a git revision against the
working tree, in one process, alternating trials so a shared CPU slows both alike.

    python benchmarks/ab_nets.py --rev 398d870 --sizes tiny small medium --out ab.json

Same agents, batches and update as bench_updates.py (one critic step + one actor step, online
loss, hopper shapes, fp32); only the networks module differs between A and B.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_updates as bench  # noqa: E402

TRIALS_UPDATES = {"tiny": 30, "small": 10, "medium": 3, "paper": 1}


def _old_nets(rev: str):
    """The networks module as it was at `rev`, loaded under another name."""
    # odtbench/nets.py before the top level was regrouped into folders
    for where in ("odtbench/methods/nets.py", "odtbench/nets.py"):
        shown = subprocess.run(["git", "show", f"{rev}:{where}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    shown.check_returncode()
    src = shown.stdout
    path = Path(tempfile.mkdtemp()) / "nets_at_rev.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("nets_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rev", required=True, help="git revision of the 'before' nets.py")
    p.add_argument("--sizes", nargs="+", default=["tiny", "small", "medium"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9, help="interleaved trials per variant")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import odtbench.methods.dt_agent as dta

    old = _old_nets(args.rev)
    old.SquashedGaussian = dta.SquashedGaussian  # one head class, so the agent's isinstance holds
    new_cls = dta.DecisionTransformer
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    rows = []
    for size in args.sizes:
        for method in bench.METHODS:
            hp = bench.hyperparameters(method, size)
            sampler = bench.make_sampler(hp, cpu)
            agents = {}
            for name, cls in (("before", old.DecisionTransformer), ("after", new_cls)):
                dta.DecisionTransformer = cls
                agents[name] = bench.make_agent(hp, cpu, {})
            dta.DecisionTransformer = new_cls
            gen = torch.Generator().manual_seed(0)
            batches = [sampler.sample(hp["batch_size"], gen) for _ in range(16)]
            rl, sup = bench.coefficients(hp)
            n = TRIALS_UPDATES[size]
            for agent in agents.values():  # warm-up
                for batch in batches[:2]:
                    bench.one_update(agent, batch, rl, sup)
            times: dict[str, list[float]] = {k: [] for k in agents}
            for _ in range(args.rounds):
                for name, agent in agents.items():
                    t = time.perf_counter()
                    for i in range(n):
                        bench.one_update(agent, batches[i % len(batches)], rl, sup)
                    times[name].append((time.perf_counter() - t) / n * 1e3)
            row = {"size": size, "method": method, "rev": args.rev, "threads": args.threads,
                   **{f"{k}_ms_median": statistics.median(v) for k, v in times.items()},
                   "trials_ms": times}
            row["speedup"] = row["before_ms_median"] / row["after_ms_median"]
            print(f"{size:6s} {method:8s} before {row['before_ms_median']:8.2f} ms  "
                  f"after {row['after_ms_median']:8.2f} ms  x{row['speedup']:.2f}", flush=True)
            rows.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": bench.machine_info(args.threads, cpu),
                                              "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
