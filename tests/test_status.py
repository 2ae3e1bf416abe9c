"""`odtbench status`: the workflow's planned runs and their states, from run files and logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from odtbench import cli
from odtbench import workflow_plan as wp
from odtbench.status import STALE_S, format_status, workflow_status

REPO = Path(__file__).resolve().parents[1]

def _workflow(tmp: Path) -> dict:
    config = yaml.safe_load((REPO / "workflows/config.yaml").read_text())
    config["scale"] = "smoke"
    config["scales"]["smoke"]["suites"] = {
        "toy": {"datasets": ["bandit"], "methods": ["ODT", "TD3+ODT"], "seeds": 3, "runtime": 5}}
    (tmp / "workflows/schemas").mkdir(parents=True)
    (tmp / "workflows/config.yaml").write_text(yaml.safe_dump(config))
    (tmp / "workflows/schemas/config.schema.yaml").write_bytes(
        (REPO / "workflows/schemas/config.schema.yaml").read_bytes())
    return wp.load_config(tmp / "workflows/config.yaml", tmp / "workflows/schemas/config.schema.yaml")

def _run_dir(tmp: Path, method: str, seed: int) -> Path:
    d = tmp / wp.RUN_DIR.format(scale="smoke", suite="toy", dataset="bandit", method=method, seed=seed)
    d.mkdir(parents=True)
    return d

def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S,000", time.localtime(t))

def test_states_progress_scores_and_workflow_eta(tmp_path: Path, monkeypatch, capsys) -> None:
    config = _workflow(tmp_path)
    now = float(int(time.time()))  # whole seconds, as the log stamps below
    # ODT seed 0: complete in 100 s (pretraining 20 s, online 80 s)
    d = _run_dir(tmp_path, "ODT", 0)
    (d / "summary.json").write_text(json.dumps(
        {"status": "complete", "final_score": 0.5, "online_transitions": 192, "wall_time_s": 100.0}))
    (d / "curve.csv").write_text("phase,iteration,wall_time_s\npretrain,0,20\nonline,1,60\nonline,2,100\n")
    (d / "log.txt").write_text("")
    # ODT seed 1: diverged
    d = _run_dir(tmp_path, "ODT", 1)
    (d / "summary.json").write_text(json.dumps(
        {"status": "diverged", "diverged_reason": "non-finite loss at online iteration 2",
         "final_score": 0.1}))
    # ODT seed 2: running, online, ETA 40 s as of its last line 10 s ago
    d = _run_dir(tmp_path, "ODT", 2)
    (d / "log.txt").write_text(
        f"{_stamp(now - 30)} eval online it=1 transitions=64 score=0.42 return=0.01\n"
        f"{_stamp(now - 10)} progress online 96/192 transitions rate=2.4/s eta=40s score=0.42 steps=40\n")
    # TD3+ODT seed 0: failed (logs old, job log ends with an error)
    d = _run_dir(tmp_path, "TD3+ODT", 0)
    (d / "log.txt").write_text(f"{_stamp(now - 900)} progress pretraining 5/20 updates rate=1/s eta=15s score=?\n")
    job_log = tmp_path / wp.JOB_LOG.format(scale="smoke", suite="toy", dataset="bandit",
                                           method="TD3+ODT", seed=0)
    job_log.parent.mkdir(parents=True)
    job_log.write_text("odtbench: error: dataset missing; build it\n")
    for p in (d / "log.txt", job_log):
        os.utime(p, (now - STALE_S - 60, now - STALE_S - 60))
    # TD3+ODT seeds 1, 2: not started

    runs = workflow_status(config, "smoke", ["toy"], root=tmp_path, now=now)
    by = {(r.method, r.seed): r for r in runs}
    assert [by[("ODT", s)].state for s in range(3)] == ["complete", "diverged", "running"]
    assert [by[("TD3+ODT", s)].state for s in range(3)] == ["failed", "not started", "not started"]
    assert by[("ODT", 2)].progress == "online 96/192 transitions (50%)"
    assert by[("ODT", 2)].score == 0.42
    assert abs(by[("ODT", 2)].eta_s - 30.0) < 2.0
    assert "dataset missing" in by[("TD3+ODT", 0)].detail
    # not started: the finished ODT run's 100 s (another method's, none of its own yet)
    assert by[("TD3+ODT", 1)].remaining_s == 100.0
    text = format_status(runs, "smoke", jobs=1)

    assert "6 planned runs at scale smoke: 1 complete, 1 running, 1 diverged, 1 failed, 2 not started" in text
    # 30 (running) + 100 (failed in pretraining) + 2 x 100 (not started), one at a time
    assert "workflow ETA: 5:30 " in text

    # a Snakemake job (it has a job log) runs only while a Snakemake holds the workflow's lock
    job2 = tmp_path / wp.JOB_LOG.format(scale="smoke", suite="toy", dataset="bandit", method="ODT",
                                        seed=2)
    job2.parent.mkdir(parents=True, exist_ok=True)
    job2.write_text("ODT toy/bandit s2: progress online 96/192 ...\n")
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    (tmp_path / ".snakemake/locks/0.input.lock").write_text("")
    states = {(r.method, r.seed): r.state for r in workflow_status(config, "smoke", ["toy"], tmp_path, now)}
    assert states[("ODT", 2)] == "running"
    (tmp_path / ".snakemake/locks/0.input.lock").unlink()
    states = {(r.method, r.seed): r.state for r in workflow_status(config, "smoke", ["toy"], tmp_path, now)}
    assert states[("ODT", 2)] == "failed"

    monkeypatch.chdir(tmp_path)
    assert cli.main(["status", "--suite", "toy"]) == 0
    assert "TD3+ODT" in capsys.readouterr().out
    assert cli.main(["status", "--suite", "mujoco"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown suite at scale smoke 'mujoco'" in err[0]
