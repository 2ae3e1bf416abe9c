"""DT agent losses against hand computations; LAMB, warm-up and Polyak."""

from __future__ import annotations

import math

import pytest
import torch
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.errors import OdtbenchError
from odtbench.methods.dt_agent import DTAgent
from odtbench.methods.optim import FlatParameters, Lamb, linear_warmup, polyak_

torch.set_num_threads(1)
S, A = 3, 2


def _hp(**overrides) -> dict:
    hp = full_record(embed_dim=16, n_layer=1, n_head=2, dropout=0.0, embed_dropout=0.0, context_len=4, stochastic=False,
              entropy_reg=False, init_temperature=0.1, lr_actor=1e-3, weight_decay=1e-4,
              warmup_steps=1, grad_clip=0.25, critic_hidden=8, critic_layernorm=False,
              n_critics=2, lr_critic=1e-3, critic_weight_decay=0.01, gamma=0.9, tau=0.005,
              policy_noise=0.0, noise_clip=0.5, rl_kind="td3", actor_update_interval=2)
    hp.update(overrides)
    return hp


def _agent(seed: int = 0, **overrides) -> DTAgent:
    torch.manual_seed(seed)
    return DTAgent(_hp(**overrides), S, A)


def _batch(b: int = 2, k: int = 4, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, k)
    mask[0, :2] = 0  # left padding in the first segment
    dones = torch.zeros(b, k)
    dones[0, :2] = 2.0
    dones[-1, -1] = 1.0
    return dict(states=torch.randn(b, k, S, generator=g),
                next_states=torch.randn(b, k, S, generator=g),
                actions=(torch.rand(b, k, A, generator=g) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6),
                rewards=torch.randn(b, k, generator=g), dones=dones,
                rtg=torch.randn(b, k + 1, generator=g),
                timesteps=torch.arange(k).repeat(b, 1), mask=mask)


@torch.no_grad()
def _set_linear_critic(q, k: list[float], c: list[float]) -> None:
    """Make critic i compute Q_i(s, a) = k_i * a_0 + c_i (hidden units stay in ReLU's linear range)."""
    for w in (*q.weights, *q.biases):
        w.zero_()
    for i, (ki, ci) in enumerate(zip(k, c, strict=True)):
        q.weights[0][i, S + 0, 0] = 1.0  # h1_0 = a_0 + 10 > 0
        q.biases[0][i, 0, 0] = 10.0
        q.weights[1][i, 0, 0] = 1.0  # h2_0 = h1_0
        q.weights[2][i, 0, 0] = ki
        q.biases[2][i, 0, 0] = ci - 10.0 * ki


def test_td3_critic_loss_hand_numbers():
    agent = _agent(policy_noise=0.2)  # the constant critics below ignore the action noise
    _set_linear_critic(agent.critic_target, k=[0.0, 0.0], c=[1.0, 3.0])
    _set_linear_critic(agent.critic, k=[0.0, 0.0], c=[0.0, 1.0])
    batch = _batch(b=1, k=3)
    batch.update(mask=torch.tensor([[0.0, 1.0, 1.0]]), rewards=torch.tensor([[0.5, 1.0, 2.0]]),
                 dones=torch.tensor([[2.0, 0.0, 1.0]]))
    out = agent.critic_step(batch)
    # y = r + 0.9 (1 - d) min(1, 3) = [-0.4, 1.9, 2.0]; Q1 = 0, Q2 = 1; padded entry is
    # masked but counts in the denominator: ((1.9^2 + 0.9^2) + (2^2 + 1^2)) / 3 = 3.14
    assert out["critic_loss"].item() == pytest.approx(3.14, abs=1e-5)
    assert out["q_mean"].item() == pytest.approx(0.5, abs=1e-6)
    assert not out["critic_loss"].requires_grad


def test_critic_target_uses_target_dt_on_shifted_window_and_min_of_critics():
    agent = _agent()
    with torch.no_grad():  # make the online actor differ from its target
        for p in agent.actor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _set_linear_critic(agent.critic_target, k=[1.0, -1.0], c=[0.0, 0.0])  # min = -|a'_0|
    batch = _batch()
    with torch.no_grad():
        acts = batch["actions"]
        shifted = torch.cat((acts[:, 1:], torch.zeros_like(acts[:, :1])), dim=1)
        a_next = agent.actor_target(batch["next_states"], shifted, batch["rtg"][:, 1:])
        a_next = a_next.clamp(-1 + 1e-6, 1 - 1e-6)
        y = batch["rewards"] + 0.9 * (1 - batch["dones"]) * -a_next[..., 0].abs()
        q = agent.critic(batch["states"], acts)
        expected = (batch["mask"] * ((q - y) ** 2).sum(0)).sum() / batch["mask"].numel()
    out = agent.critic_step(batch)
    assert out["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_ddpg_uses_one_critic_and_no_smoothing_noise():
    losses = {}
    for kind, n, noise in (("ddpg", 1, 0.0), ("td3", 2, 0.2)):
        per_seed = []
        for seed in (1, 2):
            agent = _agent(rl_kind=kind, n_critics=n, policy_noise=noise)
            torch.manual_seed(seed)
            per_seed.append(agent.critic_step(_batch())["critic_loss"].item())
        losses[kind] = per_seed
        assert agent.critic.n_critics == n and agent.critic_target.n_critics == n
    assert losses["ddpg"][0] == losses["ddpg"][1]
    assert losses["td3"][0] != losses["td3"][1]
    with pytest.raises(OdtbenchError, match="n_critics=1"):
        _agent(rl_kind="ddpg", n_critics=2)


def test_deterministic_supervised_loss_on_real_positions_only():
    agent = _agent()
    batch = _batch()
    with torch.no_grad():
        pred = agent.actor(batch["states"], batch["actions"], batch["rtg"][:, :-1], batch["mask"])
    err = ((pred - batch["actions"]) ** 2).mean(-1)
    expected = (err[0, 2:].sum() + err[1].sum()) / 6  # 2 + 4 real positions
    out = agent.actor_step(batch, rl_coeff=0.0, sup_coeff=1.0)
    assert out["sup_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert "rl_loss" not in out
    # Targets at padded positions do not enter the loss.
    agent2 = _agent()
    batch2 = _batch()
    batch2["actions"][0, :2] = 0.9
    assert agent2.actor_step(batch2, 0.0, 1.0)["sup_loss"].item() == pytest.approx(
        out["sup_loss"].item(), rel=1e-6)


def test_stochastic_loss_log_likelihood_entropy_and_temperature_update():
    agent = _agent(stochastic=True, entropy_reg=True, rl_kind="none")
    assert not agent.uses_critic and agent.critic_step(_batch()) == {}
    batch = _batch()
    with torch.no_grad():
        dist = agent.actor(batch["states"], batch["actions"], batch["rtg"][:, :-1], batch["mask"])
        log_lik = (dist.log_prob(batch["actions"]) * batch["mask"]).sum() / batch["mask"].sum()
        torch.manual_seed(5)
        entropy = dist.entropy().mean()  # over all positions, padding included
    torch.manual_seed(5)
    out = agent.actor_step(batch, rl_coeff=0.0, sup_coeff=1.0)
    assert out["entropy"].item() == pytest.approx(entropy.item(), rel=1e-5)
    assert out["sup_loss"].item() == pytest.approx(-(log_lik + 0.1 * entropy).item(), rel=1e-5)
    # Adam's first step moves log T by lr * sign(grad), grad = T (H - target_entropy).
    delta = agent.log_temperature.item() - torch.tensor(math.log(0.1)).item()  # float32 start
    assert delta == pytest.approx(-1e-4 * math.copysign(1.0, entropy.item() + A), abs=3e-7)
    with pytest.raises(OdtbenchError, match="rl_kind is 'none'"):
        agent.actor_step(batch, rl_coeff=0.1, sup_coeff=1.0)


def test_rl_term_uses_q1_only_on_real_positions_and_combines_coefficients():
    agent = _agent()
    _set_linear_critic(agent.critic, k=[1.0, 0.0], c=[3.0, -10.0])  # Q1 = a_0 + 3, Q2 = -10
    critic_before = [p.clone() for p in agent.critic.parameters()]
    batch = _batch()
    with torch.no_grad():
        pred = agent.actor(batch["states"], batch["actions"], batch["rtg"][:, :-1], batch["mask"])
    q1 = pred[..., 0] + 3.0
    expected_rl = -(q1[0, 2:].sum() + q1[1].sum()) / 6
    out = agent.actor_step(batch, rl_coeff=2.0, sup_coeff=0.5)
    assert out["rl_loss"].item() == pytest.approx(expected_rl.item(), rel=1e-5)
    assert out["actor_loss"].item() == pytest.approx(
        0.5 * out["sup_loss"].item() + 2.0 * out["rl_loss"].item(), rel=1e-5)
    for p, p0 in zip(agent.critic.parameters(), critic_before, strict=True):
        # the actor step leaves the critic alone (its flat gradient buffer stays all zero)
        assert not p.grad.any() and torch.equal(p, p0)


def test_actor_step_polyaks_both_targets_and_reset_copies():
    agent = _agent(tau=0.5)
    with torch.no_grad():
        for p in agent.critic.parameters():
            p.add_(1.0)
    old_critic_t = [p.clone() for p in agent.critic_target.parameters()]
    old_actor_t = [p.clone() for p in agent.actor_target.parameters()]
    agent.actor_step(_batch(), rl_coeff=0.1, sup_coeff=1.0)
    for t, t0, o in zip(agent.critic_target.parameters(), old_critic_t,
                        agent.critic.parameters(), strict=True):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * o)
    for t, t0, o in zip(agent.actor_target.parameters(), old_actor_t,
                        agent.actor.parameters(), strict=True):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * o)
    agent.reset_targets()
    for t, o in zip(agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        assert torch.equal(t, o)
    assert all(not p.requires_grad for p in agent.actor_target.parameters())


def test_lamb_one_step_matches_hand_computation():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    opt = Lamb([w], lr=0.01, weight_decay=0.1)
    w.grad = torch.tensor([0.6, 0.8])  # norm 1: the global clip at 1.0 is a no-op
    opt.step()
    # step 1: m_hat = g, v_hat = g^2, so adam = g / (|g| + eps); u = adam + wd * w
    u = [0.6 / (0.6 + 1e-8) + 0.3, 0.8 / (0.8 + 1e-8) + 0.4]
    ratio = 5.0 / math.hypot(*u)  # ||w|| / ||u||
    expected = [3.0 - 0.01 * ratio * u[0], 4.0 - 0.01 * ratio * u[1]]
    assert w.tolist() == pytest.approx(expected, abs=1e-6)


def test_lamb_global_clip_and_zero_norm_fallback():
    def run(max_norm, grads):
        p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        opt = Lamb([p], lr=0.1, weight_decay=0.01, max_grad_norm=max_norm)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        return p.detach()

    g1, g2 = torch.tensor([6.0, 0.0, 8.0]), torch.tensor([0.1, -0.3, 0.2])  # norms 10, < 1
    torch.testing.assert_close(run(1.0, [g1, g2]), run(None, [g1 / 10, g2]))
    assert not torch.allclose(run(None, [g1, g2]), run(None, [g1 / 10, g2]))
    z = torch.nn.Parameter(torch.zeros(2))  # ||w|| = 0: trust ratio falls back to 1
    opt = Lamb([z], lr=0.1, weight_decay=0.5)
    z.grad = torch.tensor([2.0, -1.0])
    opt.step()
    assert z.tolist() == pytest.approx([-0.1, 0.1], abs=1e-6)


def test_lamb_on_a_flat_buffer_equals_lamb_per_tensor():
    """Per-segment trust ratios on FlatParameters = LAMB over the separate tensors."""
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))

    a, b = net(), net()
    flat = FlatParameters(b)
    opt_a = Lamb(a.parameters(), lr=0.01, weight_decay=5e-4)
    opt_b = Lamb([flat.param], lr=0.01, weight_decay=5e-4, segments=flat.sizes)
    x = torch.randn(16, 4)
    for _ in range(3):
        for m, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad(set_to_none=False)
            m(x).pow(2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)
    assert flat.is_bound(b)  # in-place zeroing and steps kept every view bound
    b.zero_grad(set_to_none=True)
    assert not flat.is_bound(b)
    with pytest.raises(OdtbenchError, match="segments"):
        Lamb([flat.param], segments=flat.sizes[:-1])


def test_agent_networks_stay_flat_through_updates_and_checkpoints():
    agent = _agent()
    agent.critic_step(_batch())
    agent.actor_step(_batch(), rl_coeff=0.1, sup_coeff=1.0)
    fresh = _agent()
    fresh.load_state_dict(agent.state_dict())
    for ag in (agent, fresh):
        assert ag.actor_flat.is_bound(ag.actor) and ag._critic_flat.is_bound(ag.critic)
        assert ag._actor_target_flat.is_bound(ag.actor_target)
    for p, q in zip(agent.actor.parameters(), fresh.actor.parameters(), strict=True):
        assert torch.equal(p, q)


def test_linear_warmup_and_polyak():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = Lamb([p], lr=1.0)
    sched = linear_warmup(opt, 4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    with pytest.raises(OdtbenchError):
        linear_warmup(opt, -1)
    target, online = [torch.zeros(2), torch.ones(1)], [torch.tensor([2.0, 4.0]), torch.zeros(1)]
    polyak_(target, online, 0.25)
    assert target[0].tolist() == [0.5, 1.0] and target[1].tolist() == [0.75]
