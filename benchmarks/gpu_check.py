#!/usr/bin/env python
"""The paper scale on one GPU, measured within a fixed time budget (issue 15).

`benchmarks/gpu_check.sh` runs this. One command writes one JSON and one Markdown table to
`benchmarks/out/` (git-ignored; or `--out-dir`) with:

- the machine: GPU name, memory, driver, torch / CUDA / cuDNN versions, CPU;
- dense matmul throughput, bf16, fp32 (TF32 off, torch's default) and TF32, one large GEMM;
- the paper-size update (512/4/4, K 20, batch 256, hopper shapes S 11, A 3) of TD3+ODT and
  ODT with each speed option alone (`odtbench.methods.dt_agent.SpeedOptions`) and the best
  combination: ms per update on batches sampled beforehand, the training loop
  (`DTAgent.train_unit`, sampling and the 2:1 critic:actor schedule included), the
  first call's time (compilation) separately, and the fraction of the matmul peak reached
  (FLOPs counted op by op with torch.utils.flop_counter on an eager fp32 agent);
- a short real run: `odtbench run` of TD3+ODT on hopper-random at the paper scale for a fixed
  time with the best options, on a random dataset the script builds (smaller than the
  paper's 1M transitions, which take minutes to build), timed around the loop's own methods;
  and from its rates the hours of one paper run and of the 420-run MuJoCo table.

Every part runs in its own forked child process with its own time slice; one that runs out
is killed and recorded as skipped, so the whole check never exceeds `--budget` (at most
480 s). The parent never initialises CUDA (children could not use it after the fork).

    benchmarks/gpu_check.sh                          # on a CUDA machine: the real check
    python benchmarks/gpu_check.py --device cpu --tiny --out-dir "$TMPDIR/x"  # the path, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# torch.cuda.is_available() through NVML, which is fork-safe: should any import ask before
# the parent forks its parts, the children can still initialise CUDA themselves.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
for _p in (REPO, REPO / "benchmarks"):  # odtbench without an install; bench_updates' helpers
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

SCHEMA = "odtbench.gpu_check/1"
BUDGET_MAX_S = 480.0  # the issue's 8 minutes
TASK = "mujoco/hopper-random"
RUN_METHOD = "TD3+ODT"
METHODS = ("TD3+ODT", "ODT")
MUJOCO_TABLE_RUNS = 420  # 12 datasets x 7 methods x 5 seeds (docs/cluster.md)
TARGETS = {"update_ms": 40.0, "paper_run_hours": 1.0, "mujoco_table_gpu_hours": 150.0}
# Each speed option alone (SpeedOptions fields); "best" is built from the measured winners.
SINGLE: dict[str, dict[str, Any]] = {
    "base": {},
    "bf16": {"bf16": True},
    "fused": {"fused_optim": True},
    "resident": {"resident_sampling": True},
    "fast": {"path": "fast"},  # the compiled unit (odtbench.fastpath), CUDA graphs on a GPU
}
COMPILED = ("fast",)
# The fast path runs without these (it would fall back to the reference path with them)
NOT_WITH_FAST = ("bf16", "fused")
# An option joins the best combination only if it beats base by more than this (noise).
WIN_MARGIN = 0.97
# Modules each part imports, and what to install when one is missing.
NEEDS = {
    "updates": ["torch", "numpy", "odtbench.methods.dt_agent", "odtbench.data.replay",
                "bench_updates"],
    "run": ["gymnasium", "mujoco", "minari", "h5py", "tqdm", "odtbench.runcore.dt_loop", "odtbench.cli",
            "odtbench.data.build"],
}
PIP_NAMES = {"mujoco": "mujoco==4.0.0", "gymnasium": "gymnasium==1.4.0",
             "minari": "minari[hdf5]==0.5.4", "h5py": "h5py", "yaml": "pyyaml"}
STARTED_ENV = "GPU_CHECK_STARTED"  # epoch seconds when gpu_check.sh started: its time counts


# ----------------------------------------------------------------------------- settings

def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes and time slices (seconds) of every part; --tiny shrinks all of them."""
    if args.tiny:
        return {"size": "tiny", "gemm_n": 256, "repeats": 2, "min_time": 0.05, "peak_n": 64,
                "run_scale": "smoke", "run_seconds": 90.0, "dataset_transitions": 2_000,
                "run_overrides": [], "slices": {"info": 60, "matmul": 60, "eager": 90,
                                                "compiled": 120, "best": 120, "run": 120}}
    return {"size": "paper", "gemm_n": 8192, "repeats": 3, "min_time": 0.4, "peak_n": 2048,
            "run_scale": "paper", "run_seconds": float(args.run_seconds),
            "dataset_transitions": int(args.dataset_transitions),
            # schedule only, so a 2-minute run reaches the online phase and a few evaluations;
            # sizes, batch and optimisers stay the paper's
            "run_overrides": ["pretrain_updates=300", "checkpoint_every_updates=100",
                              "eval_interval=2"],
            "slices": {"info": 30, "matmul": 30, "eager": 25, "compiled": 100, "best": 80,
                       "run": float(args.run_seconds) + 45}}


# ----------------------------------------------------------------------------- helpers

def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def missing_modules(names: list[str]) -> dict[str, str]:
    """{module that does not import: the requirement to install} among `names`."""
    out: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            root = (getattr(exc, "name", None) or name).split(".")[0]
            out[name] = PIP_NAMES.get(root, root)
            if root in ("odtbench", "bench_updates"):
                out[name] = "this repository: run from its root, or `pip install -e .`"
    return out


# ----------------------------------------------------------------------------- parts (children)

def part_info(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from bench_updates import _cpu_name

    info: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                            "python": platform.python_version(), "cpu": _cpu_name(),
                            "cpu_cores": os.cpu_count(),
                            "loadavg": [round(x, 2) for x in os.getloadavg()]}
    if spec["device"] != "cuda":
        info["device_name"] = f"CPU: {info['cpu']}"
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                   / 2**30, 1)
        return info
    if not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no "
                           "CUDA device; check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
    p = torch.cuda.get_device_properties(0)
    info.update(device_name=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                cudnn=torch.backends.cudnn.version(), device_count=torch.cuda.device_count())
    info["driver"] = "unknown (nvidia-smi not found)"
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=15)
            info["driver"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 else \
                f"unknown (nvidia-smi: {q.stderr.strip()[:100]})"
    return info


def part_matmul(spec: dict[str, Any]) -> dict[str, Any]:
    """Dense n x n @ n x n GEMM throughput, best of 3 trials, per dtype (TFLOP/s)."""
    import torch

    dev, n = torch.device(spec["device"]), spec["gemm_n"]
    out: dict[str, Any] = {"n": n, "method": "best of 3 timed trials of back-to-back torch.mm"}
    old = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                              ("tf32", torch.float32, True)):
        if name == "tf32" and dev.type != "cuda":
            continue
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        a @ b
        _sync(dev)
        t = time.perf_counter()  # size the trial to ~0.3 s
        a @ b
        _sync(dev)
        reps = max(1, min(200, int(0.3 / max(time.perf_counter() - t, 1e-6))))
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            _sync(dev)
            best = min(best, (time.perf_counter() - t) / reps)
        out[f"{name}_tflops"] = 2.0 * n**3 / best / 1e12
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = old
    return out


def part_update(spec: dict[str, Any]) -> dict[str, Any]:
    """One (method, speed options) cell: updates on pre-sampled batches, then the loop's
    unit (`DTAgent.train_unit`) on the same agent (so compilation happens once), sampling
    included."""
    import bench_updates as bu
    import torch

    torch.set_num_threads(spec["threads"])
    dev = torch.device(spec["device"])
    method, speed = spec["method"], spec["speed"]
    hp = bu.hyperparameters(method, spec["size"])
    sampler = bu.make_sampler(hp, dev)
    gen = torch.Generator().manual_seed(1)
    batches = [sampler.sample(hp["batch_size"], gen) for _ in range(4)]
    row: dict[str, Any] = {"method": method, "variant": spec["variant"], "speed": speed,
                           **bu.SIZES[spec["size"]]}
    if spec["count_flops"]:
        row["flops_per_update"] = bu.update_flops(hp, dev, batches[0])
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    agent = bu.make_agent(hp, dev, speed)
    rl, sup = bu.coefficients(hp)
    it = iter(range(1 << 62))

    def step() -> None:
        bu.one_update(agent, batches[next(it) % len(batches)], rl, sup)

    for key in ("first_call_s", "second_call_s"):  # the first call compiles, when asked
        t = time.perf_counter()
        step()
        _sync(dev)
        row[key] = time.perf_counter() - t
    trials = bu._timed_trials(step, dev, spec["repeats"], spec["min_time"], spec["peak_n"])
    secs = trials["seconds"]
    row.update(update_ms_median=1e3 * statistics.median(secs), update_ms_best=1e3 * min(secs),
               trials_ms=[1e3 * s for s in secs])
    row["updates_per_s"] = 1e3 / row["update_ms_median"]
    row["compile_s"] = max(0.0, row["first_call_s"] - row["update_ms_median"] / 1e3) \
        if speed.get("path") == "fast" else 0.0
    if dev.type == "cuda":
        row["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    # The loop's own unit: d critic steps + 1 actor step + d sampled batches; resident_sampling
    # draws the indices on the device, as odtbench.runcore.dt_loop.DTRun does.
    sgen = torch.Generator(dev).manual_seed(2) if speed.get("resident_sampling") and \
        dev.type != "cpu" else torch.Generator().manual_seed(2)
    B = hp["batch_size"]
    trials = bu._timed_trials(lambda: agent.train_unit(lambda: sampler.sample(B, sgen), rl, sup),
                              dev, spec["repeats"], spec["min_time"], spec["peak_n"])
    row.update(loop_ms_per_unit_median=1e3 * statistics.median(trials["seconds"]),
               actor_update_interval=hp["actor_update_interval"])
    return row


def part_run(spec: dict[str, Any]) -> dict[str, Any]:
    """`odtbench run` (the CLI's own entry point, in this process) with timers around the
    loop's methods, writing one JSON line per timed call to spec['events']; stops itself after
    spec['run_seconds']. The parent reads the events (also when this child was killed)."""
    import dataclasses
    import threading

    import torch

    torch.set_num_threads(spec["threads"])
    root = Path(spec["workdir"])
    os.environ["MINARI_DATASETS_PATH"] = str(root / "datasets")
    os.environ["ODTBENCH_SPEED"] = spec["speed_text"]
    os.environ["ODTBENCH_PROGRESS"] = "0"
    os.environ.pop("ODTBENCH_DATASET_SCALE", None)  # the loop must load the dataset built here
    events = open(spec["events"], "a", buffering=1)  # noqa: SIM115 - lives as long as the child
    t_origin = time.perf_counter()

    def emit(kind: str, t0: float, **kw: Any) -> None:
        now = time.perf_counter()
        events.write(json.dumps({"kind": kind, "t0": t0 - t_origin, "t1": now - t_origin,
                                 "s": now - t0, **kw}) + "\n")

    # A smaller random dataset under the scale's id, built by the suite's own recipe.
    from odtbench.data import recipes
    from odtbench.data.build import build_dataset

    scale = spec["scale"]
    recipes.SCALES[scale] = dataclasses.replace(recipes.SCALES[scale],
                                                random_transitions=spec["dataset_transitions"])
    t = time.perf_counter()
    info = build_dataset(TASK, scale, progress=False)
    emit("dataset", t, id=info["id"], transitions=info["stats"]["transitions"],
         episodes=info["stats"]["episodes"])

    from odtbench.runcore.core import RunCore
    from odtbench.runcore.dt_loop import DTRun

    dev = spec["device"]

    def timed(cls: type, name: str, describe: Callable[[Any, dict[str, Any]], dict[str, Any]]) -> None:
        """Time cls.<name> (the DT loop or its run core); `describe(obj, state before)` reads
        what the call did from the run's counters, so the timers do not depend on the method's
        signature."""
        orig = getattr(cls, name)

        def wrapper(self: Any, *a: Any, **kw: Any) -> Any:
            before = self.state.counters()
            t0 = time.perf_counter()
            out = orig(self, *a, **kw)
            _sync(dev)  # the work queued on the GPU belongs to this call
            try:
                info = describe(self, before)
            except Exception as exc:  # noqa: BLE001 - a timer must never end the run
                info = {"describe_error": repr(exc)}
            emit(name, t0, **info)
            return out

        setattr(cls, name, wrapper)

    def delta(run: Any, before: dict[str, Any], key: str) -> int:
        return int(getattr(run.state, key) - before.get(key, 0))

    timed(DTRun, "train_units", lambda run, b: {
        "phase": run.state.phase, "d": run.hp.actor_update_interval,
        "units": delta(run, b, "gradient_steps")})
    timed(DTRun, "collect", lambda run, b: {"transitions": delta(run, b, "online_transitions"),
                                            "episodes": delta(run, b, "episodes")})
    timed(RunCore, "evaluate", lambda run, b: {
        "phase": run.state.curve[-1]["phase"], "episodes": run.hp.eval_episodes,
        "env_steps": run.state.curve[-1]["length_mean"] * run.hp.eval_episodes,
        "score": run.state.curve[-1]["score_mean"]})
    timed(RunCore, "save_checkpoint", lambda run, b: {})

    def stop() -> None:  # the fixed duration: stop the run where it is
        emit("stopped", t_cli)
        events.flush()
        Path(spec["_result"]).write_text(json.dumps({"status": "ok", "ended": "stopped"}))
        os._exit(0)

    argv = ["run", "--task", TASK, "--method", RUN_METHOD, "--seed", "0", "--scale", scale,
            "--device", dev, "--out", str(root / "run")]
    for item in spec["overrides"]:
        argv += ["--set", item]
    t_cli = time.perf_counter()
    emit("start", t_cli, argv=argv, speed=spec["speed_text"])
    timer = threading.Timer(spec["run_seconds"], stop)
    timer.daemon = True
    timer.start()
    from odtbench.cli import main as cli_main

    rc = cli_main(argv)
    timer.cancel()
    emit("finished", t_cli, rc=rc)
    events.flush()
    return {"rc": rc}


PARTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "info": part_info, "matmul": part_matmul, "update": part_update, "run": part_run}


# ----------------------------------------------------------------------------- the parent

def _child(kind: str, spec: dict[str, Any], out: str) -> None:
    os.setpgrp()  # its own process group: a timeout kills compile workers too
    try:
        res = {"status": "ok", **PARTS[kind](spec)}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        tb = traceback.format_exc().strip().splitlines()
        res = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500],
               "traceback_tail": tb[-6:]}
    Path(out).write_text(json.dumps(res, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown (compile worker pools, CUDA) in the child


_RUNNING: list[int] = []  # the pid (= process group) of the part running now


def _on_term(signum: int, frame: Any) -> None:
    """Killed from outside (gpu_check.sh's guard, Ctrl-C): take the running part along."""
    for pid in _RUNNING:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    sys.exit(128 + signum)


class Budget:
    """The total time budget; each part gets min(its slice, what is left minus reserves)."""

    def __init__(self, total: float, already_spent: float = 0.0):
        self.total, self.t0 = total, time.monotonic() - max(0.0, already_spent)

    def left(self) -> float:
        return self.total - (time.monotonic() - self.t0)


def run_part(name: str, kind: str, spec: dict[str, Any], slice_s: float, budget: Budget,
             reserve: float, tmp: Path, log: Callable[[str], None],
             start_method: str = "fork") -> dict[str, Any]:
    """Run one part in a child process, killed at its slice; returns its record."""
    avail = budget.left() - reserve
    limit = min(slice_s, avail)
    rec: dict[str, Any] = {"part": name, "slice_s": round(slice_s, 1)}
    if avail < 3:
        rec.update(status="skipped", reason="no time left in the total budget", wall_s=0.0)
        log(f"{name}: skipped (no time left)")
        return rec
    out = tmp / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.json"
    spec = {**spec, "_result": str(out)}
    proc = mp.get_context(start_method).Process(target=_child, args=(kind, spec, str(out)))
    t = time.monotonic()
    proc.start()
    _RUNNING[:] = [proc.pid]
    proc.join(limit)
    if proc.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.join()
        rec.update(status="skipped", reason=f"ran out of its {limit:.0f} s time slice")
    elif out.is_file():
        rec.update(json.loads(out.read_text()))
    else:
        rec.update(status="error", reason=f"child exited with code {proc.exitcode}, no result")
    # a killed child's process group may still hold compile workers
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _RUNNING.clear()
    rec["wall_s"] = round(time.monotonic() - t, 2)
    log(f"{name}: {rec['status']} in {rec['wall_s']:.1f} s"
        + (f" ({rec['reason']})" if rec.get("reason") else ""))
    return rec


def _cost(r: dict[str, Any]) -> float:
    """What the best options are judged on: the loop's ms per unit (sampling and the 2:1
    schedule included), or the update's where the loop was not measured."""
    return r.get("loop_ms_per_unit_median") or r.get("update_ms_median") or math.inf


def choose_best(rows: dict[str, dict[str, Any]], device: str) -> tuple[dict[str, Any], list[str]]:
    """The speed options that each beat base by more than the noise margin, combined (only
    the fast path without bf16 and fused, which it does not cover); judged on the loop's time per unit, sampling included.
    resident_sampling does nothing on the CPU, so it never joins there."""
    def cost(r: dict[str, Any] | None) -> float | None:
        return _cost(r) if r and r.get("status") == "ok" else None

    base = cost(rows.get("base"))
    if base is None:
        return {}, []
    wins = [v for v in SINGLE if v != "base" and (c := cost(rows.get(v))) is not None
            and c < WIN_MARGIN * base and not (v == "resident" and device == "cpu")]
    if any(v in COMPILED for v in wins):
        wins = [v for v in wins if v not in NOT_WITH_FAST]
    speed: dict[str, Any] = {}
    for v in wins:
        speed.update(SINGLE[v])
    return speed, wins


def speed_text(speed: dict[str, Any]) -> str:
    """SpeedOptions.parse's comma form ("" = the reference path)."""
    return ",".join(f"{k}={v}" if k == "path" else k for k, v in speed.items() if v)


# ----------------------------------------------------------------------------- analysis

def read_events(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by the kill
                out.append(json.loads(line))
    return out


def analyse_run(events: list[dict[str, Any]], paper_hp: dict[str, Any]) -> dict[str, Any]:
    """Rates from the timed calls, and the hours of one paper run extrapolated from them."""
    res: dict[str, Any] = {}
    ds = [e for e in events if e["kind"] == "dataset"]
    if ds:
        res["dataset"] = {k: ds[0][k] for k in ("id", "transitions", "episodes")}
        res["dataset"]["build_s"] = ds[0]["s"]
    start = next((e for e in events if e["kind"] == "start"), None)
    end = next((e for e in events if e["kind"] in ("stopped", "finished")), None)
    if start is None:
        return res
    res["argv"], res["speed"] = start["argv"], start["speed"]
    res["ended"] = end["kind"] if end else "killed at the slice"
    last = max(e["t1"] for e in events)
    res["wall_s"] = (end["t1"] if end else last) - start["t0"]
    units = [e for e in events if e["kind"] == "train_units" and e.get("units")]
    if units:
        res["startup_s"] = units[0]["t0"] - start["t0"]  # imports, data, envs, agent
    for phase in ("pretrain", "online"):
        calls = [e for e in units if e["phase"] == phase]
        if not calls:
            continue
        steady = calls[1:] or calls  # the phase's first call compiles its graphs
        spu = sum(e["s"] for e in steady) / sum(e["units"] for e in steady)
        d = calls[0]["d"]
        res[phase] = {"calls": len(calls), "units": sum(e["units"] for e in calls),
                      "s_per_unit": spu, "actor_updates_per_s": 1 / spu,
                      "critic_updates_per_s": d / spu, "first_call_s": calls[0]["s"],
                      "first_call_extra_s": max(0.0, calls[0]["s"] - calls[0]["units"] * spu),
                      "steady_from_first_call": len(calls) == 1}
    col = [e for e in events if e["kind"] == "collect" and e.get("transitions")]
    if col:
        n = sum(e["transitions"] for e in col)
        res["collect"] = {"calls": len(col), "transitions": n,
                          "episodes": sum(e["episodes"] for e in col),
                          "transitions_per_iter": n / len(col),
                          "transitions_per_s": n / sum(e["s"] for e in col)}
        online = [e for e in events if e["t0"] >= col[0]["t0"] and e["kind"] != "stopped"]
        span = max(e["t1"] for e in online) - col[0]["t0"]
        res["online_transitions_per_wall_s"] = n / span if span > 0 else None
    ev = [e for e in events if e["kind"] == "evaluate" and e.get("env_steps")]
    if ev:
        steps = sum(e["env_steps"] for e in ev)
        res["evaluate"] = {"calls": len(ev), "mean_s": statistics.mean(e["s"] for e in ev),
                           "env_steps": steps, "s_per_env_step": sum(e["s"] for e in ev) / steps,
                           "mean_episode_len": steps / sum(e["episodes"] for e in ev),
                           "scores": [e["score"] for e in ev]}
    ck = [e for e in events if e["kind"] == "save_checkpoint"]
    if ck:
        res["checkpoint"] = {"calls": len(ck), "mean_s": statistics.mean(e["s"] for e in ck)}
    res["extrapolation"] = extrapolate(res, paper_hp)
    return res


def extrapolate(r: dict[str, Any], hp: dict[str, Any]) -> dict[str, Any]:
    """One paper run = the paper schedule's counts x the measured rates (evaluations as if
    every episode ran its full length: an upper bound on that term)."""
    spu_on = (r.get("online") or {}).get("s_per_unit")
    spu_pre = (r.get("pretrain") or {}).get("s_per_unit", spu_on)
    if spu_on is None or "collect" not in r or "evaluate" not in r:
        return {"status": "not possible",
                "reason": "the run did not reach an online iteration and an evaluation in its "
                          "time; give it more --run-seconds"}
    per_iter = max(hp["min_transitions_per_iter"], r["collect"]["transitions_per_iter"])
    iters = min(hp["max_online_iters"], math.ceil(hp["online_budget"] / per_iter))
    pre_units = hp["pretrain_updates"] * hp["pretrain_iters"]
    evals = hp["pretrain_iters"] + math.ceil(iters / hp["eval_interval"])
    ckpts = iters + 1 + hp["pretrain_iters"] * (
        1 + math.ceil(hp["pretrain_updates"] / hp["checkpoint_every_updates"]))
    parts = {
        "pretrain_updates_h": pre_units * spu_pre / 3600,
        "online_updates_h": iters * hp["online_updates_per_iter"] * spu_on / 3600,
        "collection_h": hp["online_budget"] / r["collect"]["transitions_per_s"] / 3600,
        "evaluation_h_upper": evals * hp["eval_episodes"] * hp["max_episode_len"]
        * r["evaluate"]["s_per_env_step"] / 3600,
        "checkpoints_h": ckpts * (r.get("checkpoint") or {}).get("mean_s", 0.0) / 3600,
        "startup_h": r.get("startup_s", 0.0) / 3600,
        # what each phase's first call took beyond a steady one: compilation, once per run
        "first_calls_h": sum((r.get(p) or {}).get("first_call_extra_s", 0.0)
                             for p in ("pretrain", "online")) / 3600,
    }
    hours = sum(parts.values())
    return {"status": "ok", "schedule": {
        "pretrain_units": pre_units, "online_iterations": iters,
        "online_units": iters * hp["online_updates_per_iter"], "evaluations": evals,
        "checkpoints": ckpts, "online_transitions": hp["online_budget"],
        "transitions_per_iteration": per_iter},
        **parts, "one_run_hours": hours,
        "mujoco_table_runs": MUJOCO_TABLE_RUNS,
        "mujoco_table_gpu_hours": MUJOCO_TABLE_RUNS * hours,
        "mujoco_table_note": "every run costed as this TD3+ODT hopper-random run; one run per "
                             "GPU at a time"}


# ----------------------------------------------------------------------------- the report

def _f(x: Any, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    mm = res.get("matmul", {})
    L = [f"# GPU check: {m.get('device_name', '?')}", "",
         f"{res['started_utc']}, device `{res['device']}`{' (tiny mode)' if res['tiny'] else ''}, "
         f"total {res['total_wall_s']:.0f} s of a {res['budget_s']:.0f} s budget. "
         f"torch {m.get('torch')} (CUDA {m.get('torch_cuda')}, cuDNN {m.get('cudnn', '—')}), "
         f"driver {m.get('driver', '—')}, {m.get('memory_gib', '?')} GiB, "
         f"CPU {m.get('cpu')} ({m.get('cpu_cores')} cores).", "",
         "| matmul (dense GEMM) | n | TFLOP/s |", "|---|---:|---:|"]
    for k in ("bf16", "fp32", "tf32"):
        if f"{k}_tflops" in mm:
            L.append(f"| {k} | {mm['n']} | {mm[f'{k}_tflops']:.4g} |")
    L += ["", f"Update of size {res['size']} (one critic + one actor step; ODT: actor only); loop "
          "= `DTRun.train_units`, per actor update with its 2 critic steps and sampling. % of peak: "
          f"FLOPs by {res['flop_count']} over the bf16 / fp32 GEMM rate above.", "",
          "| method | variant | ms/update | updates/s | loop ms/unit | × base (loop) | first call s | "
          "compile s | % bf16 peak | % fp32 peak | status |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["updates"]:
        L.append(f"| {r['method']} | {r['variant']} | {_f(r.get('update_ms_median'), '.4g')} | "
                 f"{_f(r.get('updates_per_s'))} | {_f(r.get('loop_ms_per_unit_median'), '.4g')} | "
                 f"{_f(r.get('speedup_loop_vs_base'))} | {_f(r.get('first_call_s'))} | "
                 f"{_f(r.get('compile_s'))} | {_f(r.get('pct_bf16_peak'), '.2g')} | "
                 f"{_f(r.get('pct_fp32_peak'), '.2g')} | {r['status']}"
                 f"{': ' + r['reason'] if r.get('reason') else ''} |")
    L.append("")
    for meth, b in res["best"].items():
        L.append(f"- best for {meth}: `{b['speed_text'] or '(reference path)'}` "
                 f"(from {', '.join(b['from']) or 'no option beating base'}; "
                 f"its numbers: row `{b['variant']}`)")
    L.append("")
    run = res["run"]
    L += [f"Short real run ({run.get('status')}{': ' + run['reason'] if run.get('reason') else ''}):"
          f" `odtbench {' '.join(run.get('argv', []))}`, speed "
          f"`{run.get('speed') or '(reference path)'}`, "
          f"{_f(run.get('wall_s'), '.0f')} s, ended: {run.get('ended', '—')}. Dataset: "
          f"{run.get('dataset_note', '—')}", ""]
    rows = []
    for ph in ("pretrain", "online"):
        if ph in run:
            p = run[ph]
            rows.append(f"| {ph} updates | {p['units']} actor updates in {p['calls']} calls: "
                        f"{p['actor_updates_per_s']:.3g} actor + {p['critic_updates_per_s']:.3g} "
                        f"critic updates/s; first call {p['first_call_s']:.3g} s |")
    if "collect" in run:
        c = run["collect"]
        rows.append(f"| collection | {c['transitions']} transitions, {c['episodes']} episodes: "
                    f"{c['transitions_per_s']:.4g} transitions/s while collecting; "
                    f"{_f(run.get('online_transitions_per_wall_s'), '.3g')} per wall-clock s online |")
    if "evaluate" in run:
        e = run["evaluate"]
        rows.append(f"| evaluation | {e['calls']} evaluations, mean {e['mean_s']:.3g} s, mean "
                    f"episode {e['mean_episode_len']:.0f} steps, {e['s_per_env_step'] * 1e3:.3g} ms "
                    "per env-step |")
    if "checkpoint" in run:
        rows.append(f"| checkpoints | {run['checkpoint']['calls']}, mean "
                    f"{run['checkpoint']['mean_s']:.3g} s |")
    if rows:
        L += ["| part | measured |", "|---|---|", *rows, ""]
    ex = run.get("extrapolation", {})
    if ex.get("status") == "ok":
        s = ex["schedule"]
        L += [f"Extrapolated to one paper run ({s['pretrain_units']} pretraining + "
              f"{s['online_units']} online actor updates in {s['online_iterations']} iterations, "
              f"{s['online_transitions']} transitions, {s['evaluations']} evaluations at full "
              f"episode length): **{ex['one_run_hours']:.3g} h** (updates "
              f"{ex['pretrain_updates_h'] + ex['online_updates_h']:.3g} h, collection "
              f"{ex['collection_h']:.3g} h, evaluation ≤ {ex['evaluation_h_upper']:.3g} h, "
              f"checkpoints {ex['checkpoints_h']:.3g} h, first calls (compilation) "
              f"{ex['first_calls_h']:.3g} h). MuJoCo table ({ex['mujoco_table_runs']} "
              f"runs): **{ex['mujoco_table_gpu_hours']:.4g} GPU-hours**, one run per GPU.", ""]
    elif ex:
        L += [f"Extrapolation: {ex['status']} ({ex.get('reason')}).", ""]
    L += ["| target | measured | met |", "|---|---|---|"]
    for t in res["targets"]:
        L.append(f"| {t['target']} | {t['measured']} | {t['met']} |")
    L += ["", "| part | status | slice s | wall s |", "|---|---|---:|---:|"]
    for p in res["parts"]:
        L.append(f"| {p['part']} | {p['status']} | {p['slice_s']} | {p['wall_s']} |")
    return "\n".join(L) + "\n"


def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    variant = res["best"].get(RUN_METHOD, {}).get("variant")
    best = next((r for r in res["updates"] if r["method"] == RUN_METHOD
                 and r["variant"] == variant and r.get("status") == "ok"), None)
    ex = res["run"].get("extrapolation", {})
    hours = ex.get("one_run_hours")

    def met(x: float | None, limit: float) -> str:
        return "not measured" if x is None else ("yes" if x <= limit else "**no**")

    return [
        {"target": f"one {res['size']}-size TD3+ODT update ≤ {TARGETS['update_ms']:g} ms "
                   "(best options)",
         "measured": f"{best['update_ms_median']:.4g} ms ({best['variant']})" if best else "—",
         "met": met(best and best["update_ms_median"], TARGETS["update_ms"])},
        {"target": f"one paper run ≤ {TARGETS['paper_run_hours']:g} h",
         "measured": f"{hours:.3g} h (extrapolated)" if hours else "—",
         "met": met(hours, TARGETS["paper_run_hours"])},
        {"target": f"MuJoCo table ≤ {TARGETS['mujoco_table_gpu_hours']:g} GPU-h",
         "measured": f"{ex['mujoco_table_gpu_hours']:.4g} GPU-h (extrapolated)" if hours else "—",
         "met": met(hours and ex["mujoco_table_gpu_hours"], TARGETS["mujoco_table_gpu_hours"])},
    ]


# ----------------------------------------------------------------------------- driver

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="tiny sizes and slices: the path in seconds")
    p.add_argument("--budget", type=float, default=BUDGET_MAX_S,
                   help=f"total seconds, at most {BUDGET_MAX_S:g} (default)")
    p.add_argument("--run-seconds", type=float, default=120.0,
                   help="duration of the short real run (default 120)")
    p.add_argument("--dataset-transitions", type=int, default=20_000,
                   help="random transitions of the run's dataset (paper: 1M; default 20000)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all "
                   "cores on cuda, 1 on cpu)")
    p.add_argument("--out-dir", default=str(REPO / "benchmarks" / "out"),
                   help="where the JSON and Markdown go (default benchmarks/out/, git-ignored)")
    p.add_argument("--start-method", default="fork", choices=["fork", "forkserver", "spawn"],
                   help="how parts start: fork (default; shares the parent's imports) or "
                        "spawn (each part imports torch afresh)")
    p.add_argument("--check-imports", action="store_true",
                   help="only say which modules are missing (exit 3 if any)")
    args = p.parse_args(argv)
    if not 0 < args.budget <= BUDGET_MAX_S:
        p.error(f"--budget must be in (0, {BUDGET_MAX_S:g}] seconds")
    if not 30 <= args.run_seconds <= 180 and not args.tiny:
        p.error("--run-seconds must be 30..180 (the issue asks for a fixed 2-3 minutes)")
    return args


class Check:
    """The parent's state: the budget, the parts run so far and the result being built."""

    def __init__(self, args: argparse.Namespace, budget: Budget, cfg: dict[str, Any],
                 threads: int, tmp: Path, log: Callable[[str], None]):
        self.args, self.budget, self.cfg, self.tmp, self.log = args, budget, cfg, tmp, log
        self.base_spec = {"device": args.device, "threads": threads}
        self.parts: list[dict[str, Any]] = []
        self.reserve = 5.0  # seconds kept for writing the report

    def part(self, name: str, kind: str, spec: dict[str, Any], slice_s: float) -> dict[str, Any]:
        rec = run_part(name, kind, {**self.base_spec, **spec}, slice_s, self.budget,
                       self.reserve, self.tmp, self.log, self.args.start_method)
        self.parts.append({k: rec.get(k) for k in ("part", "status", "slice_s", "wall_s", "reason")})
        rec.pop("part", None)
        return rec

    def update(self, method: str, variant: str, speed: dict[str, Any]) -> dict[str, Any]:
        """One update cell; tiny mode records the compiled ones as skipped (dynamo alone takes
        minutes on a busy 2-core CI machine; tests/test_fastpath.py covers that path)."""
        cfg = self.cfg
        if self.args.tiny and speed.get("path") == "fast":
            rec = {"status": "skipped", "reason": "tiny mode does not compile"}
            self.parts.append({"part": f"{method} {variant}", "slice_s": 0, "wall_s": 0.0, **rec})
        else:
            spec = {"size": cfg["size"], "repeats": cfg["repeats"], "min_time": cfg["min_time"],
                    "peak_n": cfg["peak_n"], "method": method, "variant": variant,
                    "speed": speed, "count_flops": variant == "base"}
            slice_s = cfg["slices"]["compiled" if speed.get("path") == "fast" else "eager"]
            rec = self.part(f"{method} {variant}", "update", spec,
                            cfg["slices"]["best"] if variant == "best" else slice_s)
        return {"method": method, "variant": variant, "speed": speed, **rec}

    def best(self, method: str, cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Measure the combination of the winning options (one alone is measured already);
        if it loses to one of its options alone, that option is the best."""
        speed, wins = choose_best(cells, self.args.device)
        # variant: the cell whose numbers are the best options' (one option alone: its own)
        out: dict[str, Any] = {"speed": speed, "from": wins,
                               "variant": wins[0] if len(wins) == 1 else "base"}
        if len(wins) > 1:
            cells["best"] = self.update(method, "best", speed)
            fastest = min((cells[v] for v in ("base", *wins, "best")
                           if cells[v].get("status") == "ok"), key=_cost)
            out.update(speed=fastest["speed"], variant=fastest["variant"])
            if fastest is not cells["best"]:
                out["combination_lost_to"] = fastest["variant"]
        out["speed_text"] = speed_text(out["speed"])
        return out

    def run(self, speed: str, missing: dict[str, str]) -> dict[str, Any]:
        """The short real run with `speed`, analysed from its timed calls."""
        from odtbench.hyperparameters.resolve import resolve

        cfg = self.cfg
        if missing:
            return {"status": "skipped", "reason": "missing modules: " + "; ".join(
                f"{mod} (install: {req})" for mod, req in missing.items())}
        events = self.tmp / "run-events.jsonl"
        rec = self.part("run", "run", {
            "workdir": str(self.tmp), "events": str(events), "scale": cfg["run_scale"],
            "dataset_transitions": cfg["dataset_transitions"], "run_seconds": cfg["run_seconds"],
            "speed_text": speed, "overrides": cfg["run_overrides"]}, cfg["slices"]["run"])
        run = analyse_run(read_events(events), resolve(TASK, RUN_METHOD, "paper").hyperparameters)
        run["status"] = "ok" if run.get("extrapolation", {}).get("status") == "ok" else rec["status"]
        if rec.get("reason"):
            run["reason"] = rec["reason"]
        if rec.get("rc"):  # the CLI's own exit status (2: an error it printed on one line)
            run["status"], run["reason"] = "error", f"odtbench run exited with status {rec['rc']}"
        run["dataset_note"] = (
            f"{cfg['dataset_transitions']} uniform-random transitions built by the suite's "
            f"random recipe under the {cfg['run_scale']}-scale id in a temporary dataset root "
            "(the paper's dataset has 1M; the update cost does not depend on its size)")
        run["overrides"] = cfg["run_overrides"]
        return run


def add_ratios(cells: dict[str, dict[str, Any]], matmul: dict[str, Any]) -> None:
    """FLOP/s, % of the bf16 and fp32 GEMM peaks, and speed-ups over base, in place."""
    base = cells.get("base", {})
    flops = base.get("flops_per_update")
    for r in cells.values():
        if r.get("status") != "ok":
            continue
        if flops:
            r["flops_per_update"] = flops
            r["achieved_tflops"] = flops / (r["update_ms_median"] / 1e3) / 1e12
            for k in ("bf16", "fp32"):
                if matmul.get(f"{k}_tflops"):
                    r[f"pct_{k}_peak"] = 100 * r["achieved_tflops"] / matmul[f"{k}_tflops"]
        if base.get("status") == "ok":
            r["speedup_update_vs_base"] = base["update_ms_median"] / r["update_ms_median"]
            if "loop_ms_per_unit_median" in base and "loop_ms_per_unit_median" in r:
                r["speedup_loop_vs_base"] = (base["loop_ms_per_unit_median"]
                                             / r["loop_ms_per_unit_median"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spent = time.time() - float(os.environ.get(STARTED_ENV, time.time()))
    budget = Budget(args.budget, spent)  # what the shell script spent (pip) counts too
    log = lambda msg: print(f"[gpu_check {time.monotonic() - budget.t0:6.1f}s] {msg}",  # noqa: E731
                            file=sys.stderr, flush=True)
    if args.device == "cuda" and not args.check_imports:
        with contextlib.suppress(ImportError):  # a missing torch is reported just below
            import torch

            if not torch.version.cuda:
                log(f"torch {torch.__version__} is a CPU build: a CUDA build of torch is "
                    "needed for --device cuda (or pass --device cpu)")
                return 3
    miss = {part: missing_modules(mods) for part, mods in NEEDS.items()}
    for part, m in miss.items():
        for mod, req in m.items():
            log(f"missing for the {part} parts: {mod} (install: {req})")
    if args.check_imports:  # stdout: the requirements, for gpu_check.sh's wheelhouse install
        reqs = {r for m in miss.values() for r in m.values() if not r.startswith("this ")}
        print(" ".join(sorted(reqs)))
        return 3 if any(miss.values()) else 0
    if miss["updates"]:
        log("cannot measure anything without these; install them (or run from the repo root)")
        return 3
    # Imported once here, before forking, so every child shares them (torch._dynamo alone
    # takes seconds; optimisers import it). Nothing here initialises a device.
    import torch
    import torch._dynamo  # noqa: F401
    import torch.utils.flop_counter  # noqa: F401

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    cfg = settings(args)
    threads = args.threads or ((os.cpu_count() or 1) if args.device == "cuda" else 1)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    ck = Check(args, budget, cfg, threads, tmp, log)
    if not miss["run"]:
        ck.reserve += cfg["slices"]["run"]  # the real run keeps its slice whatever comes first
    res: dict[str, Any] = {
        "schema": SCHEMA, "argv": sys.argv[1:] if argv is None else argv,
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": args.device, "tiny": args.tiny, "budget_s": args.budget, "size": cfg["size"],
        "threads": threads, "start_method": args.start_method,
        "flop_count": "torch.utils.flop_counter.FlopCounterMode on an eager fp32 agent "
                      "(matmuls and attention, forward and backward; element-wise work not "
                      "counted)",
        "missing_modules": miss, "parts": ck.parts, "updates": [], "best": {}}
    info = ck.part("info", "info", {}, cfg["slices"]["info"])
    res["machine"] = {k: v for k, v in info.items() if k not in ("slice_s", "wall_s")}
    ok = info["status"] == "ok"
    if not ok:
        log(f"stopping: {info.get('reason')}")
    res["matmul"] = ck.part("matmul", "matmul", {"gemm_n": cfg["gemm_n"]},
                            cfg["slices"]["matmul"]) if ok else {"status": "skipped"}
    cells: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in METHODS}
    # Eager cells of both methods first (cheap, sure), then per method the compiled ones and
    # the best combination: what compilation does to the budget hits the least there.
    for method in METHODS if ok else ():
        for v, speed in SINGLE.items():
            if v not in COMPILED:
                cells[method][v] = ck.update(method, v, speed)
    for method in METHODS if ok else ():
        for v in COMPILED:
            cells[method][v] = ck.update(method, v, SINGLE[v])
        res["best"][method] = ck.best(method, cells[method])
        add_ratios(cells[method], res["matmul"])
        res["updates"] += list(cells[method].values())
    ck.reserve = 5.0
    res["run"] = ck.run(res["best"].get(RUN_METHOD, {}).get("speed_text", ""), miss["run"]) \
        if ok else {"status": "skipped", "reason": "no device"}
    res["targets"] = verdicts(res)
    res["total_wall_s"] = time.monotonic() - budget.t0
    shutil.rmtree(tmp, ignore_errors=True)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", str(res["machine"].get("device_name", args.device)).lower())
    stem = f"gpu-check-{slug.strip('-')[:40]}{'-tiny' if args.tiny else ''}-" \
           f"{time.strftime('%Y%m%d-%H%M%S')}"
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1, default=str))
    (out_dir / f"{stem}.md").write_text(markdown(res))
    print(markdown(res))
    log(f"wrote {out_dir / stem}.json and .md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
