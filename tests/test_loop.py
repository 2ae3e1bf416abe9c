"""End-to-end: every DT-family method runs the toy task at smoke scale; kill + resume."""

import json
import os
import subprocess
import sys

import pytest

from odtbench.hyperparameters.resolve import resolve
from odtbench.runcore.dt_loop import run

METHODS = ["ODT", "TD3+ODT", "DDPG+ODT", "TD3"]


@pytest.mark.parametrize("method", METHODS)
def test_toy_smoke_run_writes_contract_files(method, toy_data, tmp_path):
    cfg = resolve("toy/bandit", method, "smoke", seed=1)
    out = tmp_path / "run"
    summary = run(cfg, out)
    assert summary["status"] == "complete"
    assert summary["online_transitions"] == 3 * 64
    for name in ("config.json", "curve.csv", "summary.json", "probes.json"):
        assert (out / name).exists(), name
    probes = json.loads((out / "probes.json").read_text())
    assert [e["epoch"] for e in probes["epochs"]] == [0, 1, 2, 3]
    assert len(probes["epochs"][1]["rollout_actions"]) == 64
    assert (probes["epochs"][0]["critic_q"] is None) == (method == "ODT")
    conf = json.loads((out / "config.json").read_text())
    # the study's toy actors are all deterministic; ODT is the one without an RL term
    assert conf["hyperparameters"]["stochastic"] is False
    assert (conf["hyperparameters"]["rl_kind"] == "none") == (method == "ODT")
    assert "toy preset" in conf["hyperparameter_sources"]["context_len"]


def _run_cli(out, env):
    code = ("import sys; from odtbench.hyperparameters.resolve import resolve; from odtbench.runcore.dt_loop import run;"
            f"run(resolve('toy/bandit', 'TD3+ODT', 'smoke', seed=3), {str(out)!r})")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_sigkill_mid_run_resumes_to_identical_summary(toy_data, tmp_path):
    env = dict(os.environ, MINARI_DATASETS_PATH=str(toy_data), ODTBENCH_PROGRESS="0",
               OMP_NUM_THREADS="1")
    ref = tmp_path / "ref"
    assert _run_cli(ref, env).returncode == 0
    killed = tmp_path / "killed"
    # smoke toy: 10 pretraining updates (checkpoint every 5), then epochs of 4+2n updates
    p = _run_cli(killed, dict(env, ODTBENCH_KILL_AT_UPDATE="17"))
    assert p.returncode == -9  # SIGKILL
    assert not (killed / "summary.json").exists()
    assert (killed / "checkpoint" / "state.pt").exists()
    assert _run_cli(killed, env).returncode == 0
    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    for d in (a, b):
        d.pop("wall_time_s")
    assert a == b
    pa = json.loads((ref / "probes.json").read_text())
    pb = json.loads((killed / "probes.json").read_text())
    assert pa == pb
