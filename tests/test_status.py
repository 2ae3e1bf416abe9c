"""`odtbench status`: the workflow's planned runs and their states, from run files and logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from odtbench import cli
from odtbench.workflow import plan as wp
from odtbench.workflow.status import STALE_S, format_status, read_timing_table, workflow_status

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

    runs = workflow_status(config, "smoke", ["toy"], root=tmp_path, now=now, table_path=None)
    by = {(r.method, r.seed): r for r in runs}
    assert [by[("ODT", s)].state for s in range(3)] == ["complete", "diverged", "running"]
    assert [by[("TD3+ODT", s)].state for s in range(3)] == ["failed", "not started", "not started"]
    assert by[("ODT", 2)].progress == "online 96/192 transitions (50%)"
    assert by[("ODT", 2)].score == 0.42
    assert abs(by[("ODT", 2)].eta_s - 30.0) < 2.0
    assert "dataset missing" in by[("TD3+ODT", 0)].detail
    # not started: the finished ODT run's 100 s (another method's, none of its own yet)
    assert by[("TD3+ODT", 1)].remaining_s == 100.0
    assert by[("TD3+ODT", 1)].estimate == "other methods"
    # failed in pretraining: its own 15 s left there, then the ODT run's 80 s online
    assert by[("TD3+ODT", 0)].remaining_s == 95.0
    assert by[("TD3+ODT", 0)].estimate == "its rate + other methods"
    assert by[("ODT", 2)].estimate == "its rate"
    text = format_status(runs, "smoke", jobs=1)

    assert "6 planned runs at scale smoke: 1 complete, 1 running, 1 diverged, 1 failed, 2 not started" in text
    # 30 (running) + 95 (failed in pretraining) + 2 x 100 (not started), one at a time
    assert "workflow ETA: 5:25 " in text

    # a Snakemake job (it has a job log) runs only while a Snakemake holds the workflow's lock
    job2 = tmp_path / wp.JOB_LOG.format(scale="smoke", suite="toy", dataset="bandit", method="ODT",
                                        seed=2)
    job2.parent.mkdir(parents=True, exist_ok=True)
    job2.write_text("ODT toy/bandit s2: progress online 96/192 ...\n")
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    (tmp_path / ".snakemake/locks/0.input.lock").write_text("")
    states = {(r.method, r.seed): r.state
              for r in workflow_status(config, "smoke", ["toy"], tmp_path, now, table_path=None)}
    assert states[("ODT", 2)] == "running"
    (tmp_path / ".snakemake/locks/0.input.lock").unlink()
    # no Snakemake, the job log ending in progress (no error): killed from outside, resumable
    ended = {(r.method, r.seed): r for r in workflow_status(config, "smoke", ["toy"], tmp_path, now,
                                                            table_path=None)}
    assert ended[("ODT", 2)].state == "stopped"
    assert "resumes it from its checkpoint" in ended[("ODT", 2)].detail
    assert ended[("TD3+ODT", 0)].state == "failed"  # its job log ends in an error

    monkeypatch.chdir(tmp_path)
    assert cli.main(["status", "--suite", "toy"]) == 0
    assert "TD3+ODT" in capsys.readouterr().out
    assert cli.main(["status", "--suite", "mujoco"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown suite at scale smoke 'mujoco'" in err[0]


def _timing_table(path: Path, rows: list[str]) -> Path:
    path.write_text("# a comment line\nscale,suite,dataset,method,runs,job_s,online_s,measured,machine\n"
                    + "".join(r + "\n" for r in rows))
    return path


def test_eta_sources_in_order_its_rate_finished_runs_timing_table_ceiling(tmp_path: Path) -> None:
    """Before a run of this scale has finished, its ETA comes from the committed timing table
    (or its own rate), not from the ceiling declared to the scheduler; status names the source."""
    config = _workflow(tmp_path)
    now = float(int(time.time()))
    table = _timing_table(tmp_path / "times.csv", [
        "smoke,toy,bandit,ODT,5,120.0,70.0,2026-12-05,test",
        "smoke,toy,bandit,TD3+ODT,5,200.0,,2026-12-05,test"])
    # ODT seed 0: running, pretraining, 10 s left at its own rate
    d = _run_dir(tmp_path, "ODT", 0)
    (d / "log.txt").write_text(
        f"{_stamp(now)} progress pretraining 50/100 updates rate=5/s eta=10s score=?\n")
    runs = workflow_status(config, "smoke", ["toy"], root=tmp_path, now=now, table_path=table)
    by = {(r.method, r.seed): r for r in runs}
    # its pretraining at its rate, then the table's online phase
    assert (by[("ODT", 0)].remaining_s, by[("ODT", 0)].estimate) == (80.0, "its rate + timing table")
    # not started: the table's job time, never the declared 5-minute ceiling
    assert (by[("ODT", 1)].remaining_s, by[("ODT", 1)].estimate) == (120.0, "timing table")
    assert (by[("TD3+ODT", 1)].remaining_s, by[("TD3+ODT", 1)].estimate) == (200.0, "timing table")
    text = format_status(runs, "smoke", jobs=2)
    assert "eta from" in text.splitlines()[0]
    assert "remaining times: 1 from its rate + timing table, 5 from timing table" in text

    # a finished run of the same method and dataset beats the table
    d = _run_dir(tmp_path, "ODT", 2)
    (d / "summary.json").write_text(json.dumps({"status": "complete", "wall_time_s": 90.0}))
    (d / "curve.csv").write_text("phase,iteration,wall_time_s\npretrain,0,30\nonline,1,90\n")
    by = {(r.method, r.seed): r for r in workflow_status(config, "smoke", ["toy"], tmp_path, now,
                                                          table_path=table)}
    assert (by[("ODT", 1)].remaining_s, by[("ODT", 1)].estimate) == (90.0, "finished runs")
    assert (by[("ODT", 0)].remaining_s, by[("ODT", 0)].estimate) == (70.0, "its rate + finished runs")
    # the table has no TD3+ODT online time: its whole job less its pretraining at its own rate
    d = _run_dir(tmp_path, "TD3+ODT", 0)
    (d / "log.txt").write_text(
        f"{_stamp(now)} progress pretraining 20/100 updates rate=2/s eta=40s score=?\n")
    by = {(r.method, r.seed): r for r in workflow_status(config, "smoke", ["toy"], tmp_path, now,
                                                          table_path=table)}
    assert by[("TD3+ODT", 0)].remaining_s == 40.0 + (200.0 - 100 / 2)
    # in its online phase, a running run's own ETA alone
    (d / "log.txt").write_text(
        f"{_stamp(now)} progress online 100/400 transitions rate=4/s eta=75s score=0.5\n")
    rs = {(r.method, r.seed): r for r in workflow_status(config, "smoke", ["toy"], tmp_path, now,
                                                          table_path=table)}[("TD3+ODT", 0)]
    assert (rs.remaining_s, rs.estimate) == (75.0, "its rate")

    # nothing measured anywhere: the declared ceiling, said so
    config["scales"]["smoke"]["suites"]["toy"]["methods"] = ["TD3"]
    rs = workflow_status(config, "smoke", ["toy"], tmp_path / "elsewhere", now, table_path=None)[0]
    assert rs.state == "not started"
    assert (rs.remaining_s, rs.estimate) == (300.0, "declared ceiling")


def test_the_committed_timing_table_covers_the_toy_and_mujoco_quick_runs() -> None:
    table = read_timing_table()
    for method in ("ODT", "DDPG+ODT", "TD3+ODT", "TD3"):
        t = table[("quick", "toy", "bandit", method)]
        assert t.job_s and t.online_s and t.online_s < t.job_s
    assert table[("quick", "mujoco", "hopper-random", "TD3+ODT")].job_s


def test_interrupted_from_the_job_log_and_from_log_txt(tmp_path: Path) -> None:
    config = _workflow(tmp_path)
    now = float(int(time.time()))
    keys = {"scale": "smoke", "suite": "toy", "dataset": "bandit"}
    # seed 0: Ctrl-C while loading its data (no log.txt): the job log's last line says so
    job0 = tmp_path / wp.JOB_LOG.format(**keys, method="ODT", seed=0)
    job0.parent.mkdir(parents=True)
    job0.write_text("odtbench: ODT on toy/bandit seed 0 (smoke): loading data\nodtbench: interrupted\n")
    # seed 1: stopped by SIGTERM in its online phase; seed 2: interrupted, then resumed and running
    d1, d2 = _run_dir(tmp_path, "ODT", 1), _run_dir(tmp_path, "ODT", 2)
    stopped = (f"{_stamp(now - 20)} progress online 64/192 transitions rate=2/s eta=60s score=0.1\n"
               f"{_stamp(now - 19)} interrupted (SIGTERM) at online, 64/192 transitions, 12 gradient steps\n")
    d1.joinpath("log.txt").write_text(stopped)
    d2.joinpath("log.txt").write_text(
        stopped + f"{_stamp(now - 5)} resumed from checkpoint: {{}}\n"
        f"{_stamp(now - 4)} progress online 64/192 transitions rate=?/s eta=?s score=0.1\n")
    runs = workflow_status(config, "smoke", ["toy"], root=tmp_path, now=now, table_path=None)
    by = {(r.method, r.seed): r for r in runs}
    assert [by[("ODT", s)].state for s in range(3)] == ["interrupted", "interrupted", "running"]
    assert "at online, 64/192 transitions" in by[("ODT", 1)].detail
    # its own rate, measured before it stopped, for its online phase left
    assert (by[("ODT", 1)].remaining_s, by[("ODT", 1)].estimate) == (60.0, "its rate")
    text = format_status(runs, "smoke", jobs=1)
    assert "1 running, 2 interrupted" in text
    assert "interrupted: toy/bandit ODT seed 1: (SIGTERM) at online" in text
