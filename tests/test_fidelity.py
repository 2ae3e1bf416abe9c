"""Issue 17: where odtbench follows the original code (docs/fidelity.md), on hand-built data."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.hyperparameters.resolve import resolve
from odtbench.methods.dt_agent import DTAgent
from odtbench.methods.nets import CausalTransformer, DecisionTransformer, SquashedGaussian

S, A, K = 3, 2, 4
# left padding as the sampler makes it: 5 of 12 steps are padding (~42 %)
MASK = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.float32)


def _hp(**overrides) -> dict:
    hp = full_record(embed_dim=16, n_layer=2, n_head=2, dropout=0.0, embed_dropout=0.0, context_len=K,
              stochastic=True, entropy_reg=True, init_temperature=0.1, lr_actor=1e-3,
              weight_decay=1e-4, warmup_steps=1, grad_clip=0.25, critic_hidden=8,
              critic_layernorm=False, n_critics=2, lr_critic=1e-3, critic_weight_decay=0.01,
              gamma=0.99, tau=0.005, policy_noise=0.2, noise_clip=0.5, rl_kind="none", actor_update_interval=2)
    hp.update(overrides)
    return hp


def _batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b = MASK.shape[0]
    return {"states": torch.randn(b, K, S, generator=g) * MASK[..., None],
            "next_states": torch.randn(b, K, S, generator=g),
            "actions": (torch.rand(b, K, A, generator=g) * 1.8 - 0.9) * MASK[..., None],
            "rewards": torch.randn(b, K, generator=g) * MASK, "dones": 2.0 * (1 - MASK),
            "mask": MASK.clone(), "rtg": torch.randn(b, K + 1, generator=g)}


# ------------------------------------------------------------------- 1. padded attention

def _reference_trunk(tr: CausalTransformer, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """GPT-2 forward (eval) written from the authors' rule: logits of future keys are
    *replaced* by -1e4, then -1e4 is *added* on padded keys; per sequence and head."""
    b, n, d = x.shape
    pad_add = (1.0 - key_mask) * -10000.0
    future = torch.arange(n)[None, :] > torch.arange(n)[:, None]
    for blk in tr.blocks:
        h = F.layer_norm(x, (d,), blk.ln_1.weight, blk.ln_1.bias, 1e-5)
        q, k, v = F.linear(h, blk.attn.qkv.weight, blk.attn.qkv.bias).split(d, dim=-1)
        nh = blk.attn.n_head
        hd = d // nh
        rows = []
        for i in range(b):
            heads = []
            for j in range(nh):
                sl = slice(j * hd, (j + 1) * hd)
                w = q[i, :, sl] @ k[i, :, sl].T / math.sqrt(hd)
                w = torch.where(future, torch.full_like(w, -10000.0), w) + pad_add[i][None, :]
                heads.append(torch.softmax(w, dim=-1) @ v[i, :, sl])
            rows.append(torch.cat(heads, dim=-1))
        x = x + F.linear(torch.stack(rows), blk.attn.proj.weight, blk.attn.proj.bias)
        h = F.layer_norm(x, (d,), blk.ln_2.weight, blk.ln_2.bias, 1e-5)
        lin1, _, lin2, _ = blk.mlp
        x = x + F.linear(F.relu(F.linear(h, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
    return F.layer_norm(x, (d,), tr.ln_f.weight, tr.ln_f.bias, 1e-5)


def _reference_dt(dt: DecisionTransformer, states, actions, rtg, mask) -> SquashedGaussian:
    b, t, _ = states.shape
    tokens = torch.stack((dt.embed_return(rtg.unsqueeze(-1)), dt.embed_state(states),
                          dt.embed_action(actions)), dim=2).reshape(b, 3 * t, -1)
    h = _reference_trunk(dt.transformer, dt.embed_ln(tokens), mask.repeat_interleave(3, dim=1))
    return dt.head(h.reshape(b, t, 3, -1)[:, :, 1])


def test_padded_positions_follow_the_minus_1e4_rule():
    torch.manual_seed(0)
    dt = DecisionTransformer(S, A, 16, 2, 2, 0.0, stochastic=True).double().eval()
    bt = {k: v.double() for k, v in _batch().items()}
    args = (bt["states"], bt["actions"], bt["rtg"][:, :-1], bt["mask"])
    out, ref = dt(*args), _reference_dt(dt, *args)
    # every position, padded ones included (a -inf causal fill differs there by ~1e-1)
    torch.testing.assert_close(out.mu, ref.mu, rtol=0, atol=1e-10)
    torch.testing.assert_close(out.log_std, ref.log_std, rtol=0, atol=1e-10)


def test_odt_entropy_temperature_loss_and_gradients_match_the_reference():
    torch.manual_seed(0)
    agent = DTAgent(_hp(), S, A)
    batch = _batch()
    T = agent.log_temperature.exp().item()
    # reference: the same weights through the hand-built forward, the same entropy sample
    torch.manual_seed(5)
    dist = _reference_dt(agent.actor, batch["states"], batch["actions"], batch["rtg"][:, :-1],
                         batch["mask"])
    log_lik = (dist.log_prob(batch["actions"]) * MASK).sum() / MASK.sum()
    entropy = dist.entropy().mean()  # over all positions, padding included (the authors')
    ref_loss = -(log_lik + T * entropy)
    params = [p for p in agent.actor.parameters()]
    ref_grads = torch.autograd.grad(ref_loss, params)

    torch.manual_seed(5)
    loss, stats = agent.actor_loss(batch, 0.0, 1.0)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert stats["entropy"].item() == pytest.approx(entropy.item(), abs=1e-5)
    assert loss.item() == pytest.approx(ref_loss.item(), abs=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(torch.zeros_like(r) if g is None else g, r, rtol=1e-4, atol=1e-6)
    # the temperature loss T (H - target): its gradient wrt log T after a real actor step
    torch.manual_seed(5)
    agent.actor_step(batch, rl_coeff=0.0, sup_coeff=1.0)
    expected = T * (entropy.item() - agent.target_entropy)
    assert agent.log_temperature.grad.item() == pytest.approx(expected, rel=1e-5)


def test_real_positions_ignore_padding_so_td3_odt_is_unaffected():
    """Deterministic DT: each real position's action equals the unpadded segment's."""
    torch.manual_seed(0)
    dt = DecisionTransformer(S, A, 16, 2, 2, 0.0, stochastic=False).eval()
    bt = _batch()
    out = dt(bt["states"], bt["actions"], bt["rtg"][:, :-1], bt["mask"])
    for i in range(MASK.shape[0]):
        real = MASK[i].bool()
        alone = dt(bt["states"][i:i + 1, real], bt["actions"][i:i + 1, real],
                   bt["rtg"][i:i + 1, :-1][:, real], None)
        torch.testing.assert_close(out[i, real], alone[0], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- 2. embedding dropout

def test_embedding_dropout_is_its_own_hyperparameter_at_0_1():
    cfg = resolve("mujoco/hopper-random", "ODT", "paper", 0, {"dropout": 0.0})
    hp = cfg.hyperparameters
    assert hp["embed_dropout"] == 0.1 and "embd_pdrop" in cfg.sources["embed_dropout"]
    agent = DTAgent(hp, S, A)
    assert agent.actor.transformer.embed_drop.p == 0.1
    assert all(blk.attn.attn_drop.p == 0.0 for blk in agent.actor.transformer.blocks)
    assert resolve("toy/bandit", "ODT", "quick").hyperparameters["embed_dropout"] == 0.0
    assert resolve("mujoco/hopper-random", "PDT", "paper").hyperparameters["embed_dropout"] == 0.1


# ------------------------------------------------------------------------------ 5. toy

def test_toy_protocol_follows_motivation_py():
    hp = {m: resolve("toy/bandit", m, "quick").hyperparameters
          for m in ("ODT", "DDPG+ODT", "TD3+ODT", "TD3")}
    for m in ("DDPG+ODT", "TD3+ODT"):  # 0.02 MSE - Q from the first pretraining step
        assert (hp[m]["rl_from_start"], hp[m]["rl_coeff"], hp[m]["sup_coeff"]) == (True, 1.0, 0.02)
        assert hp[m]["train_rtg_constant"] is None
    # the DDPG panel: -Q only, pretraining included, on pi(1)
    assert (hp["TD3"]["rl_from_start"], hp["TD3"]["sup_coeff"]) == (True, 0.0)
    assert hp["TD3"]["train_rtg_constant"] == 1.0 == hp["TD3"]["online_rtg"]
    assert all(h["fresh_optimizers_online"] for h in hp.values())
    mujoco = resolve("mujoco/hopper-random", "TD3", "paper").hyperparameters
    assert not mujoco["fresh_optimizers_online"] and mujoco["train_rtg_constant"] is None


def test_every_method_on_the_toy_runs_in_the_toys_sizes():
    """A method's preset does not override the toy's row (PDT's would give a 512-wide, K 20
    DT with a 10K-step warm-up on one-step episodes: an hour for a smoke run)."""
    from odtbench.methods import list_methods
    from odtbench.tasks import TOY

    for scale in ("quick", "paper"):
        for m in list_methods():
            hp = resolve("toy/bandit", m, scale).hyperparameters
            for k in ("embed_dim", "n_layer", "context_len", "batch_size", "warmup_steps",
                      "reward_scale"):
                if k in hp:
                    assert hp[k] == TOY[k], (m, scale, k, hp[k])


def test_constant_rtg_input_ignores_the_batch_rtg():
    torch.manual_seed(0)
    agent = DTAgent(_hp(stochastic=False, entropy_reg=False, rl_kind="td3",
                        train_rtg_constant=1.0), S, A)
    batch = _batch()
    other = dict(batch, rtg=batch["rtg"] * 7.0 + 3.0)
    torch.manual_seed(1)
    a = agent.actor_loss(batch, 1.0, 0.0)[0]
    torch.manual_seed(1)
    b = agent.actor_loss(other, 1.0, 0.0)[0]
    assert a.item() == b.item()
    ones = dict(batch, rtg=torch.ones_like(batch["rtg"]))
    torch.testing.assert_close(agent.target_next_actions(other), agent.target_next_actions(ones))


def test_reset_optimizers_gives_fresh_state():
    torch.manual_seed(0)
    agent = DTAgent(_hp(stochastic=False, entropy_reg=False, rl_kind="td3",
                        actor_optimizer="adam", warmup_steps=10), S, A)
    batch = _batch()
    agent.critic_step(batch)
    agent.actor_step(batch, 1.0, 0.02)
    assert agent.actor_opt.state and agent.critic_opt.state and agent.scheduler.last_epoch == 1
    before = agent.actor.embed_state.weight.detach().clone()
    agent.reset_optimizers()
    assert not agent.actor_opt.state and not agent.critic_opt.state
    assert agent.scheduler.last_epoch == 0 and agent.actor_opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    torch.testing.assert_close(agent.actor.embed_state.weight, before)  # weights kept
    agent.critic_step(batch)
    agent.actor_step(batch, 1.0, 0.02)  # the new optimisers drive the same parameters
    assert not torch.equal(agent.actor.embed_state.weight, before)


# ------------------------------------------------------------------------ 3. PDT collection

def _collect_episodes(hp: dict, monkeypatch, length: int = 7, stochastic: bool = False) -> int:
    """How many episodes `Collector.collect` gathers in one iteration (rollouts faked)."""
    from types import SimpleNamespace

    import numpy as np

    from odtbench.data.trajectories import Trajectory
    from odtbench.runcore import evaluator
    from odtbench.runcore.state import RunState

    def fake_rollout(agent, envs, seeds, **kw):
        z = np.zeros((length, 1), np.float32)
        t = Trajectory(z, z, np.zeros(length, np.float32), z, np.zeros(length, bool),
                       np.zeros(length, bool))
        return SimpleNamespace(trajectories=[t], lengths=np.array([length]))

    monkeypatch.setattr(evaluator, "rollout", fake_rollout)
    st = RunState()
    agent = SimpleNamespace(stochastic=stochastic)  # PDT's head is stochastic, TD3+ODT's not
    from odtbench.hyperparameters.schemas import DTHyperparameters, build
    from odtbench_baselines import PDTHyperparameters

    # the collector reads the run's typed hyperparameters (RunConfig.typed_as)
    typed = build(PDTHyperparameters if "pdt_z_dim" in hp else DTHyperparameters, hp, "test")
    cfg = SimpleNamespace(typed_as=lambda schema: typed, method="test")
    ctx = SimpleNamespace(hp=hp, cfg=cfg, seed=0, online_env=None, gen=None)
    norm = evaluator.StateNorm(np.zeros(1), np.ones(1))
    new = evaluator.Collector(ctx, norm).collect(agent, st)
    assert st.online_transitions == length * len(new)
    return len(new)


@pytest.mark.parametrize("scale", ["paper", "quick", "smoke"])
def test_pdt_collects_one_episode_per_iteration_on_random_data(scale, monkeypatch):
    pdt = resolve("mujoco/hopper-random", "PDT", scale).hyperparameters
    assert pdt["min_transitions_per_iter"] == 0
    assert _collect_episodes(pdt, monkeypatch, stochastic=True) == 1
    odt = resolve("mujoco/hopper-random", "TD3+ODT", "paper").hyperparameters
    assert _collect_episodes(odt, monkeypatch) == 143  # >= 1000 transitions of 7-step episodes
    assert resolve("adroit/pen-human", "PDT", "paper").hyperparameters["min_transitions_per_iter"] == 0


# ------------------------------------------------------------------------------- 4. IQL

def _arrays(values) -> dict:
    import numpy as np

    v = np.asarray(values, np.float32)
    return {"observations": v[:, None], "next_observations": v[:, None] + 0.5,
            "actions": -v[:, None], "rewards": v, "terminations": v > 100,
            "truncations": v < -100}


def test_fifo_replay_overwrites_the_oldest_offline_transitions_first():
    import numpy as np

    from odtbench.agents.td3 import FIFOReplayBuffer

    buf = FIFOReplayBuffer(1, 1, 4)
    buf.extend(_arrays([0, 1, 2]))  # offline
    buf.add(np.array([10.0]), np.array([-10.0]), 10.0, np.array([10.5]), False, False)
    assert buf.size == 4 and sorted(buf.rewards) == [0, 1, 2, 10]
    buf.add(np.array([11.0]), np.array([-11.0]), 11.0, np.array([11.5]), False, False)
    assert sorted(buf.rewards) == [1, 2, 10, 11]  # offline 0 (the oldest) went first
    assert buf.rewards[buf.positions_of_last(2)].tolist() == [10, 11]
    # extend == the same adds, wrap-around and more than capacity at once included
    ref = FIFOReplayBuffer(1, 1, 4)
    ref.extend(_arrays([0, 1, 2]))
    for v in range(20, 27):
        a = _arrays([v])
        ref.add(a["observations"][0], a["actions"][0], a["rewards"][0],
                a["next_observations"][0], a["terminations"][0], a["truncations"][0])
    got = FIFOReplayBuffer(1, 1, 4)
    got.extend(_arrays([0, 1, 2]))
    got.extend(_arrays(list(range(20, 27))))
    for k in FIFOReplayBuffer.FIELDS:
        assert np.array_equal(getattr(got, k), getattr(ref, k)), k
    assert (got.size, got.insert_index) == (ref.size, ref.insert_index)


def test_iql_presets_replay_dropout_and_schedule_options():
    from odtbench_baselines import iql

    mujoco = resolve("mujoco/hopper-random", "IQL", "paper").hyperparameters
    adroit = resolve("adroit/pen-human", "IQL", "paper").hyperparameters
    assert mujoco["mlp_replay_size"] == 1_000_000 == adroit["mlp_replay_size"]
    assert (mujoco["iql_dropout"], adroit["iql_dropout"]) == (0.0, 0.1)
    assert resolve("mujoco/hopper-random", "TD3+BC", "paper").hyperparameters["mlp_replay_size"] is None

    hp = {**adroit, "mlp_hidden": 8, "mlp_pretrain_steps": 4}
    agent = iql.IQLAgent(hp, 3, 2, total_updates=10, pretrain_updates=4)
    drops = [m for m in agent.actor.net if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.1 for m in drops)
    obs = torch.randn(5, 3)
    # acting never uses dropout; the update does (its log-likelihood varies with the mask)
    a1, a2 = (agent.act(obs[:, None], None, None) for _ in range(2))
    assert torch.equal(a1, a2)
    agent.actor.train()
    lp = [agent.actor.log_prob(obs, torch.zeros(5, 2)) for _ in range(2)]
    agent.actor.eval()
    assert not torch.equal(*lp)

    def lrs(schedule: str) -> list[float]:
        a = iql.IQLAgent({**hp, "iql_actor_schedule": schedule}, 3, 2, total_updates=10,
                         pretrain_updates=4)
        out = []
        for _ in range(7):
            a.actor_opt.step()
            a.actor_sched.step()
            out.append(a.actor_opt.param_groups[0]["lr"])
        return out

    # the official horizon: 0 from the switch on (step 4), i.e. a frozen actor online
    assert lrs("cosine_pretrain")[3:] == [0.0] * 4
    assert all(lr > 0 for lr in lrs("cosine")[3:])  # spans pretraining + online
    assert lrs("constant") == [3e-4] * 7


# ------------------------------------------------------------------------ 6. diverged runs

def test_divergence_check_marks_a_q_blow_up_and_stops_only_on_non_finite_values():
    from odtbench.runcore.dt_loop import Diverged, divergence_check

    ok = {"critic_loss": torch.tensor(3.0), "q_mean": torch.tensor(-5e5)}
    assert divergence_check(ok, 1e6, "x") is None
    big = {"critic_loss": torch.tensor(3.0), "q_mean": torch.tensor(-2e6)}
    assert divergence_check(big, 1e6, "online iteration 4") == "|Q| 2e+06 > 1e+06 at online iteration 4"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(Diverged, match="non-finite"):
            divergence_check({"critic_loss": torch.tensor(bad), "q_mean": torch.tensor(1.0)}, 1e6, "x")


def test_a_diverged_run_keeps_evaluating_on_schedule(toy_data, tmp_path):
    from odtbench.runcore.dt_loop import run
    from odtbench.runfiles.results import validate_run

    normal = run(resolve("toy/bandit", "TD3+ODT", "smoke", seed=1), tmp_path / "normal")
    # a bound every Q exceeds: diverged at the first check, yet the run goes to its end
    cfg = resolve("toy/bandit", "TD3+ODT", "smoke", seed=1, overrides={"divergence_q_bound": 1e-12})
    s = run(cfg, tmp_path / "diverged")
    assert s["status"] == "diverged" and s["diverged_reason"].startswith("|Q| ")
    assert "pretraining update" in s["diverged_reason"]  # the first time, kept
    rec, ref = validate_run(tmp_path / "diverged"), validate_run(tmp_path / "normal")
    assert len(rec.curve) == len(ref.curve)  # every scheduled evaluation was made
    assert s["online_transitions"] == normal["online_transitions"]
    assert s["final_score"] == rec.curve.score_mean.iloc[-1] == normal["final_score"]


def test_tables_count_diverged_runs_with_the_scores_they_reached():
    import pandas as pd

    from odtbench.analysis import tables
    from odtbench.analysis.scores import cell_summary

    rows = [("ODT", 0, 20.0, "complete"), ("ODT", 1, 30.0, "complete"),
            ("TD3+BC", 0, 2.0, "diverged"), ("TD3+BC", 1, 4.0, "complete")]
    scores = pd.DataFrame([{"dataset": "hopper-random", "method": m, "seed": s,
                            "final_score": f, "before_score": 1.0, "increase": f - 1.0,
                            "best_score": f, "status": st} for m, s, f, st in rows])
    cells = cell_summary(scores).set_index("method")
    assert cells.loc["TD3+BC", "final"] == 3.0 and cells.loc["TD3+BC", "n"] == 2
    assert cells.loc["TD3+BC", "n_diverged"] == 1 and cells.loc["ODT", "n_diverged"] == 0
    t = tables.paper_table(cells.reset_index(), average=False)
    marks = {m: c.mark for m, c in zip(t.columns, t.cells[0], strict=True)}
    assert marks == {"TD3+BC": "‡", "ODT": ""}
    assert any(n.startswith("‡") for n in t.footnotes)
