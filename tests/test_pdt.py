"""PDT (docs/methods/pdt.md): loss terms against hand-computed values, gradient flow, token order,
the sub-trajectory sampler, guided latent choice, and a smoke run with kill + resume."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import resolve
from odtbench.runcore import core as runcore  # the one update counter and its kill hook
from odtbench.runfiles.results import validate_run
from odtbench_baselines import pdt, pdt_loop

torch.set_num_threads(1)
TASK = "mujoco/hopper-random"
S, A, Z, K = 3, 2, 4, 4
LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- maths

def test_gaussian_kl_and_nll_match_closed_forms():
    kl = pdt.gaussian_kl(torch.tensor([1.0, 0.0]), torch.tensor([0.0, LOG2]),
                         torch.zeros(2), torch.zeros(2))
    # KL(N(1,1)||N(0,1)) = 1/2;  KL(N(0,4)||N(0,1)) = -log 2 + 4/2 - 1/2
    assert kl.tolist() == pytest.approx([0.5, -LOG2 + 1.5])
    nll = pdt.gaussian_nll(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(LOG2))
    assert nll.item() == pytest.approx(0.5 * 0.25 + LOG2 + 0.5 * math.log(2 * math.pi))


def _terms(requires_grad: bool = False) -> dict:
    t = dict(log_prob=torch.tensor([[-5.0, -1.0]]), entropy=torch.tensor([[0.5, 1.5]]),
             q_mu=torch.tensor([[[9.0, 9.0], [1.0, 0.0]]]), q_log_std=torch.zeros(1, 2, 2),
             p_mu=torch.zeros(1, 2, 2), p_log_std=torch.full((1, 2, 2), LOG2),
             mask=torch.tensor([[0.0, 1.0]]), temperature=torch.tensor(0.1))
    if requires_grad:
        for k in ("q_mu", "q_log_std", "p_mu", "p_log_std"):
            t[k].requires_grad_(True)
    return t


def test_pdt_loss_matches_hand_computation():
    out = pdt.pdt_loss(**_terms())
    # only position 1 is real: NLL 1; entropy averaged over both positions (padding too): 1
    assert out["action_nll"].item() == pytest.approx(1.0)
    assert out["entropy"].item() == pytest.approx(1.0)
    # KL(N((1,0), I) || N(0, I)) averaged over the 2 latent dims: (0.5 + 0) / 2
    assert out["kl_std"].item() == pytest.approx(0.25)
    # KL(N((1,0), I) || N(0, 4 I)) per dim: log 2 + (1 + mu^2) / 8 - 1/2, mean over dims
    kl_prior = (LOG2 + 2 / 8 - 0.5 + LOG2 + 1 / 8 - 0.5) / 2
    assert out["kl_prior"].item() == pytest.approx(kl_prior)
    assert out["loss"].item() == pytest.approx(1.0 - 0.1 * 1.0 + 0.25 + kl_prior)
    ft = pdt.pdt_loss(**_terms(), return_nll=torch.tensor([[7.0, 2.0]]), return_weight=0.5)
    assert ft["return_nll"].item() == pytest.approx(2.0)  # padding excluded
    assert ft["loss"].item() == pytest.approx(out["loss"].item() + 0.5 * 2.0)


def test_prior_term_sees_the_posterior_detached_and_the_kl_weights_apply():
    t = _terms(requires_grad=True)
    out = pdt.pdt_loss(**t)
    g_q, g_p = torch.autograd.grad(out["kl_prior"], [t["q_mu"], t["p_mu"]], allow_unused=True)
    assert g_q is None and g_p is not None
    g_q, g_p = torch.autograd.grad(out["kl_std"], [t["q_mu"], t["p_mu"]], allow_unused=True)
    assert g_q is not None and g_p is None
    heavy = pdt.pdt_loss(**_terms(), kl_weight=3.0, prior_weight=0.0)
    assert heavy["loss"].item() == pytest.approx(1.0 - 0.1 + 3 * 0.25)


# ----------------------------------------------------------------------------- model

def _model(seed: int = 0) -> pdt.PDTModel:
    torch.manual_seed(seed)
    return pdt.PDTModel(S, A, embed_dim=8, n_layer=1, n_head=2, dropout=0.0, z_dim=Z,
                        embed_dropout=0.0).eval()


def _batch(b: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, K)
    mask[0, :2] = 0
    fmask = torch.ones(b, K)
    fmask[1, :3] = 0
    return {"states": torch.randn(b, K, S, generator=g),
            "actions": torch.rand(b, K, A, generator=g) * 1.8 - 0.9,
            "rtg": torch.randn(b, K, generator=g), "mask": mask,
            "future_states": torch.randn(b, K, S, generator=g),
            "future_actions": torch.rand(b, K, A, generator=g) * 1.8 - 0.9, "future_mask": fmask}


def _grads(model: pdt.PDTModel, loss: torch.Tensor) -> dict[str, bool]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    parts = {}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        got = p.grad is not None and bool(p.grad.abs().sum() > 0)
        parts[part] = parts.get(part, False) or got
    return parts


def test_each_loss_term_reaches_exactly_the_parts_pdt_md_names():
    model = _model()
    out = pdt.compute_losses(model, _batch(), torch.tensor(0.1),
                             full_record("PDT"), with_return=True)
    enc = {"enc_embed_state", "enc_embed_action", "enc_ln", "encoder", "enc_head"}
    actor = {"transformer", "policy_head", "embed_action", "embed_ln"}
    g = _grads(model, out["kl_std"])  # KL to N(0, I): the encoder only
    assert {k for k, v in g.items() if v} == enc
    g = _grads(model, out["kl_prior"])  # prior heads and the shared state embedding
    assert {k for k, v in g.items() if v} == {"prior_head", "embed_state"}
    g = _grads(model, out["action_nll"])  # actor, W_z, W_s and the encoder through z
    assert {k for k, v in g.items() if v} >= actor | {"embed_z", "embed_state"} | enc
    assert not g["prior_head"] and not g["return_head"]
    g = _grads(model, out["return_nll"])  # F, the shared W_s and W_z, and the encoder
    assert {k for k, v in g.items() if v} == {"return_head", "embed_state", "embed_z"} | enc


def test_action_is_read_at_the_latent_token():
    model = _model()
    b = _batch()
    z = torch.randn(3, K, Z)
    base = model.policy(b["states"], z, b["actions"], None).mu
    acts = b["actions"].clone()
    acts[:, 2] += 0.5  # a_t comes after z_t: pi(. | t) must not see it
    assert torch.allclose(model.policy(b["states"], z, acts, None).mu[:, :3], base[:, :3])
    z2 = z.clone()
    z2[:, 2] += 1.0  # z_t comes before the readout
    changed = model.policy(b["states"], z2, b["actions"], None).mu
    assert torch.allclose(changed[:, :2], base[:, :2]) and not torch.allclose(changed[:, 2], base[:, 2])


# ----------------------------------------------------------------------------- sampler

def _traj(T: int, ret_per_step: float, s0: float) -> Trajectory:
    obs = (s0 + np.arange(T, dtype=np.float32))[:, None]
    return Trajectory(obs, np.full((T, 1), 0.5, np.float32), np.full(T, ret_per_step, np.float32),
                      obs + 1, np.zeros(T, bool), np.zeros(T, bool))


def test_sampler_context_future_padding_and_rtg():
    trajs = [_traj(3, 2.0, 10.0)]
    mean, std = np.array([1.0], np.float32), np.array([2.0], np.float32)
    sampler = pdt.FutureSampler(trajs, mean, std, context_len=2, reward_scale=0.5)
    batch = sampler.sample(64, torch.Generator().manual_seed(0))
    pad = (0.0 - 1.0) / 2.0  # zero padding, then normalisation

    def raw(t: int) -> float:  # normalised state of step t
        return (10.0 + t - 1.0) / 2.0

    seen = set()
    for i in range(64):
        # the last context slot is step e-1, always real: read e from its state
        e = round(batch["states"][i, -1, 0].item() * 2.0 + 1.0 - 10.0) + 1
        seen.add(e)
        for slot, t in enumerate((e - 2, e - 1)):
            assert batch["states"][i, slot, 0].item() == pytest.approx(raw(t) if t >= 0 else pad)
            assert batch["mask"][i, slot].item() == float(t >= 0)
            want_rtg = 0.5 * 2.0 * (3 - t) if t >= 0 else 0.0  # c_r * (sum of r to the end)
            assert batch["rtg"][i, slot].item() == pytest.approx(want_rtg)
        fut = list(range(e, min(e + 2, 3)))
        fut = [None] * (2 - len(fut)) + fut  # left padding
        for slot, t in enumerate(fut):
            assert batch["future_mask"][i, slot].item() == float(t is not None)
            assert batch["future_states"][i, slot, 0].item() == pytest.approx(pad if t is None else raw(t))
            assert batch["future_actions"][i, slot, 0].item() == (0.0 if t is None else 0.5)
    assert seen == {1, 2, 3}  # e ~ U{1..T}; e = T leaves an empty future


def test_return_weighting_and_fixed_trajectories():
    trajs = [_traj(2, 1.0, 0.0), _traj(4, 1.0, 0.0), _traj(1, 3.0, 0.0)]  # returns 2, 4, 3
    z, o = np.zeros(1, np.float32), np.ones(1, np.float32)
    by_len = pdt.FutureSampler(trajs, z, o, 2, 1.0, "length")
    assert by_len.probs.tolist() == pytest.approx([2 / 7, 4 / 7, 1 / 7])
    by_ret = pdt.FutureSampler(trajs, z, o, 2, 1.0, "return")
    w = np.array([0, 2, 1]) + 1e-6
    assert by_ret.probs.tolist() == pytest.approx((w / w.sum()).tolist())
    b = by_ret.sample(5, torch.Generator().manual_seed(0), traj=torch.tensor([2] * 5))
    assert (b["mask"].sum(1) == 1).all() and (b["future_mask"].sum(1) == 0).all()


# ----------------------------------------------------------------------------- acting

def _agent(**hp) -> pdt.PDTAgent:
    torch.manual_seed(0)
    base = {**full_record("PDT"), "embed_dim": 8, "n_layer": 1, "n_head": 2,
            "dropout": 0.0, "embed_dropout": 0.0, "pdt_z_dim": Z, "pdt_prior_samples": 16, **hp}
    return pdt.PDTAgent(base, S, A)


def test_guided_mode_picks_the_prior_sample_with_the_highest_predicted_return():
    agent = _agent()
    agent.mode = "guided"
    agent.model.prior = lambda s: (torch.zeros(len(s), Z), torch.zeros(len(s), Z))
    agent.model.predict_return = lambda s, z: (z[..., 0], torch.zeros_like(z[..., 0]))
    torch.manual_seed(3)
    chosen = agent.choose_latents(torch.zeros(2, S))
    torch.manual_seed(3)
    samples = torch.randn(2, 16, Z)
    best = samples[torch.arange(2), samples[..., 0].argmax(1)]
    assert torch.equal(chosen, best)
    agent.hp = dataclasses.replace(agent.hp, pdt_sample_topk=2)  # the code's top-k: the k-th best
    torch.manual_seed(3)
    second = agent.choose_latents(torch.zeros(2, S))
    assert torch.equal(second, samples[torch.arange(2), samples[..., 0].argsort(1, descending=True)[:, 1]])


def test_act_keeps_each_steps_latent_and_rejects_unknown_history():
    agent = _agent()
    s0, s1 = torch.randn(2, 1, S), torch.randn(2, 1, S)
    a = torch.zeros(2, 2, A)
    agent.act(s0, a[:, :1], None)
    first = {k: v.clone() for k, v in agent._latents.items()}
    agent.act(torch.cat([s0, s1], 1), a, None, deterministic=False)
    assert len(agent._latents) == 4
    assert all(torch.equal(agent._latents[k], v) for k, v in first.items())
    with pytest.raises(OdtbenchError, match="never acted on"):
        agent.act(torch.randn(2, 2, S), a, None)


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def finished(hopper_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "seed0"
    pdt_loop.run(resolve(TASK, "PDT", "smoke", seed=0), d)
    return d


def test_smoke_run_writes_valid_contract_files(finished):
    rec = validate_run(finished)
    hp = resolve(TASK, "PDT", "smoke").hyperparameters
    s = rec.summary
    assert s["status"] == "complete" and s["method"] == "PDT"
    curve = rec.curve
    pre, onl = curve[curve.phase == "pretrain"], curve[curve.phase == "online"]
    assert len(pre) == hp["pretrain_iters"]
    assert pre.gradient_steps.iloc[-1] == hp["pretrain_iters"] * hp["pretrain_updates"]
    # warm-up transitions are online interaction and count: the first online row is past them
    assert onl.online_transitions.iloc[0] >= hp["pdt_warmup_samples"] + hp["min_transitions_per_iter"]
    stop = s["online_transitions"] >= hp["online_budget"] or len(onl) == hp["max_online_iters"]
    assert stop
    assert onl.gradient_steps.diff().dropna().eq(hp["online_updates_per_iter"]).all()


def test_killed_pdt_run_resumes_to_the_same_results(finished, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    def fake_kill(pid, sig):
        raise Killed

    cfg = resolve(TASK, "PDT", "smoke", seed=0)
    out = tmp_path / "killed"
    # the hook lives in RunCore.count_update, which every loop shares
    monkeypatch.setattr(runcore, "_KILL_AT", 27)  # 20 pretraining updates, then online
    monkeypatch.setattr(runcore.os, "kill", fake_kill)
    with pytest.raises(Killed):
        pdt_loop.run(cfg, out)
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(runcore, "_KILL_AT", -1)
    pdt_loop.run(cfg, out)
    a = json.loads((finished / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    for d in (a, b):
        d.pop("wall_time_s")
    assert a == b
    ca = validate_run(finished).curve.drop(columns="wall_time_s")
    assert ca.equals(validate_run(out).curve.drop(columns="wall_time_s"))
