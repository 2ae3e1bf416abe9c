#!/usr/bin/env python
"""Speed of the ODT-family agent: updates, training loop, inference, evaluation (issue 4, 8).

What it measures, per size (hopper shapes S=11, A=3, fp32, `--threads` threads):
- update throughput (updates/s; one update = one critic step + one actor step, the actor step
  with the online-phase loss, rl_coeff 0.1 for TD3+ODT; ODT has no critic, so its update is
  the actor step alone) on batches sampled beforehand;
- the FLOPs of one update, counted by torch's FlopCounterMode (every matmul, bmm and
  attention kernel the update runs, forward and backward; element-wise work is not counted),
  and the achieved FLOP/s against the fp32 matmul peak measured in the same trial;
- the whole training loop's unit, batch sampling included: `DTAgent.train_unit` (what
  `odtbench.runcore.dt_loop.DTRun.train_units` repeats), with 2 critic steps per actor step (MuJoCo),
  reported per actor update;
- policy inference (`DTAgent.act`) in ms per action, on the real context (T_eval steps) and,
  for comparison with the authors' code, on a context left-padded to K;
- evaluation env-steps/s on Hopper-v5 with the policy in the loop, 10 episodes in lockstep
  (`odtbench.runcore.evaluation.rollout`) against the same 10 episodes one at a time.

Every timing is repeated (`--repeats`) and reported as the median (and the best) over trials;
each update trial is preceded by its own matmul-peak probe, so the fraction of peak is taken
against the machine as it was at that moment (the CPU may be shared). Results go to a JSON
file and a Markdown table; `--table FILE` re-prints the table of an earlier run.

    python benchmarks/bench_updates.py                          # everything, 2 threads
    python benchmarks/bench_updates.py --sizes tiny small --skip-eval
    python benchmarks/bench_updates.py --variants base fused  # each speed option on/off
    python benchmarks/bench_updates.py --device cuda --variants base bf16 fused all
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.errors import OdtbenchError, UnknownChoiceError

S_DIM, A_DIM = 11, 3  # hopper
TASK = "mujoco/hopper-medium"  # its paper-scale hyperparameters; only the sizes below change
SIZES: dict[str, dict[str, int]] = {
    "paper": dict(embed_dim=512, n_layer=4, n_head=4, context_len=20, batch_size=256),
    "medium": dict(embed_dim=128, n_layer=3, n_head=1, context_len=20, batch_size=64),
    "small": dict(embed_dim=64, n_layer=2, n_head=1, context_len=10, batch_size=64),
    "tiny": dict(embed_dim=32, n_layer=1, n_head=1, context_len=5, batch_size=32),
}
METHODS = ("TD3+ODT", "ODT")
# Targets that are fractions of a peak measured in the same run (issue 4). Its speed-ups over the
# authors' code were quoted from another machine, so no ratio against them is computed here.
PEAK_TARGETS: dict[str, float] = {"paper": 0.85, "medium": 0.75}
TARGET_EVAL_LOCKSTEP = 5.0
# Named sets of the agent's speed options (odtbench.methods.dt_agent.SpeedOptions).
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "bf16": {"bf16": True},
    "fused": {"fused_optim": True},
    "all": {"bf16": True, "fused_optim": True},
    # the compiled unit (odtbench.fastpath): only the loop's unit (train_unit) takes it;
    # benchmarks/bench_fastpath.py times it against the reference
    "fast": {"path": "fast"},
}


# ----------------------------------------------------------------------------- helpers

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int = 2048, reps: int = 3) -> float:
    """Best fp32 GFLOP/s of an n x n @ n x n matmul: the machine's practical peak now."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up (thread pool, caches, cuBLAS handle)
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def hyperparameters(method: str, size: str) -> dict[str, Any]:
    """The method's paper-scale hopper hyperparameters with the benchmark size's dimensions."""
    from odtbench.hyperparameters.resolve import resolve

    if size not in SIZES:
        raise UnknownChoiceError("size", size, SIZES)
    hp = dict(resolve(TASK, method, "paper").hyperparameters)
    hp.update(SIZES[size])
    return hp


def synthetic_trajectories(n: int, seed: int) -> list:
    """Hopper-shaped trajectories of mixed lengths (short random-policy-like to full 1000),
    so sampled segments carry the usual share of left padding."""
    from odtbench.data import Trajectory

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        T = int(rng.integers(10, 60)) if i % 3 == 0 else int(rng.integers(200, 1001))
        obs = rng.normal(size=(T + 1, S_DIM)).astype(np.float32)
        term = np.zeros(T, dtype=bool)
        term[-1] = T < 1000
        out.append(Trajectory(observations=obs[:-1], actions=rng.uniform(-1, 1, (T, A_DIM)).astype(np.float32),
                              rewards=rng.uniform(0, 3, T).astype(np.float32),
                              next_observations=obs[1:], terminations=term,
                              truncations=~term & (np.arange(T) == T - 1)))
    return out


def make_sampler(hp: dict[str, Any], device: torch.device, seed: int = 0):
    from odtbench.data.replay import SegmentSampler

    trajs = synthetic_trajectories(60, seed)
    states = np.concatenate([t.observations for t in trajs])
    return SegmentSampler(trajs, states.mean(0), states.std(0) + 1e-6, hp["context_len"],
                          hp["reward_scale"], device)


def make_agent(hp: dict[str, Any], device: torch.device, speed: dict[str, Any]):
    from odtbench.methods.dt_agent import DTAgent, SpeedOptions

    torch.manual_seed(0)
    return DTAgent(hp, S_DIM, A_DIM, device=device, speed=SpeedOptions(**speed))


def coefficients(hp: dict[str, Any]) -> tuple[float, float]:
    """The online phase's (rl_coeff, sup_coeff): the RL term is part of the timed update."""
    return float(hp["rl_coeff"]), float(hp["sup_coeff"])


def one_update(agent, batch: dict[str, torch.Tensor], rl: float, sup: float) -> None:
    agent.critic_step(batch)  # a no-op returning {} for ODT (no critic)
    agent.actor_step(batch, rl_coeff=rl, sup_coeff=sup)


def flop_counter():
    """torch's FlopCounterMode, plus the CPU flash-attention kernels it does not know (without
    them every attention FLOP of an unmasked or causal forward on the CPU would go uncounted).
    Attention counts the full T x T scores, as torch does for the GPU kernels."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def fwd(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    def bwd(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: fwd,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: bwd})


def update_flops(hp: dict[str, Any], device: torch.device, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one update as counted op by op, on a fresh eager agent (counting under
    torch.compile would see the compiled graph, not the work)."""
    agent = make_agent(hp, device, {})
    rl, sup = coefficients(hp)
    counter = flop_counter()
    with counter:
        one_update(agent, batch, rl, sup)
    return int(counter.get_total_flops())


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _timed_trials(step, device: torch.device, repeats: int, min_time: float,
                  peak_n: int) -> dict[str, Any]:
    """`repeats` trials of as many `step()` calls as fill `min_time` (at least one), each
    preceded by a peak probe. Returns per-trial seconds per step and peaks."""
    step()  # warm-up: first-call allocations, lazy init, compilation
    step()
    _sync(device)
    per_step, peaks = [], []
    for _ in range(repeats):
        peaks.append(matmul_peak(device, peak_n))
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            _sync(device)
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        per_step.append(el / n)
    return {"seconds": per_step, "peaks_gflops": peaks}


# ----------------------------------------------------------------------------- benchmarks

def bench_updates(method: str, size: str, device: torch.device, speed: dict[str, Any],
                  args: argparse.Namespace) -> dict[str, Any]:
    hp = hyperparameters(method, size)
    sampler = make_sampler(hp, device)
    gen = torch.Generator().manual_seed(1)
    batches = [sampler.sample(hp["batch_size"], gen) for _ in range(4)]
    flops = update_flops(hp, device, batches[0])
    agent = make_agent(hp, device, speed)
    rl, sup = coefficients(hp)
    it = iter(range(1 << 62))

    def step() -> None:
        one_update(agent, batches[next(it) % len(batches)], rl, sup)

    trials = _timed_trials(step, device, args.repeats, args.min_time, args.peak_n)
    secs = trials["seconds"]
    fracs = [flops / s / 1e9 / p for s, p in zip(secs, trials["peaks_gflops"], strict=True)]
    return {
        "method": method, "size": size, **SIZES[size], "critic": agent.uses_critic,
        "flops_per_update": flops,
        "update_ms_median": 1e3 * _median(secs), "update_ms_best": 1e3 * min(secs),
        "updates_per_s_median": 1.0 / _median(secs),
        "achieved_gflops_median": flops / _median(secs) / 1e9,
        "peak_gflops_median": _median(trials["peaks_gflops"]),
        "peak_fraction_median": _median(fracs), "peak_fraction_best": max(fracs),
        "trials_ms": [1e3 * s for s in secs], "trial_peaks_gflops": trials["peaks_gflops"],
    }


def bench_loop(method: str, size: str, device: torch.device, speed: dict[str, Any],
               args: argparse.Namespace) -> dict[str, Any]:
    """The loop's own update unit (`DTAgent.train_unit`, as `DTRun.train_units` calls it),
    sampling included."""
    hp = hyperparameters(method, size)
    sampler = make_sampler(hp, device)
    agent = make_agent(hp, device, speed)
    rl, sup = coefficients(hp)
    gen = torch.Generator().manual_seed(2)
    B = hp["batch_size"]

    def step() -> None:
        agent.train_unit(lambda: sampler.sample(B, gen), rl, sup)

    trials = _timed_trials(step, device, args.repeats, args.min_time, args.peak_n)
    secs = trials["seconds"]
    return {"method": method, "size": size, "actor_update_interval": hp["actor_update_interval"],
            "loop_ms_per_actor_update_median": 1e3 * _median(secs),
            "loop_ms_per_actor_update_best": 1e3 * min(secs),
            "trials_ms": [1e3 * s for s in secs]}


def bench_inference(method: str, size: str, device: torch.device, speed: dict[str, Any],
                    args: argparse.Namespace) -> dict[str, Any]:
    """ms per action of DTAgent.act: real T_eval context (N=1 and N=10 in one call) and the
    authors' way, one context left-padded to K."""
    hp = hyperparameters(method, size)
    agent = make_agent(hp, device, speed)
    T, K = hp["eval_context_len"], hp["context_len"]
    g = torch.Generator().manual_seed(3)

    def ctx(n: int, t: int) -> tuple[torch.Tensor, ...]:
        return (torch.randn(n, t, S_DIM, generator=g).to(device),
                torch.rand(n, t, A_DIM, generator=g).to(device) * 2 - 1,
                torch.rand(n, t, generator=g).to(device) * 3.6)

    out: dict[str, Any] = {"method": method, "size": size, "eval_context_len": T}
    for key, n in (("act_ms_n1", 1), ("act_ms_per_action_n10", 10)):
        s, a, r = ctx(n, T)
        trials = _timed_trials(lambda s=s, a=a, r=r: agent.act(s, a, r), device,
                               args.repeats, args.min_time / 4, 256)
        out[key] = 1e3 * _median(trials["seconds"]) / n
    s, a, r = ctx(1, T)
    pad = K - T
    mask = torch.cat((torch.zeros(1, pad), torch.ones(1, T)), 1).to(device)
    padded = (torch.cat((torch.zeros(1, pad, S_DIM, device=device), s), 1),
              torch.cat((torch.zeros(1, pad, A_DIM, device=device), a), 1),
              torch.cat((torch.zeros(1, pad, device=device), r), 1))
    actor = agent.actor.eval()

    @torch.no_grad()
    def padded_act() -> None:
        actor(*padded, mask)

    trials = _timed_trials(padded_act, device, args.repeats, args.min_time / 4, 256)
    out["act_ms_padded_to_K"] = 1e3 * _median(trials["seconds"])
    return out


def bench_eval(method: str, size: str, device: torch.device, speed: dict[str, Any],
               args: argparse.Namespace) -> dict[str, Any]:
    """Hopper-v5 env-steps/s with the policy in the loop: 10 episodes in lockstep vs one at
    a time (same seeds, so the same episodes). An untrained policy falls within ~15 steps, so
    episodes run without the unhealthy termination, to `--eval-max-len` steps each, as a
    trained policy's do: the rate is the steady-state one, not episode set-up."""
    import gymnasium as gym

    from odtbench.runcore.evaluation import rollout

    hp = hyperparameters(method, size)
    agent = make_agent(hp, device, speed)
    n = args.eval_episodes
    envs = [gym.make("Hopper-v5", terminate_when_unhealthy=False) for _ in range(n)]
    seeds = list(range(n))
    kw = dict(state_mean=np.zeros(S_DIM, np.float32), state_std=np.ones(S_DIM, np.float32),
              target_rtg=hp["eval_rtg"], reward_scale=hp["reward_scale"],
              context_len=hp["eval_context_len"], max_len=args.eval_max_len, deterministic=True)

    def lockstep() -> int:
        return int(rollout(agent, envs, seeds, **kw).lengths.sum())

    def sequential() -> int:
        return sum(int(rollout(agent, [e], [s], **kw).lengths.sum())
                   for e, s in zip(envs, seeds, strict=True))

    res: dict[str, Any] = {"method": method, "size": size, "episodes": n}
    for name, fn in (("lockstep", lockstep), ("sequential", sequential)):
        fn()  # warm-up
        rates = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            steps = fn()
            rates.append(steps / (time.perf_counter() - t))
        res[f"{name}_env_steps_per_s"] = _median(rates)
        res["env_steps"] = steps
    res["lockstep_speedup"] = res["lockstep_env_steps_per_s"] / res["sequential_env_steps_per_s"]
    for e in envs:
        e.close()
    return res


# ----------------------------------------------------------------------------- verdicts + table

def verdicts(result: dict[str, Any]) -> None:
    """Compare with the targets measured within this run (fractions of its peak, lockstep
    against one-at-a-time evaluation); adds keys in place."""
    for row in result["updates"]:
        tgt = PEAK_TARGETS.get(row["size"])
        row["target"] = f">= {tgt:.0%} of peak" if tgt is not None else None
        row["meets_target"] = row["peak_fraction_median"] >= tgt if tgt is not None else None
    for row in result["eval"]:
        row["meets_target"] = row["lockstep_speedup"] >= TARGET_EVAL_LOCKSTEP


def _yes(flag: Any) -> str:
    return "" if flag is None else ("yes" if flag else "**no**")


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}, device "
             f"{result['device']}, variant `{result['variant']}`; load average before/after "
             f"{m['loadavg_before']} / {m['loadavg_after']}. Medians over {result['repeats']} trials.",
             ""]
    if result["updates"]:
        lines += ["| size | method | GFLOP/update | ms/update | updates/s | GFLOP/s | peak GFLOP/s | % of peak | target | met |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in result["updates"]:
            lines.append(f"| {r['size']} | {r['method']} | {r['flops_per_update'] / 1e9:.3g} | "
                         f"{r['update_ms_median']:.4g} | {r['updates_per_s_median']:.3g} | "
                         f"{r['achieved_gflops_median']:.3g} | {r['peak_gflops_median']:.3g} | "
                         f"{100 * r['peak_fraction_median']:.0f} % | {r.get('target') or '—'} | "
                         f"{_yes(r.get('meets_target'))} |")
        lines.append("")
    if result["loop"]:
        lines += ["| size | method | loop ms / actor update (2 critic + 1 actor + sampling) |",
                  "|---|---|---:|"]
        for r in result["loop"]:
            lines.append(f"| {r['size']} | {r['method']} | {r['loop_ms_per_actor_update_median']:.4g} |")
        lines.append("")
    if result["inference"]:
        lines += ["| size | method | act ms (N=1, T_eval) | act ms/action (N=10) | act ms, padded to K (authors' way) |",
                  "|---|---|---:|---:|---:|"]
        for r in result["inference"]:
            lines.append(f"| {r['size']} | {r['method']} | {r['act_ms_n1']:.3g} | "
                         f"{r['act_ms_per_action_n10']:.3g} | {r['act_ms_padded_to_K']:.3g} |")
        lines.append("")
    if result["eval"]:
        lines += ["| size | method | env-steps/s, 10 in lockstep | env-steps/s, one at a time | speed-up | met (>= 5x) |",
                  "|---|---|---:|---:|---:|---|"]
        for r in result["eval"]:
            lines.append(f"| {r['size']} | {r['method']} | {r['lockstep_env_steps_per_s']:.4g} | "
                         f"{r['sequential_env_steps_per_s']:.4g} | {r['lockstep_speedup']:.2g}x | "
                         f"{_yes(r['meets_target'])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- driver

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int, device: torch.device) -> dict[str, Any]:
    info = {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), help=f"subset of {list(SIZES)}")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"subset of {list(METHODS)}")
    p.add_argument("--variants", nargs="+", default=["base"],
                   help=f"speed-option sets to compare, each a full benchmark: {list(VARIANTS)}")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5, help="trials per measurement (median reported)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per update trial (>= 1 update)")
    p.add_argument("--peak-n", type=int, default=2048, help="matmul size of the peak probe")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-max-len", type=int, default=200, help="steps per evaluation episode")
    for part in ("updates", "loop", "inference", "eval"):
        p.add_argument(f"--skip-{part}", action="store_true")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/out/bench-<time>.json)")
    p.add_argument("--table", metavar="JSON", help="print the table of an earlier run and exit")
    args = p.parse_args(argv)
    for name, valid, kind in ((args.sizes, SIZES, "size"), (args.methods, METHODS, "method"),
                              (args.variants, VARIANTS, "variant")):
        for v in name:
            if v not in valid:
                raise UnknownChoiceError(kind, v, valid)
    if args.threads < 1 or args.repeats < 1:
        raise OdtbenchError("--threads and --repeats must be >= 1")
    return args


def run_variant(args: argparse.Namespace, variant: str, device: torch.device) -> dict[str, Any]:
    speed = VARIANTS[variant]
    result: dict[str, Any] = {"schema": "odtbench.bench/1", "variant": variant, "speed": speed,
                              "device": str(device), "repeats": args.repeats,
                              "machine": machine_info(args.threads, device),
                              "updates": [], "loop": [], "inference": [], "eval": []}
    parts = [("updates", bench_updates), ("loop", bench_loop), ("inference", bench_inference),
             ("eval", bench_eval)]
    for size in args.sizes:
        for method in args.methods:
            for part, fn in parts:
                if getattr(args, f"skip_{part}"):
                    continue
                t = time.perf_counter()
                row = fn(method, size, device, speed, args)
                row["wall_s"] = round(time.perf_counter() - t, 1)
                result[part].append(row)
                print(f"[{variant}] {part} {size} {method}: "
                      + ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                  if isinstance(v, float) and not k.endswith("_s")),
                      file=sys.stderr, flush=True)
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    verdicts(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        for res in json.loads(Path(args.table).read_text())["results"]:
            verdicts(res)  # today's verdicts: older files also stored ratios to another machine
            print(table(res), end="\n\n")
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = [run_variant(args, v, device) for v in args.variants]
    out = Path(args.out or f"benchmarks/out/bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv[1:], "results": results}, indent=1))
    for res in results:
        print(table(res), end="\n\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OdtbenchError as err:
        print(f"bench_updates: error: {err}", file=sys.stderr)
        sys.exit(2)
