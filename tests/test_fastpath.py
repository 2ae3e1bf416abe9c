"""Speed "fast" (odtbench/fastpath, docs/performance.md): the compiled training unit equals the
reference unit to float32 rounding, keeps the reference's checkpoint format, and a killed fast
run resumes to the numbers of an uninterrupted one. Smoke-sized nets: each compile takes
seconds to a minute on a busy CPU."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from odtbench import cli
from odtbench.hyperparameters.resolve import resolve
from odtbench.methods.dt_agent import DTAgent, SpeedOptions

S, A, B = 11, 3, 8
UNITS = 20
TOL = 1e-5


def _hp(method: str, **overrides: Any) -> dict[str, Any]:
    return dict(resolve("mujoco/hopper-random", method, "smoke", 0, overrides).hyperparameters)


def _batches(n: int, k: int, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    """Segment batches as the sampler makes them (left padding, a padded `done` of 2)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        mask = (torch.rand(B, k, generator=g) > 0.3).float().cummax(dim=1).values
        mask[:, -1] = 1
        out.append({"states": torch.randn(B, k, S, generator=g),
                    "next_states": torch.randn(B, k, S, generator=g),
                    "actions": torch.rand(B, k, A, generator=g) * 1.8 - 0.9,
                    "rewards": torch.randn(B, k, generator=g),
                    "dones": torch.where(mask > 0, 0.0, 2.0),
                    "mask": mask, "rtg": torch.randn(B, k + 1, generator=g)})
    return out


def _train(method: str, path: str) -> tuple[DTAgent, list[dict[str, float]]]:
    hp = _hp(method)
    torch.manual_seed(1)  # the same initial weights for both paths
    agent = DTAgent(hp, S, A, speed=SpeedOptions(path=path))
    assert (agent.fast is not None) == (path == "fast")
    data = iter(_batches(UNITS * agent.actor_update_interval, hp["context_len"]))
    torch.manual_seed(7)  # the same dropout masks and noise
    rl, sup = hp["rl_coeff"], hp["sup_coeff"]
    metrics = []
    for u in range(UNITS):
        # the first units in the pretraining phase's coefficients, the rest online
        coeffs = (0.0, 1.0) if u < 5 else (rl, sup)
        if u == 5:  # the phase switch: hard-reset targets, fresh optimisers (the toy's)
            agent.reset_targets()
            agent.reset_optimizers()
        m = agent.train_unit(lambda: next(data), *coeffs)
        metrics.append({k: float(v) for k, v in m.items()})
    return agent, metrics


def _flatten(state: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a (nested) state dict by its path."""
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for k, v in state.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    if isinstance(state, (list, tuple)):
        out = {}
        for i, v in enumerate(state):
            out.update(_flatten(v, f"{prefix}/{i}"))
        return out
    return {prefix: state}


@pytest.mark.slow  # four compiles: 110 s of a 323 s `-m "not slow"` run (load 3-4)
@pytest.mark.parametrize("method", ["TD3+ODT", "DDPG+ODT", "TD3", "ODT"])
def test_fast_unit_equals_reference_after_20_units(method):
    ref, ref_m = _train(method, "reference")
    fast, fast_m = _train(method, "fast")
    for r, f in zip(ref_m, fast_m, strict=True):
        assert list(r) == list(f)  # the same metrics, in the same order
        for k in r:
            assert f[k] == pytest.approx(r[k], rel=TOL, abs=TOL), k
    ref_state, fast_state = _flatten(ref.state_dict()), _flatten(fast.state_dict())
    assert list(ref_state) == list(fast_state)  # one checkpoint format for both paths
    compared = 0
    for key, r in ref_state.items():
        f = fast_state[key]
        if isinstance(r, torch.Tensor):
            assert f.dtype == r.dtype and f.shape == r.shape, key
            torch.testing.assert_close(f, r, rtol=TOL, atol=TOL, msg=key)
            compared += r.numel()
        else:
            assert f == r, key  # step counters, learning rates, warm-up state
    assert compared > 1000
    # the moved weights really moved (a path that trained nothing would pass the above)
    moved = ref_state["/actor/embed_state.weight"] - _train_init(method)
    assert moved.abs().max() > 1e-4


def _train_init(method: str) -> torch.Tensor:
    torch.manual_seed(1)
    return DTAgent(_hp(method), S, A).actor.embed_state.weight.detach().clone()


def test_kinds_without_a_fast_path_run_the_reference_and_say_so(capsys):
    agent = DTAgent(_hp("SAC+ODT"), S, A, speed=SpeedOptions(path="fast"))
    err = capsys.readouterr().err.strip().splitlines()
    assert agent.fast is None
    assert err == ["odtbench: speed fast: rl_kind 'sac' has none (it covers td3, ddpg, none); "
                   "running the reference path"]


def test_auto_is_fast_only_where_measured_and_falls_back_without_a_word(capsys):
    from odtbench.fastpath import auto_path

    assert auto_path("cpu", "standard") == "auto"
    # quick and smoke: a cold compile outweighs the gain; paper and GPUs: not measured
    assert auto_path("cpu", "quick") == "reference" == auto_path("cpu", "smoke")
    assert auto_path("cpu", "paper") == "reference"
    assert auto_path("cuda", "standard") == "reference"
    agent = DTAgent(_hp("SAC+ODT"), S, A, speed=SpeedOptions(path="auto"))
    assert agent.fast is None and capsys.readouterr().err == ""
    covered = DTAgent(_hp("TD3+ODT"), S, A, speed=SpeedOptions(path="auto"))
    assert covered.fast is not None  # built here, compiled at its first unit


def test_the_cli_default_is_auto(monkeypatch, tmp_path):
    seen: dict[str, Any] = {}

    def runner(cfg: Any, out_dir: Any, speed: SpeedOptions | None = None) -> dict:
        seen["path"] = speed.path if speed else None
        raise SystemExit(0)  # stop before the run begins

    from odtbench.methods import get_method

    class Spec:  # the method's spec with a runner that only records its speed
        def __init__(self, spec: Any):
            self.spec = spec

        def __getattr__(self, name: str) -> Any:
            return getattr(self.spec, name)

        def load_runner(self) -> Any:
            return runner

    monkeypatch.setattr("odtbench.methods.get_method", lambda name: Spec(get_method(name)))
    for scale, path in (("standard", "auto"), ("quick", "reference")):
        with pytest.raises(SystemExit):
            cli.main(["run", "--task", "mujoco/hopper-random", "--method", "TD3+ODT",
                      "--seed", "0", "--scale", scale, "--out", str(tmp_path / scale)])
        assert seen.pop("path") == path


# ------------------------------------------------------------------ killed and resumed
TASK = ["--task", "toy/bandit", "--method", "TD3+ODT", "--seed", "0", "--scale", "smoke",
        "--speed", "fast", "--set", "actor_optimizer=lamb"]  # the toy's Adam has no fast path
IGNORED_COLUMNS = {"wall_time_s", "diag_wall_s"}


def _curve(out: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO((out / "curve.csv").read_text())))
    return [{k: v for k, v in r.items() if k not in IGNORED_COLUMNS} for r in rows]


def test_killed_fast_run_resumes_to_the_uninterrupted_numbers(toy_data, tmp_path, capsys):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    env = dict(os.environ, OMP_NUM_THREADS="1", ODTBENCH_KILL_AT_UPDATE="12")
    p = subprocess.run([sys.executable, "-m", "odtbench.cli", "run", *TASK, "--out", str(killed)],
                       env=env, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (killed / "checkpoint" / "state.pt").is_file()
    for out in (killed, whole):
        assert cli.main(["run", *TASK, "--out", str(out)]) == 0, capsys.readouterr().err
    assert _curve(killed) == _curve(whole) and len(_curve(whole)) >= 2
    a = torch.load(killed / "checkpoint" / "state.pt", weights_only=False)["agent"]
    b = torch.load(whole / "checkpoint" / "state.pt", weights_only=False)["agent"]
    fa, fb = _flatten(a), _flatten(b)
    assert list(fa) == list(fb)
    for key, va in fa.items():
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, fb[key]), key
        else:
            assert va == fb[key], key
    import json

    prov = json.loads((whole / "config.json").read_text())["provenance"]
    assert prov["speed"] == "fast"
