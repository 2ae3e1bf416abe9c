#!/usr/bin/env python
"""Per-seed update throughput of packed seeds against unpacked ones (issue 14).

For each size and each S (default 1, 2, 5), one run times, interleaved A/B in every trial:
- unpacked: S `DTAgent`s, one update each in turn (`bench_updates.one_update`: one critic
  step + one actor step with the online loss);
- packed: one `PackedDTAgent` of S seeds, one packed update (the same steps for all S).
Both on batches sampled beforehand (one per seed), TD3+ODT's paper hopper hyperparameters
with the size's DT and batch (bench_updates.SIZES), fp32, `--threads` threads (default 1).
Per-seed throughput = seed-updates per second. Each trial first measures the fp32 matmul
peak (2048^3), and the fraction of peak counts the FLOPs of S unpacked updates
(bench_updates.update_flops) per packed update. Medians over `--repeats` trials; the order
of the two variants alternates between trials.

    python benchmarks/bench_packed.py                                # tiny + small, S 1 2 5
    python benchmarks/bench_packed.py --sizes small --seeds 1 5 16 --repeats 5
    python benchmarks/bench_packed.py --table benchmarks/results/cpu-1thread-packed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_updates as bu  # noqa: E402 - the sibling benchmark's helpers

METHOD = "TD3+ODT"


def _agents(hp: dict[str, Any], S: int, device: torch.device) -> list:
    from odtbench.methods.dt_agent import DTAgent

    out = []
    for s in range(S):
        torch.manual_seed(s)
        out.append(DTAgent(hp, bu.S_DIM, bu.A_DIM, device=device))
    return out


def _time(step, n_min: float) -> float:
    """Seconds per step(), over as many calls as fill n_min seconds (at least 2)."""
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        el = time.perf_counter() - t0
        if el >= n_min and n >= 2:
            return el / n


# The kernels FlopCounterMode counts (bench_updates.update_flops): their time is the matmul work.
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
              "aten::_scaled_dot_product_flash_attention_for_cpu",
              "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def matmul_seconds(step, n: int) -> float:
    """Seconds per step() spent inside the matmul kernels (profiler self time over n calls).

    The time a step would take if everything else (element-wise ops, optimiser steps, dropout
    masks, Python) cost nothing: the bound on how fast that step can get without faster
    matmuls."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            step()
    us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMUL_OPS)
    return us / 1e6 / n


def bench_size(size: str, seeds: list[int], device: torch.device,
               args: argparse.Namespace) -> list[dict[str, Any]]:
    from odtbench.methods.packed_agent import PackedDTAgent, stack_batches

    hp = bu.hyperparameters(METHOD, size)
    rl, sup = bu.coefficients(hp)
    sampler = bu.make_sampler(hp, device)
    gen = torch.Generator().manual_seed(1)
    S_max = max(seeds)
    batches = [[sampler.sample(hp["batch_size"], gen) for _ in range(2)] for _ in range(S_max)]
    flops = bu.update_flops(hp, device, batches[0][0])
    setups = {}
    for S in seeds:
        unpacked = _agents(hp, S, device)
        packed = PackedDTAgent(hp, _agents(hp, S, device),
                               [torch.Generator().manual_seed(100 + s) for s in range(S)])
        stacked = [stack_batches([batches[s][i] for s in range(S)]) for i in range(2)]
        it = iter(range(1 << 62))

        def unpacked_step(unpacked=unpacked, S=S, it=it) -> None:
            i = next(it) % 2
            for s in range(S):
                bu.one_update(unpacked[s], batches[s][i], rl, sup)

        def packed_step(packed=packed, stacked=stacked, it=it) -> None:
            b = stacked[next(it) % 2]
            packed.critic_step(b)
            packed.actor_step(b, rl_coeff=rl, sup_coeff=sup)

        for step in (unpacked_step, packed_step):  # warm-up
            step()
            step()
        setups[S] = {"unpacked": unpacked_step, "packed": packed_step}
    trials: dict[int, dict[str, list[float]]] = {S: {"unpacked": [], "packed": []} for S in seeds}
    peaks = []
    for r in range(args.repeats):
        peaks.append(bu.matmul_peak(device, args.peak_n))
        for S in seeds:
            order = ("unpacked", "packed") if r % 2 == 0 else ("packed", "unpacked")
            for variant in order:
                trials[S][variant].append(_time(setups[S][variant], args.min_time))
    peak = statistics.median(peaks)
    # one profiled pass after the timed trials, so the profiler's overhead touches no timing
    mm_s = {S: {v: matmul_seconds(setups[S][v], args.profile_steps) for v in ("unpacked", "packed")}
            for S in seeds}
    rows = []
    for S in seeds:
        med = {v: statistics.median(trials[S][v]) for v in ("unpacked", "packed")}
        per_seed = {v: S / med[v] for v in med}  # seed-updates per second
        rows.append({
            "size": size, "method": METHOD, "S": S, **bu.SIZES[size], "flops_per_update": flops,
            "unpacked_ms_per_seed_update": 1e3 * med["unpacked"] / S,
            "packed_ms_per_seed_update": 1e3 * med["packed"] / S,
            "unpacked_seed_updates_per_s": per_seed["unpacked"],
            "packed_seed_updates_per_s": per_seed["packed"],
            "packed_speedup": per_seed["packed"] / per_seed["unpacked"],
            "unpacked_peak_fraction": S * flops / med["unpacked"] / 1e9 / peak,
            "packed_peak_fraction": S * flops / med["packed"] / 1e9 / peak,
            "peak_gflops_median": peak,
            "unpacked_matmul_ms_per_seed_update": 1e3 * mm_s[S]["unpacked"] / S,
            "packed_matmul_ms_per_seed_update": 1e3 * mm_s[S]["packed"] / S,
            # the packed update's matmul kernels alone, as a fraction of the peak
            "packed_matmul_peak_fraction": S * flops / mm_s[S]["packed"] / 1e9 / peak,
            # the speed-up packing would give if all but the packed matmuls cost nothing
            "matmul_bound_speedup": med["unpacked"] / mm_s[S]["packed"],
            "trials_ms": {v: [1e3 * t for t in trials[S][v]] for v in trials[S]},
        })
    return rows


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} thread(s), torch "
             f"{m['torch']}; load average before/after {m['loadavg_before']} / "
             f"{m['loadavg_after']}; {result['repeats']} interleaved trials of "
             f">= {result['min_time']} s each, medians. {METHOD}, one update = 1 critic + "
             "1 actor step.", "",
             "| size (embed/layers/K/batch) | S | unpacked ms / seed-update | packed ms / seed-update "
             "| per-seed speed-up | % of peak unpacked | % of peak packed | peak GFLOP/s "
             "| speed-up at 100 % of peak | packed matmuls' % of peak | speed-up if only matmuls cost |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        dims = f"{r['embed_dim']}/{r['n_layer']}/K{r['context_len']}/B{r['batch_size']}"
        lines.append(f"| {r['size']} ({dims}) | {r['S']} | {r['unpacked_ms_per_seed_update']:.3g} | "
                     f"{r['packed_ms_per_seed_update']:.3g} | {r['packed_speedup']:.2f}x | "
                     f"{100 * r['unpacked_peak_fraction']:.0f} % | "
                     f"{100 * r['packed_peak_fraction']:.0f} % | {r['peak_gflops_median']:.3g} | "
                     # the speed-up if a packed update ran at 100 % of this run's peak: the
                     # arithmetic's bound on what packing can give at this size
                     f"{1 / r['unpacked_peak_fraction']:.2f}x | "
                     # the packed update's matmul kernels alone (profiled): a packed update
                     # cannot beat them without faster matmuls
                     + (f"{100 * r['packed_matmul_peak_fraction']:.0f} % | "
                        f"{r['matmul_bound_speedup']:.2f}x |" if "matmul_bound_speedup" in r
                        else "— | — |"))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(bu.SIZES))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 5], help="the S values")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5, help="seconds per timed trial")
    p.add_argument("--profile-steps", type=int, default=5,
                   help="steps of each variant profiled for the matmul-kernel time")
    p.add_argument("--peak-n", type=int, default=2048)
    p.add_argument("--device", default="cpu", choices=["cpu"], help="packed seeds are CPU-only")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/out/packed-<time>.json)")
    p.add_argument("--table", default=None, help="print the table of an earlier JSON and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"machine": bu.machine_info(args.threads, device),
                              "repeats": args.repeats, "min_time": args.min_time, "rows": []}
    for size in args.sizes:
        result["rows"] += bench_size(size, sorted(args.seeds), device, args)
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out or f"benchmarks/out/packed-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv[1:], **result}, indent=1))
    print(table(result))
    print(f"\n{result['wall_s']} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
