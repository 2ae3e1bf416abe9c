"""TD3+BC and IQL: losses against hand-computed values, registration and presets, and
smoke-scale runs on a generated hopper-random dataset (contract files, resume after a crash)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import resolve
from odtbench.methods import get_method, list_methods
from odtbench.runfiles.results import validate_run
from odtbench_baselines import iql, td3bc
from odtbench_baselines.mlp_loop import MLPRun

torch.set_num_threads(1)
TASK = "mujoco/hopper-random"


# ----------------------------------------------------------------------------- losses

def test_td3bc_actor_loss_matches_hand_computation():
    q = torch.tensor([1.0, -3.0])
    pi = torch.tensor([[0.5], [0.0]])
    batch = {"actions": torch.tensor([[0.0], [0.0]])}
    # lambda = 2.5 / mean|Q| = 1.25; -lambda mean Q = 1.25; MSE = (0.25 + 0) / 2
    assert td3bc.td3bc_actor_loss(q, pi, batch).item() == pytest.approx(1.25 + 0.125)
    assert td3bc.td3bc_actor_loss(q, pi, batch, alpha=0.0).item() == pytest.approx(0.125)


def test_td3bc_lambda_is_not_differentiated():
    q = torch.tensor([2.0, 2.0], requires_grad=True)
    pi = torch.zeros(2, 1)
    td3bc.td3bc_actor_loss(q, pi, {"actions": pi}).backward()
    # d/dQ of -lambda mean Q with lambda held fixed at 2.5 / 2
    assert q.grad.tolist() == pytest.approx([-1.25 / 2, -1.25 / 2])


def test_expectile_loss_matches_hand_computation():
    diff = torch.tensor([2.0, -1.0])
    # weights 0.7 (positive) and 0.3 (negative): (0.7 * 4 + 0.3 * 1) / 2
    assert iql.expectile_loss(diff, 0.7).item() == pytest.approx(1.55)
    assert iql.expectile_loss(diff, 0.5).item() == pytest.approx(0.5 * (4 + 1) / 2)


def test_awr_weights_exponentiate_and_clip():
    q, v = torch.tensor([1.0, 0.0, 10.0]), torch.tensor([0.5, 0.0, 0.0])
    w = iql.awr_weights(q, v, temperature=3.0)
    assert w.tolist() == pytest.approx([math.exp(1.5), 1.0, 100.0])


def test_iql_policy_log_prob_and_std_clip():
    pol = iql.GaussianPolicy(2, 1, (4,), log_std_min=-5.0, log_std_max=2.0)
    with torch.no_grad():
        for p in pol.net.parameters():
            p.zero_()
        pol.net[-1].bias.fill_(math.atanh(0.5))  # mean = tanh(atanh 0.5) = 0.5
        pol.log_std.fill_(math.log(2.0))
    lp = pol.log_prob(torch.zeros(1, 2), torch.tensor([[1.5]]))
    # N(1.5; 0.5, 2^2): -0.5 (1/2)^2 - log 2 - 0.5 log 2 pi
    assert lp.item() == pytest.approx(-0.125 - math.log(2) - 0.5 * math.log(2 * math.pi))
    with torch.no_grad():
        pol.log_std.fill_(-9.0)
    assert pol(torch.zeros(1, 2))[1].item() == -5.0


def test_iql_update_uses_the_updated_value_in_the_critic_target():
    hp = {**full_record("IQL"), "mlp_hidden": 4, "iql_critic_lr": 0.0,
          "iql_actor_lr": 0.0, "iql_value_lr": 0.0}
    agent = iql.IQLAgent(hp, 2, 1, total_updates=10)
    with torch.no_grad():  # V(s) = 3 everywhere
        for p in agent.value.parameters():
            p.zero_()
        agent.value[-1].bias.fill_(3.0)
    batch = {"observations": torch.zeros(2, 2), "actions": torch.zeros(2, 1),
             "rewards": torch.tensor([1.0, 1.0]), "next_observations": torch.ones(2, 2),
             "terminations": torch.tensor([0.0, 1.0])}
    with torch.no_grad():
        q = agent.critic(batch["observations"], batch["actions"])
    m = agent.update(batch)
    y = torch.tensor([1.0 + 0.99 * 3.0, 1.0])  # r + gamma (1 - d) V(s')
    assert m["critic_loss"] == pytest.approx(((q - y) ** 2).mean(dim=1).sum().item(), rel=1e-5)


def test_iql_cosine_actor_schedule_decays_to_zero():
    hp = {**full_record("IQL"), "mlp_hidden": 4}
    agent = iql.IQLAgent(hp, 2, 1, total_updates=4)
    lrs = []
    for _ in range(5):
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
        agent.actor_opt.step()  # no gradients: a no-op, in the order the scheduler expects
        agent.actor_sched.step()
    assert lrs == pytest.approx([3e-4 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)] + [0.0])
    const = iql.IQLAgent({**hp, "iql_actor_schedule": "constant"}, 2, 1, total_updates=4)
    const.actor_opt.step()
    const.actor_sched.step()
    assert const.actor_opt.param_groups[0]["lr"] == 3e-4


def test_iql_reward_scale_is_1000_over_the_return_spread():
    from odtbench.data.trajectories import Trajectory

    def traj(rews):
        n = len(rews)
        return Trajectory(np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32),
                          np.asarray(rews, np.float32), np.zeros((n, 1), np.float32),
                          np.zeros(n, bool), np.zeros(n, bool))

    trajs = [traj([1.0, 2.0]), traj([10.0]), traj([-1.0, 0.5])]  # returns 3, 10, -0.5
    assert iql.reward_scale(trajs) == pytest.approx(1000 / 10.5)


# ----------------------------------------------------------------------------- registry

def test_all_seven_methods_are_registered_in_the_study_legend_order():
    assert list_methods()[:7] == ["TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT"]
    assert get_method("TD3+BC").runner == "odtbench_baselines.td3bc:run"
    assert get_method("IQL").family == get_method("TD3+BC").family == "mlp"


def test_presets_hold_the_papers_values_and_scales_only_shrink_budgets():
    paper = resolve(TASK, "IQL", "paper").hyperparameters
    assert (paper["iql_expectile"], paper["iql_temperature"]) == (0.7, 3.0)
    assert paper["mlp_pretrain_steps"] == 1_000_000 and paper["mlp_hidden"] == 256
    assert paper["online_budget"] == 500_000  # the study's MuJoCo budget, as the DT family
    suites = get_method("IQL").suite_presets
    assert (suites["antmaze"]["iql_expectile"], suites["antmaze"]["iql_temperature"]) == (0.9, 10.0)
    assert suites["adroit"]["iql_temperature"] == 0.5
    bc = resolve(TASK, "TD3+BC", "paper").hyperparameters
    assert bc["td3bc_alpha"] == 2.5 and bc["td3bc_normalize_states"] is True
    smoke = resolve(TASK, "TD3+BC", "smoke")
    assert smoke.hyperparameters["td3bc_alpha"] == 2.5
    assert smoke.sources["mlp_pretrain_steps"] == "method preset TD3+BC (scale smoke)"


def test_bad_protocol_values_raise_one_line_errors(tmp_path):
    # resolve() checks the values first (odtbench/hyperparameters/checks.py) ...
    with pytest.raises(OdtbenchError, match="mlp_eval_every=0 is invalid: must be an integer > 0"):
        resolve(TASK, "TD3+BC", "smoke", overrides={"mlp_eval_every": 0})
    with pytest.raises(OdtbenchError, match="iql_actor_schedule='linear' is invalid"):
        resolve(TASK, "IQL", "smoke", overrides={"iql_actor_schedule": "linear"})
    # ... and the run and the agent still refuse hyperparameters built by hand
    cfg = resolve(TASK, "TD3+BC", "smoke")
    cfg.hyperparameters["mlp_eval_every"] = 0
    with pytest.raises(OdtbenchError, match="mlp_eval_every must be >= 1"):
        MLPRun(td3bc.METHOD, cfg, tmp_path)
    cfg = resolve(TASK, "IQL", "smoke")
    cfg.hyperparameters["iql_actor_schedule"] = "linear"
    with pytest.raises(OdtbenchError, match="unknown iql_actor_schedule 'linear'"):
        iql.IQLAgent(cfg.hyperparameters, 2, 1, 10)


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def finished(hopper_data, tmp_path_factory):
    """One smoke run of each MLP baseline: {method: run directory}."""
    out = {}
    for name, module in (("TD3+BC", td3bc), ("IQL", iql)):
        d = tmp_path_factory.mktemp("run") / "mujoco" / "hopper-random" / name / "seed0"
        module.run(resolve(TASK, name, "smoke", seed=0), d)
        out[name] = d
    return out


@pytest.mark.parametrize("method", ["TD3+BC", "IQL"])
def test_smoke_run_writes_valid_contract_files(method, finished):
    rec = validate_run(finished[method])
    hp = resolve(TASK, method, "smoke").hyperparameters
    s = rec.summary
    assert s["status"] == "complete" and s["method"] == method
    assert s["online_transitions"] == hp["online_budget"]
    curve = rec.curve
    pre, onl = curve[curve.phase == "pretrain"], curve[curve.phase == "online"]
    # 20 offline updates evaluated every 10; online every 40 of 120 transitions
    assert len(pre) == 2 and (pre.online_transitions == 0).all()
    assert onl.online_transitions.tolist() == [40, 80, 120]
    expected_actor = {"TD3+BC": 20 // 2, "IQL": 20}[method]  # TD3+BC: actor every 2nd update
    assert pre.gradient_steps.iloc[-1] == expected_actor
    assert s["before_score"] == pytest.approx(pre.score_mean.iloc[-1])
    conf = json.loads((finished[method] / "config.json").read_text())
    assert conf["method"] == method and conf["hyperparameters"]["mlp_hidden"] == 16


def test_killed_mlp_run_resumes_to_the_same_results(finished, tmp_path, monkeypatch):
    """A crash mid-way through the online phase, then a fresh process-like restart: the
    buffer chunks and RNG states reproduce the uninterrupted run exactly."""
    from odtbench.runcore import core as runcore  # the one update counter and its kill hook

    class Killed(Exception):
        pass

    def fake_kill(pid, sig):
        raise Killed

    cfg = resolve(TASK, "TD3+BC", "smoke", seed=0)
    out = tmp_path / "killed"
    monkeypatch.setattr(runcore, "_KILL_AT", 90)  # online: 20 offline + 70 online updates
    monkeypatch.setattr(runcore.os, "kill", fake_kill)
    with pytest.raises(Killed):
        td3bc.run(cfg, out)
    assert not (out / "summary.json").exists()
    assert any((out / "checkpoint").glob("online_*.npz"))  # online chunks were checkpointed
    monkeypatch.setattr(runcore, "_KILL_AT", -1)
    td3bc.run(cfg, out)
    a = json.loads((finished["TD3+BC"] / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    for d in (a, b):
        d.pop("wall_time_s")
    assert a == b
    ca = validate_run(finished["TD3+BC"]).curve.drop(columns="wall_time_s")
    cb = validate_run(out).curve.drop(columns="wall_time_s")
    assert ca.equals(cb)


def test_iql_replay_fifo_keeps_the_latest_online_transitions_and_resumes(hopper_data, tmp_path,
                                                                          monkeypatch):
    """Capacity 30 < offline data < 120 online transitions: the buffer ends holding the last
    30 online transitions, and a killed run resumes through the wrapped FIFO identically."""
    import odtbench_baselines.mlp_loop as mlp_loop

    cfg = resolve(TASK, "IQL", "smoke", seed=0, overrides={"mlp_replay_size": 30})
    r = mlp_loop.MLPRun(iql.METHOD, cfg, tmp_path / "full")
    assert r.n_offline > 30 and r.buffer.size == 30  # a random offline subset fits
    r.execute()
    chunks = sorted((tmp_path / "full" / "checkpoint").glob("online_*.npz"))
    online = np.concatenate([np.load(c)["rewards"] for c in chunks])
    assert len(online) == 120
    assert np.array_equal(r.buffer.rewards[r.buffer.positions_of_last(30)], online[-30:])

    class Killed(Exception):
        pass

    def fake_kill(pid, sig):
        raise Killed

    out = tmp_path / "killed"
    from odtbench.runcore import core as runcore  # the one update counter and its kill hook

    monkeypatch.setattr(runcore, "_KILL_AT", 110)  # 20 offline + 90 online updates
    monkeypatch.setattr(runcore.os, "kill", fake_kill)
    with pytest.raises(Killed):
        iql.run(cfg, out)
    monkeypatch.setattr(runcore, "_KILL_AT", -1)
    iql.run(cfg, out)
    a = json.loads((tmp_path / "full" / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    for d in (a, b):
        d.pop("wall_time_s")
    assert a == b
