"""The study's ablation RL kinds of the DT agent (SAC+ODT, SAC, IQL+ODT, AWAC, AWR, PPO):
each loss of odtbench/methods/rl_losses.py against a hand computation on tiny tensors, the
agent's use of them, and the presets, sources and refusals around them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.resolve import resolve
from odtbench.hyperparameters.schemas import DTHyperparameters
from odtbench.methods import DTAgent, get_method, list_methods
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds import kind_names, load_kind, register_kind, unregister_kind
from odtbench.methods.rl_kinds.base import RLKind

torch.set_num_threads(1)
NEW_METHODS = ("SAC+ODT", "SAC", "IQL+ODT", "AWAC", "AWR", "PPO")
S, A, K = 3, 2, 4
MASK = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # left padding in row 0


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# ------------------------------------------------------------------ the losses, by hand
def test_soft_td_target_subtracts_temperature_times_log_pi():
    # y = r + gamma (1 - d) (min Q' - T log pi'):  1 + 0.9 * (2 - 0.5 * -1) = 3.25; done: 0.5
    y = L.soft_td_target(_t([1.0, 0.5]), _t([0.0, 1.0]), _t([2.0, 7.0]), _t([-1.0, 3.0]),
                         0.5, 0.9)
    assert torch.allclose(y, _t([3.25, 0.5]))


def test_sac_actor_loss_is_the_masked_mean_of_t_log_pi_minus_min_q():
    log_pi = _t([[9.0, -1.0, 0.0], [2.0, 1.0, -2.0]])
    q_min = _t([[5.0, 2.0, 1.0], [0.0, 3.0, 1.0]])
    # real entries of 0.1 * log_pi - q: -2.1, -1, 0.2, -2.9, -1.2 -> mean -1.4
    assert L.sac_actor_loss(log_pi, q_min, 0.1, MASK).item() == pytest.approx(-1.4)


def test_expectile_loss_weights_positive_errors_by_tau():
    u = _t([[100.0, 1.0, -2.0], [0.5, 0.0, -1.0]])
    # real: 0.7*1, 0.3*4, 0.7*0.25, 0, 0.3*1 -> (0.7 + 1.2 + 0.175 + 0.3) / 5
    assert L.expectile_loss(u, 0.7, MASK).item() == pytest.approx(2.375 / 5)


def test_exp_weights_and_weighted_log_lik():
    adv = _t([[50.0, 0.0, -1.0], [1.0, 2.0, 10.0]])
    w = L.exp_weights(adv, 1.0 / 2.0, 20.0)  # AWR/AWAC form exp(A / 2), clipped at 20
    want = np.minimum(np.exp(adv.numpy() / 2.0), 20.0)
    assert np.allclose(w.numpy(), want)
    assert w[0, 0].item() == 20.0 and w[1, 2].item() == 20.0
    log_lik = _t([[3.0, -1.0, -2.0], [0.5, -0.5, 1.0]])
    expected = -(want * log_lik.numpy() * MASK.numpy()).sum() / 5
    assert L.weighted_log_lik_loss(w, log_lik, MASK).item() == pytest.approx(expected, rel=1e-6)


def _lambda_returns_np(r, d, v_next, lam, gamma):
    """Independent reference: the forward-view lambda-return truncated at the segment end,
    G_t = (1 - lam) sum_n lam^(n-1) G_t^(n) + lam^(T-t-1) G_t^(T-t) with n-step returns."""
    def n_step(t, n):  # r_t + ... + gamma^(n-1) r_{t+n-1} + gamma^n V(s'_{t+n-1}), cut at dones
        g, disc = 0.0, 1.0
        for k in range(n):
            g += disc * r[t + k]
            if d[t + k]:
                return g
            disc *= gamma
        return g + disc * v_next[t + n - 1]

    T = len(r)
    out = np.zeros(T)
    for t in range(T):
        horizon = T - t
        out[t] = sum((1 - lam) * lam ** (n - 1) * n_step(t, n) for n in range(1, horizon)) \
            + lam ** (horizon - 1) * n_step(t, horizon)
    return out


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_lambda_returns_match_the_forward_view(lam):
    r = np.array([1.0, -0.5, 2.0, 0.25])
    v_next = np.array([3.0, 1.0, -2.0, 4.0])
    for d in (np.zeros(4), np.array([0.0, 1.0, 0.0, 0.0])):
        got = L.lambda_returns(_t(r)[None], _t(d)[None], _t(v_next)[None], lam, 0.9)[0]
        assert np.allclose(got.numpy(), _lambda_returns_np(r, d, v_next, lam, 0.9), atol=1e-5)
    # lambda 0 is TD(0): r + gamma V(s')
    td0 = L.lambda_returns(_t(r)[None], torch.zeros(1, 4), _t(v_next)[None], 0.0, 0.9)[0]
    assert np.allclose(td0.numpy(), r + 0.9 * v_next)


def test_ppo_clipped_surrogate_by_hand():
    log_old = torch.zeros(2, 3)
    ratio = _t([[5.0, 1.5, 0.5], [1.1, 0.5, 2.0]])
    adv = _t([[1.0, 2.0, 1.0], [-1.0, -2.0, -3.0]])
    loss, rho = L.ppo_clipped_loss(ratio.log(), log_old, adv, 0.2, MASK)
    # real entries: min(3, 2.4)=2.4, min(0.5, 0.8)=0.5, -1.1, min(-1, -1.6)=-1.6, -6
    assert loss.item() == pytest.approx(-(2.4 + 0.5 - 1.1 - 1.6 - 6.0) / 5, rel=1e-6)
    assert rho[0, 0].item() == 1.0  # padded: ratio 1 whatever its log-probs
    assert torch.allclose(rho[1], ratio[1])
    # the guard: log rho beyond 20 is capped inside the loss
    _, capped = L.ppo_clipped_loss(_t([[0.0, 100.0, 0.0]]), torch.zeros(1, 3), torch.ones(1, 3),
                                   0.2, torch.ones(1, 3))
    assert capped[0, 1].item() == pytest.approx(math.exp(L.PPO_MAX_LOG_RATIO), rel=1e-5)


# ------------------------------------------------------------------ the agent
def _hp(method: str, **overrides) -> dict:
    hp = dict(resolve("mujoco/hopper-random", method, "smoke").hyperparameters)
    hp.update(embed_dim=8, n_head=1, context_len=K, critic_hidden=8, **overrides)
    return hp


def _batch(b: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, K)
    mask[0, :2] = 0
    return dict(states=torch.randn(b, K, S, generator=g),
                next_states=torch.randn(b, K, S, generator=g),
                actions=(torch.rand(b, K, A, generator=g) * 1.6 - 0.8),
                rewards=torch.randn(b, K, generator=g), dones=torch.zeros(b, K),
                rtg=torch.randn(b, K + 1, generator=g), mask=mask)


def test_iql_critic_loss_is_td_on_v_plus_the_expectile_of_v():
    torch.manual_seed(0)
    agent = DTAgent(_hp("IQL+ODT"), S, A)
    b = _batch()
    assert agent.critic is not None and agent.critic_target is not None and agent.value is not None
    loss, _ = agent.critic_loss(b)
    with torch.no_grad():
        v = lambda s: agent.value(s, s[..., :0])[0]  # noqa: E731
        y = b["rewards"] + 0.99 * (1 - b["dones"]) * v(b["next_states"])
        q = agent.critic(b["states"], b["actions"])
        td = (b["mask"] * (q - y).pow(2).sum(0)).mean()
        u = (agent.critic_target(b["states"], b["actions"]).min(0).values - v(b["states"])).numpy()
        m = b["mask"].numpy()
        ev = (np.where(u < 0, 0.3, 0.7) * u ** 2 * m).sum() / m.sum()
    assert loss.item() == pytest.approx(td.item() + ev, rel=1e-5)


def test_awr_value_loss_regresses_on_lambda_returns_of_the_target_v():
    torch.manual_seed(0)
    agent = DTAgent(_hp("AWR"), S, A)
    b = _batch()
    assert agent.critic is None and agent.value is not None and agent.value_target is not None
    with torch.no_grad():
        agent.value_target.weights[2].add_(0.3)  # target differs from the online V
        loss, v_mean = agent.critic_loss(b)
        v = agent.value(b["states"], b["states"][..., :0])[0].numpy()
        vt = agent.value_target(b["next_states"], b["states"][..., :0])[0].numpy()
    m = b["mask"].numpy()
    g = np.stack([_lambda_returns_np(b["rewards"][i].numpy(), np.zeros(K), vt[i], 0.98, 0.99)
                  for i in range(3)])
    assert loss.item() == pytest.approx(((v - g) ** 2 * m).sum() / m.sum(), rel=1e-5)
    assert v_mean.item() == pytest.approx((v * m).sum() / m.sum(), rel=1e-5)


@pytest.mark.parametrize("method", NEW_METHODS)
def test_each_kind_updates_finitely_and_round_trips_its_checkpoint(method):
    torch.manual_seed(0)
    agent = DTAgent(_hp(method), S, A)
    b = _batch()
    agent.begin_update_round()
    for _ in range(2):
        m = agent.critic_step(b)
        m.update(agent.actor_step(b, rl_coeff=0.1, sup_coeff=float(method.endswith("+ODT"))))
        assert all(torch.isfinite(v).all() for v in m.values()), m
        assert "rl_loss" in m
    state = agent.state_dict()
    torch.manual_seed(5)
    other = DTAgent(_hp(method), S, A)
    other.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(agent.actor.parameters(),
                                                  other.actor.parameters(), strict=True))
    stats = agent.actor_gradient_stats(b, 0.1, 1.0)
    assert stats["grad_rl_norm"] is not None and stats["grad_rl_norm"] > 0


def test_sac_target_and_actor_use_the_temperature():
    torch.manual_seed(0)
    agent = DTAgent(_hp("SAC+ODT"), S, A)
    b = _batch()
    with torch.no_grad():
        agent.temperature.log_temperature.fill_(math.log(1e-8))  # T -> 0: plain min-Q terms
    torch.manual_seed(3)
    cold, _ = agent.critic_loss(b)
    with torch.no_grad():
        agent.temperature.log_temperature.fill_(math.log(10.0))
    torch.manual_seed(3)
    hot, _ = agent.critic_loss(b)
    assert cold.item() != pytest.approx(hot.item())
    # the temperature moves during SAC's actor steps although ODT's entropy flag is off
    before = agent.temperature.log_temperature.item()
    agent.actor_step(b, rl_coeff=0.1, sup_coeff=1.0)
    assert agent.temperature.log_temperature.item() != before and not agent.entropy_reg


def test_ppo_ratio_is_one_at_the_round_start_and_recorded():
    torch.manual_seed(0)
    agent = DTAgent(_hp("PPO"), S, A)
    b = _batch()
    assert agent.ratio_diagnostics() == dict.fromkeys(
        ("ppo_ratio_mean", "ppo_ratio_max", "ppo_log_ratio_max"))
    agent.begin_update_round()
    metrics = agent.actor_step(b, rl_coeff=0.1, sup_coeff=0.0)
    assert not any(k.startswith("ppo_") for k in metrics)  # not in the divergence check
    first = agent.ratio_diagnostics()  # pi_old = pi before this first step: ratio 1
    assert first["ppo_ratio_mean"] == pytest.approx(1.0) and first["ppo_ratio_max"] == pytest.approx(1.0)
    assert first["ppo_log_ratio_max"] == pytest.approx(0.0, abs=1e-6)
    for _ in range(2):
        agent.actor_step(b, rl_coeff=0.1, sup_coeff=0.0)
    later = agent.ratio_diagnostics()
    assert later["ppo_ratio_max"] is not None and later["ppo_ratio_max"] != pytest.approx(1.0)
    assert later["ppo_ratio_max"] >= later["ppo_ratio_mean"] > 0
    assert math.log(later["ppo_ratio_max"]) == pytest.approx(later["ppo_log_ratio_max"], rel=1e-4)
    assert DTAgent(_hp("SAC"), S, A).ratio_diagnostics() == {}


def test_stochastic_kinds_refuse_the_deterministic_head():
    with pytest.raises(OdtbenchError, match="stochastic head"):
        DTAgent(_hp("SAC", stochastic=False), S, A)


# ------------------------------------------------------------------ presets and refusals
def test_new_methods_are_listed_with_their_sources():
    names = list_methods()
    assert all(m in names for m in NEW_METHODS)
    cfg = resolve("mujoco/hopper-random", "SAC+ODT", "quick")
    assert cfg.hyperparameters["rl_coeff"] == 0.1 and "Fig. 9" in cfg.sources["rl_coeff"]
    iql = resolve("mujoco/hopper-random", "IQL+ODT", "paper")
    assert (iql.hyperparameters["iql_expectile"], iql.hyperparameters["iql_temperature"]) == (0.7, 3.0)
    assert "Kostrikov" in iql.sources["iql_expectile"]
    maze = resolve("antmaze/antmaze-large-play", "IQL+ODT", "paper").hyperparameters
    assert (maze["iql_expectile"], maze["iql_temperature"]) == (0.9, 10.0)
    for m, key, author in (("AWAC", "awac_lambda", "Nair"), ("AWR", "awr_beta", "Peng"),
                           ("PPO", "ppo_clip", "Schulman")):
        assert author in resolve("mujoco/hopper-random", m, "paper").sources[key]
    for m in ("SAC", "AWAC", "AWR", "PPO"):  # RL gradient only online, as TD3
        assert get_method(m).preset["sup_coeff"] == 0.0
    # a key of another kind is refused
    with pytest.raises(OdtbenchError, match="ppo_clip"):
        resolve("mujoco/hopper-random", "SAC", "smoke", overrides={"ppo_clip": 0.1})


# ------------------------------------------------------------------ adding a kind
# A worked example of a new RL kind, defined here and registered only for the test: adding a
# kind to the library is this class in its own module under odtbench/methods/rl_kinds/, one
# register_kind line, its page under docs/methods/ and a test like this one.
@dataclasses.dataclass(frozen=True, kw_only=True)
class _MeanQHyperparameters(DTHyperparameters):
    meanq_scale: float  # the kind's own key


class _MeanQ(RLKind):
    """Twin Q critic on the target DT's next actions with the members' mean (not their min)
    as the target; L_RL = -scale * mean_real mean_i Q_i(s, a*); counts its rounds."""

    schema = _MeanQHyperparameters
    hp: _MeanQHyperparameters
    target_actor = True

    def __init__(self, name, agent, hp):
        super().__init__(name, agent, hp)
        self.rounds = 0

    def build_critics(self, hp):
        return {"critic": self.q_critic(hp)}

    def critic_loss(self, batch):
        with torch.no_grad():
            next_actions, _ = self.next_actions(batch)
            q_next = self.critics["critic"].target(batch["next_states"], next_actions).mean(dim=0)
            y = self.bootstrap(batch, q_next)
        return self.q_td_loss(batch, y)

    def rl_term(self, batch, out, stats):
        acts = out.mean if isinstance(out, SquashedGaussian) else out
        q = self.critics["critic"].net(batch["states"], acts, detach_params=True).mean(dim=0)
        stats["meanq_q"] = L.mean_real(q.detach(), batch["mask"])
        return -self.hp.meanq_scale * L.mean_real(q, batch["mask"])

    def begin_round(self):
        self.rounds += 1

    def diagnostics(self):
        return {"meanq_rounds": float(self.rounds)}

    def state_dict(self):
        return {"meanq_rounds": self.rounds}

    def load_state_dict(self, state):
        self.rounds = int(state["meanq_rounds"])


@pytest.fixture
def meanq_kind():
    register_kind("meanq", f"{__name__}:_MeanQ")
    try:
        yield
    finally:
        unregister_kind("meanq")


def test_a_kind_defined_outside_the_library_trains_through_dt_agent(meanq_kind):
    torch.manual_seed(0)
    hp = _hp("TD3+ODT", rl_kind="meanq", meanq_scale=0.5)
    agent = DTAgent(hp, S, A)
    assert isinstance(agent.kind, _MeanQ) and agent.kind.hp.meanq_scale == 0.5
    critic0 = [p.detach().clone() for p in agent.critic.parameters()]
    actor0 = [p.detach().clone() for p in agent.actor.parameters()]
    seeds = iter(range(100))
    agent.begin_update_round()
    for _ in range(3):
        m = agent.train_unit(lambda: _batch(seed=next(seeds)), rl_coeff=0.1, sup_coeff=1.0)
        assert {"critic_loss", "q_mean", "rl_loss", "meanq_q", "actor_loss"} <= set(m)
        assert all(torch.isfinite(v).all() for v in m.values()), m
    # both the critic and the actor learnt, and the Polyak targets followed
    assert not any(torch.equal(p, q) for p, q in zip(agent.critic.parameters(), critic0, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(agent.actor.parameters(), actor0, strict=True))
    assert not torch.equal(agent.actor_target.head.linear.weight, agent.actor.head.linear.weight)
    assert agent.kind_diagnostics() == {"meanq_rounds": 1.0}
    # its checkpoint: the critic's three entries and the kind's own, restored exactly
    state = agent.state_dict()
    assert {"critic", "critic_target", "critic_opt", "meanq_rounds"} <= set(state)
    assert "value" not in state
    torch.manual_seed(7)
    other = DTAgent(hp, S, A)
    other.load_state_dict(state)
    assert other.kind.rounds == 1
    b = _batch(seed=200)
    torch.manual_seed(1)
    mine = agent.critic_step(b)["critic_loss"]
    torch.manual_seed(1)
    assert torch.equal(other.critic_step(b)["critic_loss"], mine)
    # its key is required, its name listed with the registered kinds
    with pytest.raises(OdtbenchError, match="meanq_scale"):
        DTAgent({k: v for k, v in hp.items() if k != "meanq_scale"}, S, A)
    assert "meanq" in kind_names()


def test_every_registered_kind_loads_and_the_unknown_one_is_named():
    for name in kind_names():
        assert issubclass(load_kind(name), RLKind)
    with pytest.raises(UnknownChoiceError, match="rl_kind"):
        load_kind("trpo")
