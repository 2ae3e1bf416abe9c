#!/usr/bin/env python
"""Speed "fast" against "reference" (issue 29): the time of one training unit of each path,
in one process, interleaved, with the fp32 matmul peak measured in the same run.

A unit is what the loop repeats (`DTAgent.train_unit`: d critic steps and one actor step,
d = the method's actor_update_interval) on batches sampled beforehand, so sampling is not
timed. Both agents start from the same weights. Per repetition: the matmul peak, then a block
of reference units, then a block of fast units (then the other order in the next repetition),
each timed in CPU time of this process (`time.process_time`; 1 thread by default) and in wall
time. The fast path's first call (its compile; the inductor cache may be warm or cold, see
`--cold`) is timed apart. FLOPs of a unit are counted op by op on a fresh eager agent
(bench_updates.flop_counter), and the fraction of the peak is FLOPs / time / peak.
The time each path spends inside the matmul kernels (torch's profiler, one more block of
units per path) gives a bound: no path that runs these matmuls can be faster than the
reference's time over the fast path's matmul time ("bound" in the table).
The original implementation is not in this repository, so it is not timed here.

    python benchmarks/bench_fastpath.py                         # quick size, TD3+ODT
    python benchmarks/bench_fastpath.py --sizes quick paper --reps 3 --methods TD3+ODT ODT
    python benchmarks/bench_fastpath.py --cold                  # a fresh inductor cache

Writes JSON (default benchmarks/out/bench_fastpath.json, an ignored folder) and prints a
table; the machine's load average before and after is part of the record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_updates as bu  # noqa: E402  (the peak, FLOP counting, sampler and sizes)

SIZES: dict[str, dict[str, int]] = {
    # the suite's quick scale at hopper shapes, and the paper's
    "quick": dict(embed_dim=32, n_layer=1, n_head=1, context_len=5, batch_size=64),
    "paper": bu.SIZES["paper"],
}


def _hp(method: str, size: str) -> dict[str, Any]:
    from odtbench.hyperparameters.resolve import resolve

    hp = dict(resolve(bu.TASK, method, "paper").hyperparameters)
    hp.update(SIZES[size])
    return hp


def _agent(hp: dict[str, Any], device: torch.device, path: str):
    from odtbench.methods.dt_agent import DTAgent, SpeedOptions

    torch.manual_seed(0)
    return DTAgent(hp, bu.S_DIM, bu.A_DIM, device=device, speed=SpeedOptions(path=path))


def unit_flops(hp: dict[str, Any], device: torch.device, batches: list) -> int:
    """FLOPs of one training unit, counted on a fresh reference agent."""
    agent = _agent(hp, device, "reference")
    data = iter(batches)
    with bu.flop_counter() as counter:
        agent.train_unit(lambda: next(data), *bu.coefficients(hp))
    return int(counter.get_total_flops())


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def matmul_ms_per_unit(run: Any, units: int, device: torch.device) -> float:
    """Self CPU time per unit in the matmul kernels, from torch's profiler over `units` units
    (CPU only: on a GPU the kernels run asynchronously, so this reads 0 there)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(units)
        bu._sync(device)
    us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMUL_OPS)
    return us / 1e3 / units


def bench(method: str, size: str, device: torch.device, reps: int,
          units: int) -> dict[str, Any]:
    hp = _hp(method, size)
    rl, sup = bu.coefficients(hp)
    sampler = bu.make_sampler(hp, device)
    gen = torch.Generator(device).manual_seed(1)
    d = int(hp["actor_update_interval"])
    pool = [sampler.sample(hp["batch_size"], gen) for _ in range(8 * d)]
    agents = {path: _agent(hp, device, path) for path in ("reference", "fast")}
    k = [0]

    def run(agent, n: int) -> None:
        for _ in range(n):
            agent.train_unit(lambda: pool[k_next() % len(pool)], rl, sup)

    def k_next() -> int:
        k[0] += 1
        return k[0]

    first: dict[str, dict[str, float]] = {}
    for path, agent in agents.items():  # the first call: the fast path compiles here
        t_cpu, t_wall = time.process_time(), time.perf_counter()
        run(agent, 1)
        bu._sync(device)
        first[path] = {"cpu_s": time.process_time() - t_cpu, "wall_s": time.perf_counter() - t_wall}
        run(agent, 1)
    flops = unit_flops(hp, device, pool)
    times: dict[str, list[float]] = {p: [] for p in agents}
    walls: dict[str, list[float]] = {p: [] for p in agents}
    peaks: list[float] = []
    for rep in range(reps):
        peaks.append(bu.matmul_peak(device))
        order = list(agents) if rep % 2 == 0 else list(agents)[::-1]
        for path in order:
            bu._sync(device)
            t_cpu, t_wall = time.process_time(), time.perf_counter()
            run(agents[path], units)
            bu._sync(device)
            times[path].append((time.process_time() - t_cpu) / units)
            walls[path].append((time.perf_counter() - t_wall) / units)
    peak = statistics.median(peaks)
    matmul_ms = {path: matmul_ms_per_unit(lambda n, a=agent: run(a, n), units, device)
                 for path, agent in agents.items()}
    row: dict[str, Any] = {"method": method, "size": size, **SIZES[size], "units_per_rep": units,
                           "reps": reps, "critic_steps_per_unit": d if agents["fast"].uses_critic else 0,
                           "flops_per_unit": flops, "peak_gflops_median": peak, "trial_peaks_gflops": peaks,
                           "fast_covered": agents["fast"].fast is not None}
    for path in agents:
        med = statistics.median(times[path])
        row[path] = {"cpu_ms_per_unit_median": 1e3 * med,
                     "cpu_ms_per_unit": [1e3 * t for t in times[path]],
                     "wall_ms_per_unit_median": 1e3 * statistics.median(walls[path]),
                     "first_call": first[path],
                     "fraction_of_peak": flops / med / 1e9 / peak,
                     "matmul_ms_per_unit": matmul_ms[path]}
    # no path that runs these matmuls can beat this: the reference's time over the fast
    # path's time inside the matmul kernels alone
    row["speedup_bound_matmuls"] = row["reference"]["cpu_ms_per_unit_median"] / matmul_ms["fast"]
    row["speedup_cpu"] = row["reference"]["cpu_ms_per_unit_median"] / row["fast"]["cpu_ms_per_unit_median"]
    # the fast path's compile, amortised: units after which it has paid for itself
    gain_s = (row["reference"]["cpu_ms_per_unit_median"] - row["fast"]["cpu_ms_per_unit_median"]) / 1e3
    compile_s = first["fast"]["wall_s"]
    row["fast_compile_wall_s"] = compile_s
    row["break_even_units"] = compile_s / gain_s if gain_s > 0 else None
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| size | method | GFLOP/unit | reference ms | fast ms | speed-up | % peak ref | % peak fast | fast ms in matmuls | bound | compile s | break-even units |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        be = r["break_even_units"]
        lines.append(
            f"| {r['size']} | {r['method']} | {r['flops_per_unit'] / 1e9:.3g} | "
            f"{r['reference']['cpu_ms_per_unit_median']:.2f} | {r['fast']['cpu_ms_per_unit_median']:.2f} | "
            f"{r['speedup_cpu']:.2f}x | {100 * r['reference']['fraction_of_peak']:.0f} % | "
            f"{100 * r['fast']['fraction_of_peak']:.0f} % | {r['fast']['matmul_ms_per_unit']:.2f} | "
            f"{r['speedup_bound_matmuls']:.2f}x | {r['fast_compile_wall_s']:.1f} | "
            f"{'-' if be is None else f'{be:.0f}'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["quick"], choices=list(SIZES))
    p.add_argument("--methods", nargs="+", default=["TD3+ODT"])
    p.add_argument("--reps", type=int, default=7, help="interleaved repetitions (paper: 3)")
    p.add_argument("--units", type=int, default=0,
                   help="units per timed block (default: 20 at quick, 2 at paper)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cold", action="store_true",
                   help="compile with a fresh, empty inductor cache (a cold compile)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/bench_fastpath.json"))
    args = p.parse_args(argv)
    if args.cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = bu.machine_info(args.threads, device)
    info["cold_compile_cache"] = args.cold
    rows = []
    for size in args.sizes:
        for method in args.methods:
            units = args.units or (20 if size == "quick" else 2)
            reps = args.reps if size == "quick" else min(args.reps, 3)
            rows.append(bench(method, size, device, reps, units))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result = {"schema": "odtbench.bench_fastpath/1", "machine": info, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(rows))
    print(f"load average before {info['loadavg_before']}, after {info['loadavg_after']}; "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
