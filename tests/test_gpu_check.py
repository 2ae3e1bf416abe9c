"""benchmarks/gpu_check.py (issue 15): its CPU path end to end at the tiny size, so the GPU
check cannot rot while no GPU is lent; and its budget, best-options and report logic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


def _positive(x: object, where: str) -> None:
    assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, f"{where} = {x!r}"


@pytest.mark.slow  # a whole tiny run and every update variant (~30 s)
def test_tiny_cpu_run_writes_a_complete_report(tmp_path):
    # PYTHON: the script would otherwise run whatever python3 is first on PATH, not this venv
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ODTBENCH_SPEED": "", "PYTHON": sys.executable}
    proc = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny",
                           "--out-dir", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (js,), (md,) = sorted(tmp_path.glob("*.json")), sorted(tmp_path.glob("*.md"))
    res = json.loads(js.read_text())
    assert res["schema"] == gpu_check.SCHEMA and res["tiny"] and res["device"] == "cpu"
    assert res["total_wall_s"] <= res["budget_s"] <= gpu_check.BUDGET_MAX_S
    assert not any(p["status"] == "error" for p in res["parts"]), res["parts"]
    for key in ("torch", "device_name", "memory_gib", "cpu_cores"):
        assert res["machine"][key], key
    for k in ("bf16_tflops", "fp32_tflops"):
        _positive(res["matmul"][k], k)

    rows = {(r["method"], r["variant"]): r for r in res["updates"]}
    for method in gpu_check.METHODS:
        for v in ("base", "bf16", "fused", "resident"):
            r = rows[(method, v)]
            assert r["status"] == "ok", r
            for k in ("update_ms_median", "updates_per_s", "loop_ms_per_unit_median",
                      "first_call_s", "flops_per_update", "pct_fp32_peak", "pct_bf16_peak",
                      "speedup_loop_vs_base"):
                _positive(r[k], f"{method} {v} {k}")
        best = res["best"][method]
        assert rows[(method, best["variant"])]["status"] == "ok"  # the row with its numbers
        assert "resident_sampling" not in best["speed_text"]  # a CPU no-op

    run = res["run"]
    assert run["status"] == "ok", run
    assert run["dataset"]["transitions"] == 2000 and "--scale" in run["argv"]
    for k in ("s_per_unit", "actor_updates_per_s", "critic_updates_per_s"):
        _positive(run["online"][k], f"online {k}")
    _positive(run["collect"]["transitions_per_s"], "transitions/s")
    _positive(run["evaluate"]["mean_s"], "evaluation s")
    ex = run["extrapolation"]
    assert ex["status"] == "ok" and ex["schedule"]["online_transitions"] == 500_000
    _positive(ex["one_run_hours"], "one run hours")
    assert ex["mujoco_table_gpu_hours"] == pytest.approx(420 * ex["one_run_hours"])
    text = md.read_text()
    assert "| TD3+ODT | base |" in text and "GPU-hours**, one run per GPU" in text


def test_a_part_past_its_slice_is_killed_and_recorded_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_check.PARTS, "sleep", lambda spec: time.sleep(120) or {})
    t = time.monotonic()
    rec = gpu_check.run_part("sleep", "sleep", {}, 2.0, gpu_check.Budget(60), 0, tmp_path,
                             lambda msg: None)
    assert rec["status"] == "skipped" and "time slice" in rec["reason"]
    assert time.monotonic() - t < 30
    rec = gpu_check.run_part("sleep", "sleep", {}, 30.0, gpu_check.Budget(10), 9, tmp_path,
                             lambda msg: None)
    assert rec["status"] == "skipped" and "no time left" in rec["reason"]


def test_a_part_that_fails_is_recorded_with_its_error(tmp_path, monkeypatch):
    def boom(spec: dict) -> dict:
        raise ValueError("no such kernel")

    monkeypatch.setitem(gpu_check.PARTS, "boom", boom)
    rec = gpu_check.run_part("boom", "boom", {}, 30.0, gpu_check.Budget(60), 0, tmp_path,
                             lambda msg: None)
    assert rec["status"] == "error" and rec["reason"] == "ValueError: no such kernel"


def test_best_combines_the_options_that_win():
    def row(ms: float) -> dict:
        return {"status": "ok", "loop_ms_per_unit_median": ms}

    rows = {"base": row(10), "bf16": row(11), "fused": row(9), "resident": row(8),
            "fast": row(7)}
    speed, wins = gpu_check.choose_best(rows, "cuda")
    assert wins == ["resident", "fast"]  # the fast path does not combine with fused
    assert gpu_check.speed_text(speed) == "resident_sampling,path=fast"
    speed, wins = gpu_check.choose_best({**rows, "fast": row(12)}, "cuda")
    assert wins == ["fused", "resident"]
    speed, wins = gpu_check.choose_best(rows, "cpu")  # resident sampling is a CPU no-op
    assert "resident" not in wins
    rows["base"] = {"status": "skipped"}
    assert gpu_check.choose_best(rows, "cuda") == ({}, [])
    assert gpu_check.choose_best({"base": row(10), "fused": row(9.9)}, "cuda") == ({}, [])


def test_run_rates_and_their_extrapolation_to_a_paper_run():
    def ev(kind: str, t0: float, s: float, **kw: object) -> dict:
        return {"kind": kind, "t0": t0, "t1": t0 + s, "s": s, **kw}

    events = [ev("start", 0, 0, argv=["run"], speed="fused_optim"),
              ev("train_units", 2, 5, phase="pretrain", d=2, units=10),  # compiles
              ev("train_units", 7, 1, phase="pretrain", d=2, units=10),
              ev("evaluate", 8, 1, phase="pretrain", episodes=10, env_steps=1000, score=1.0),
              ev("collect", 9, 2, transitions=1000, episodes=40),
              ev("train_units", 11, 40, phase="online", d=2, units=300),  # compiles
              ev("train_units", 51, 30, phase="online", d=2, units=300),
              ev("save_checkpoint", 81, 0.5),
              ev("stopped", 0, 90)]
    from odtbench.hyperparameters.resolve import resolve

    hp = resolve("mujoco/hopper-random", "TD3+ODT", "paper").hyperparameters
    r = gpu_check.analyse_run(events, hp)
    assert r["ended"] == "stopped" and r["startup_s"] == 2
    assert r["pretrain"]["s_per_unit"] == pytest.approx(0.1)
    assert r["pretrain"]["first_call_extra_s"] == pytest.approx(4.0)
    assert r["online"]["critic_updates_per_s"] == pytest.approx(20.0)
    assert r["collect"]["transitions_per_s"] == pytest.approx(500.0)
    ex = r["extrapolation"]
    s = ex["schedule"]
    assert (s["pretrain_units"], s["online_iterations"], s["evaluations"]) == (5000, 500, 51)
    assert ex["online_updates_h"] == pytest.approx(150_000 * 0.1 / 3600)
    assert ex["collection_h"] == pytest.approx(500_000 / 500 / 3600)
    assert ex["evaluation_h_upper"] == pytest.approx(51 * 10 * 1000 * 1e-3 / 3600)
    parts = ("pretrain_updates_h", "online_updates_h", "collection_h", "evaluation_h_upper",
             "checkpoints_h", "startup_h", "first_calls_h")
    assert ex["one_run_hours"] == pytest.approx(sum(ex[k] for k in parts))
    assert gpu_check.analyse_run(events[:3], hp)["extrapolation"]["status"] == "not possible"
