"""A run stopped by SIGTERM / Ctrl-C: log.txt records where (status: "interrupted", not
"failed"), and the re-run says on the terminal where it resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from odtbench.workflow import plan as wp
from odtbench.workflow.status import STALE_S, run_status

REPO = Path(__file__).resolve().parents[1]


def _config(tmp: Path) -> dict:
    config = yaml.safe_load((REPO / "workflows/config.yaml").read_text())
    config["scale"] = "smoke"
    config["scales"]["smoke"]["suites"] = {
        "toy": {"datasets": ["bandit"], "methods": ["TD3+ODT"], "seeds": 1, "runtime": 5}}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return wp.load_config(path, REPO / "workflows/schemas/config.schema.yaml")


def _run(out: Path, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "odtbench.cli", "run", "--task", "toy/bandit", "--method",
           "TD3+ODT", "--seed", "0", "--scale", "smoke", "--out", str(out)]
    # a shell's background job inherits SIGINT ignored, and Python then never raises Ctrl-C:
    # give the run the default disposition, as a terminal does
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_an_interrupted_run_is_interrupted_and_its_rerun_says_where_it_resumes(
        sig, toy_data, tmp_path):
    env = dict(os.environ, MINARI_DATASETS_PATH=str(toy_data), ODTBENCH_PROGRESS="0",
               OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = tmp_path / wp.RUN_DIR.format(scale="smoke", suite="toy", dataset="bandit",
                                       method="TD3+ODT", seed=0)
    # smoke toy: 10 pretraining updates, a checkpoint at their end, then online iterations of
    # 4 + 2n updates; stop after the 12th
    p = _run(out, dict(env, ODTBENCH_KILL_AT_UPDATE="12", ODTBENCH_KILL_SIGNAL=sig))
    said = "odtbench: terminated (SIGTERM" if sig == "TERM" else "odtbench: interrupted"
    assert p.returncode != 0 and said in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    last = (out / "log.txt").read_text().strip().splitlines()[-1]
    how = "SIGTERM" if sig == "TERM" else "SIGINT"
    assert f"interrupted ({how}) at online, 64/192 transitions, 12 gradient steps" in last, last
    config = _config(tmp_path)
    rs = run_status(config, "smoke", "toy", "bandit", "TD3+ODT", 0, root=tmp_path,
                    now=time.time() + 2 * STALE_S, table={})
    assert rs.state == "interrupted"
    assert "online, 64/192 transitions, 12 gradient steps" in rs.detail and "re-running resumes it" in rs.detail
    if sig == "INT":
        return
    p = _run(out, env)
    assert p.returncode == 0, p.stderr
    resumed = [ln for ln in p.stderr.splitlines() if "resuming" in ln]
    # from the checkpoint at the end of pretraining
    assert resumed == ["odtbench: resuming TD3+ODT on toy/bandit seed 0 from its checkpoint "
                       "at online, 0/192 transitions, 10 gradient steps"]
    rs = run_status(config, "smoke", "toy", "bandit", "TD3+ODT", 0, root=tmp_path, table={})
    assert rs.state == "complete"
