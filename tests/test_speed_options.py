"""The speed options' code paths on the CPU (docs/performance.md): each one changes how the
agent executes, never what it computes, and a bad option is refused with a clear error."""

from __future__ import annotations

import json

import pytest
import torch

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import resolve
from odtbench.methods.dt_agent import DTAgent, SpeedOptions

S, A, B, K = 11, 3, 4, 5


def _hp(method: str = "TD3+ODT") -> dict:
    return resolve("mujoco/hopper-random", method, "smoke", 0, {"dropout": 0.0, "embed_dropout": 0.0}).hyperparameters


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, K)
    mask[0, :2] = 0  # left padding, as the sampler makes it
    return {"states": torch.randn(B, K, S, generator=g),
            "next_states": torch.randn(B, K, S, generator=g),
            "actions": torch.rand(B, K, A, generator=g) * 2 - 1,
            "rewards": torch.randn(B, K, generator=g), "dones": torch.zeros(B, K),
            "mask": mask, "rtg": torch.randn(B, K + 1, generator=g)}


def _train(speed: SpeedOptions, steps: int = 3, method: str = "TD3+ODT") -> tuple[DTAgent, list]:
    torch.manual_seed(0)
    agent = DTAgent(_hp(method), S, A, speed=speed)
    losses = []
    for i in range(steps):
        batch = _batch(i)
        m = agent.critic_step(batch)
        m.update(agent.actor_step(batch, rl_coeff=0.1, sup_coeff=1.0))
        losses.append({k: float(v) for k, v in m.items()})
    return agent, losses


def test_parse_and_record():
    s = SpeedOptions.parse("bf16, fused_optim=1,path=fast")
    assert s.bf16 and s.fused_optim and s.path == "fast"
    assert s.enabled == ["bf16=True", "fused_optim=True"]  # the path is config.json's `speed`
    assert SpeedOptions.parse(None) == SpeedOptions.parse("") == SpeedOptions()
    assert SpeedOptions.parse("bf16=0") == SpeedOptions()


@pytest.mark.parametrize("text, match", [
    ("turbo", "unknown speed option 'turbo'"),
    ("compile", "unknown speed option 'compile'"),  # the old loss-only option is gone
    ("path=turbo", "unknown speed 'turbo'"),
])
def test_bad_option_is_one_clear_error(text, match):
    with pytest.raises(OdtbenchError, match=match):
        SpeedOptions.parse(text)


def test_defaults_are_the_reference_path():
    _, a = _train(SpeedOptions())
    _, b = _train(SpeedOptions.parse(""))
    assert a == b  # bit for bit


@pytest.mark.parametrize("speed, rtol", [
    (SpeedOptions(fused_optim=True), 1e-4),   # fused Adam(W) kernels round differently
    (SpeedOptions(bf16=True), 5e-2),          # bf16 autocast of the DT: ~3 significant digits
])
def test_option_matches_reference_within_rounding(speed, rtol):
    ref_agent, ref = _train(SpeedOptions())
    agent, got = _train(speed)
    for r, g in zip(ref, got, strict=True):
        assert r.keys() == g.keys()
        for k in r:
            assert g[k] == pytest.approx(r[k], rel=rtol, abs=rtol), k
    out = agent.act(torch.zeros(2, 3, S), torch.zeros(2, 3, A), torch.zeros(2, 3))
    assert out.dtype == torch.float32 and out.shape == (2, A) and torch.isfinite(out).all()


def test_resident_sampling_is_a_no_op_on_cpu_and_recorded(tmp_path, monkeypatch):
    """On the CPU the loop keeps its one generator (checkpoints unchanged); the option is still
    written to config.json, like every speed option."""
    from odtbench.data.build import build_dataset
    from odtbench.runcore.dt_loop import DTRun

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    build_dataset("toy/bandit", "smoke", root=tmp_path / "minari")
    cfg = resolve("toy/bandit", "TD3+ODT", "smoke", 0, {})
    monkeypatch.setenv("ODTBENCH_SPEED", "resident_sampling")
    run = DTRun(cfg, tmp_path / "run")
    assert run.speed.resident_sampling and run.sample_gen is run.ctx.gen
    assert run.core.checkpointer.generators == [run.ctx.gen]
    config = run.core.recorder.config_json(run.core.speed_options)
    assert json.loads(json.dumps(config))["provenance"]["speed_options"] == [
        "resident_sampling=True"]
