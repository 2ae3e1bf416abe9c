"""Learning diagnostics (diagnostics.csv) on hand-built data, and a run that writes them."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.data.trajectories import Trajectory
from odtbench.methods.dt_agent import DTAgent
from odtbench.runfiles.diagnostics import (
    OnlineEpisodeStats,
    critic_vs_returns,
    discounted_returns,
    gradient_stats,
    max_abs_z,
    online_share,
    pearson,
)
from odtbench.runfiles.results import DIAGNOSTIC_COLUMNS

torch.set_num_threads(1)


def _traj(rewards, online=False, obs=None):
    n = len(rewards)
    o = np.zeros((n, 2), np.float32) if obs is None else np.asarray(obs, np.float32)
    t = Trajectory(o, np.zeros((n, 1), np.float32), np.asarray(rewards, np.float32), o.copy(),
                   np.zeros(n, bool), np.zeros(n, bool))
    t.online = online
    return t


def test_discounted_monte_carlo_return_by_hand():
    # G_2 = 1, G_1 = 1 + 0.5 * 1 = 1.5, G_0 = 1 + 0.5 * 1.5 = 1.75
    assert discounted_returns(np.array([1.0, 1.0, 1.0]), 0.5).tolist() == [1.75, 1.5, 1.0]
    assert discounted_returns(np.array([0.0, 0.0, 4.0]), 0.5).tolist() == [1.0, 2.0, 4.0]


def test_critic_against_returns_on_a_two_episode_buffer():
    gamma = 0.5
    rewards = [np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 4.0])]
    # a critic that equals the Monte-Carlo return exactly, and one that is its mirror image
    exact = [np.array([1.75, 1.5, 1.0]), np.array([1.0, 2.0, 4.0])]
    d = critic_vs_returns(exact, rewards, gamma)
    assert d["q_s0"] == pytest.approx((1.75 + 1.0) / 2)
    assert d["mc_return_s0"] == pytest.approx((1.75 + 1.0) / 2)
    assert d["q_mc_corr"] == pytest.approx(1.0)
    mirrored = [-q for q in exact]
    assert critic_vs_returns(mirrored, rewards, gamma)["q_mc_corr"] == pytest.approx(-1.0)
    # an overestimating critic (x4.5 + 3): perfect shape, wrong level
    over = [4.5 * q + 3 for q in exact]
    d = critic_vs_returns(over, rewards, gamma)
    assert d["q_s0"] == pytest.approx(4.5 * 1.375 + 3) and d["q_mc_corr"] == pytest.approx(1.0)
    assert critic_vs_returns([], [], gamma) == {"q_s0": None, "mc_return_s0": None,
                                                "q_mc_corr": None}


def test_pearson_needs_three_points_and_variance():
    assert pearson(np.array([1.0, 2.0]), np.array([1.0, 2.0])) is None
    assert pearson(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) is None
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(x, np.array([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)


def test_online_share_counts_transitions_not_trajectories():
    buf = [_traj([0.0] * 6), _traj([0.0] * 2, online=True), _traj([0.0] * 2, online=True)]
    assert online_share(buf) == pytest.approx(4 / 10)
    assert online_share([]) == 0.0


def test_max_abs_z_and_online_episode_stats():
    mean, std = np.array([0.0, 10.0]), np.array([1.0, 2.0])
    obs = np.array([[0.5, 10.0], [-3.0, 0.0]])  # z = (0.5, 0), (-3, -5)
    assert max_abs_z(obs, mean, std) == pytest.approx(5.0)
    acc = OnlineEpisodeStats.empty()
    assert OnlineEpisodeStats.row(acc)["online_return_mean"] is None
    OnlineEpisodeStats.add(acc, [_traj([1.0, 2.0], obs=obs), _traj([3.0], obs=[[0.0, 10.0]])],
                           mean, std)
    row = OnlineEpisodeStats.row(acc)
    assert row == {"online_episodes": 2, "online_return_mean": pytest.approx(3.0),
                   "online_length_mean": pytest.approx(1.5), "online_max_abs_z": pytest.approx(5.0)}


def test_gradient_norms_and_cosine_by_hand():
    g_sup, g_rl = torch.tensor([3.0, 4.0]), torch.tensor([-6.0, -8.0])
    d = gradient_stats(g_sup, g_rl, sup_coeff=1.0, rl_coeff=0.1)
    assert d["grad_sup_norm"] == pytest.approx(5.0)
    assert d["grad_rl_norm"] == pytest.approx(1.0)  # 0.1 * 10
    assert d["grad_cosine"] == pytest.approx(-1.0)
    d = gradient_stats(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), 1.0, 1.0)
    assert d["grad_cosine"] == pytest.approx(0.0)
    assert gradient_stats(g_sup, None, 1.0, 0.0)["grad_rl_norm"] is None


def _agent() -> DTAgent:
    hp = full_record(embed_dim=16, n_layer=1, n_head=2, dropout=0.1, embed_dropout=0.1, context_len=4, stochastic=False,
              entropy_reg=False, init_temperature=0.1, lr_actor=1e-3, weight_decay=1e-4,
              warmup_steps=1, grad_clip=0.25, critic_hidden=8, critic_layernorm=False,
              n_critics=2, lr_critic=1e-3, critic_weight_decay=0.01, gamma=0.9, tau=0.005,
              policy_noise=0.2, noise_clip=0.5, rl_kind="td3", actor_update_interval=2)
    torch.manual_seed(0)
    return DTAgent(hp, 3, 2)


def _batch(b=3, k=4):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, k)
    mask[0, :2] = 0
    return dict(states=torch.randn(b, k, 3, generator=g), next_states=torch.randn(b, k, 3, generator=g),
                actions=torch.rand(b, k, 2, generator=g) * 1.8 - 0.9, rewards=torch.randn(b, k, generator=g),
                dones=torch.zeros(b, k), rtg=torch.randn(b, k + 1, generator=g),
                timesteps=torch.arange(k).repeat(b, 1), mask=mask)


def test_actor_gradient_stats_match_autograd_and_change_nothing():
    agent, batch = _agent(), _batch()
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    rng = torch.get_rng_state()
    d = agent.actor_gradient_stats(batch, rl_coeff=0.1, sup_coeff=1.0)
    assert torch.equal(rng, torch.get_rng_state())  # the run's RNG stream is untouched
    assert all(torch.equal(before[k], v) for k, v in agent.actor.state_dict().items())
    assert all(p.grad is None or not p.grad.any() for p in agent.actor.parameters())
    # the same numbers by hand: the two terms' gradients under the same dropout draw
    params = list(agent.actor.parameters())
    with torch.random.fork_rng(devices=[]):
        sup, rl, _ = agent._actor_terms(batch, with_rl=True)
        g1 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(sup, params, retain_graph=True)])
        g2 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(rl, params)])
    assert d["grad_sup_norm"] == pytest.approx(float(g1.norm()), rel=1e-5)
    assert d["grad_rl_norm"] == pytest.approx(0.1 * float(g2.norm()), rel=1e-5)
    cos = float(g1 @ g2) / (float(g1.norm()) * float(g2.norm()))
    assert d["grad_cosine"] == pytest.approx(cos, rel=1e-4, abs=1e-6)
    assert -1.0 <= d["grad_cosine"] <= 1.0


@pytest.mark.slow  # a smoke run
@pytest.mark.parametrize("method", ["TD3+ODT", "ODT"])
def test_a_smoke_run_writes_one_diagnostics_row_per_evaluation(method, tmp_path, monkeypatch):
    from odtbench.data.build import build_dataset
    from odtbench.hyperparameters.resolve import resolve
    from odtbench.runcore.dt_loop import run

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("ODTBENCH_PROGRESS", "0")
    build_dataset("toy/bandit", "smoke", root=tmp_path / "minari")
    out = tmp_path / "run"
    run(resolve("toy/bandit", method, "smoke", seed=0), out)
    with open(out / "curve.csv") as f:
        curve = list(csv.DictReader(f))
    with open(out / "diagnostics.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == DIAGNOSTIC_COLUMNS
        diag = list(reader)
    assert [(r["phase"], r["iteration"]) for r in diag] == [(r["phase"], r["iteration"]) for r in curve]
    online = [r for r in diag if r["phase"] == "online"]
    assert all(0 < float(r["buffer_online_share"]) <= 1 for r in online)
    assert all(int(r["online_episodes"]) == 64 for r in online)  # the toy: 64 rollouts per epoch
    assert all(math.isfinite(float(r["grad_sup_norm"])) for r in diag)
    has_critic = method != "ODT"
    assert all((r["q_mc_corr"] != "" or r["q_s0"] != "") == has_critic for r in diag)
    assert all((r["grad_cosine"] != "") == has_critic for r in diag)
