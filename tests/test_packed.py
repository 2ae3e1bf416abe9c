"""Packed seeds (odtbench/methods/packed_agent.py): one packed update equals S unpacked ones."""

from __future__ import annotations

import pytest
import torch

from odtbench.methods.dt_agent import DTAgent
from odtbench.methods.packed_agent import PackedDTAgent, stack_batches

torch.set_num_threads(1)
S_DIM, A_DIM, SEEDS = 3, 2, (0, 1, 2)


def _hp(**overrides) -> dict:
    hp = dict(embed_dim=8, n_layer=2, n_head=2, dropout=0.1, embed_dropout=0.1, context_len=4,
              stochastic=False, entropy_reg=False, init_temperature=0.1, lr_actor=1e-2,
              weight_decay=1e-4, warmup_steps=3, grad_clip=0.25, critic_hidden=8,
              critic_layernorm=False, n_critics=2, lr_critic=1e-3, critic_weight_decay=0.01,
              gamma=0.9, tau=0.05, policy_noise=0.2, noise_clip=0.5, rl_kind="td3",
              actor_update_interval=2)
    hp.update(overrides)
    return hp


def _batch(seed: int, b: int = 3, k: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, k)
    mask[0, :2] = 0  # left padding in the first segment
    dones = torch.zeros(b, k)
    dones[0, :2] = 2.0
    dones[-1, -1] = 1.0
    return dict(states=torch.randn(b, k, S_DIM, generator=g),
                next_states=torch.randn(b, k, S_DIM, generator=g),
                actions=(torch.rand(b, k, A_DIM, generator=g) * 2 - 1).clamp(-0.99, 0.99),
                rewards=torch.randn(b, k, generator=g), dones=dones,
                rtg=torch.randn(b, k + 1, generator=g), mask=mask)


def _close(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-10, atol=1e-12, msg=where)
    else:
        assert a == b, where


def _agents(hp: dict) -> list[DTAgent]:
    out = []
    for s in SEEDS:
        torch.manual_seed(10 + s)
        out.append(DTAgent(hp, S_DIM, A_DIM))
    return out


@pytest.mark.parametrize("overrides", [
    {},  # TD3+ODT: twin critics, target smoothing, deterministic head
    {"stochastic": True, "entropy_reg": True, "rl_kind": "td3", "policy_noise": 0.0},
    {"rl_kind": "ddpg", "n_critics": 1, "policy_noise": 0.0, "actor_update_interval": 1},
    {"rl_kind": "none", "stochastic": True, "entropy_reg": True, "grad_clip": 0.0},  # ODT
    {"critic_layernorm": True, "actor_optimizer": "adam", "grad_clip": 2.0},
], ids=["td3", "stochastic", "ddpg", "odt", "adam-ln"])
def test_packed_updates_equal_unpacked(overrides):
    """Two train units (critic + actor steps, LAMB, temperature, Polyak) on 3 seeds, float64,
    dropout on: the packed agent's every seed equals its own DTAgent, RNG streams matched."""
    torch.set_default_dtype(torch.float64)
    try:
        hp = _hp(**overrides)
        unpacked, to_pack = _agents(hp), _agents(hp)
        gens = [torch.Generator().manual_seed(100 + s) for s in SEEDS]
        packed = PackedDTAgent(hp, to_pack, gens)
        for s in SEEDS:  # built from the agents: the same weights and (empty) optimiser state
            _close(unpacked[s].state_dict(), packed.seed_state_dict(s), f"init seed {s}")
        rl, sup = (0.0, 1.0) if hp["rl_kind"] == "none" else (0.5, 1.0)
        units, d = 2, hp["actor_update_interval"]
        batches = {s: [_batch(1000 * s + i) for i in range(units * d)] for s in SEEDS}
        ref_metrics = []
        for s in SEEDS:  # each unpacked agent on the global stream its generator stands in for
            torch.manual_seed(100 + s)
            it = iter(batches[s])
            ref_metrics.append([unpacked[s].train_unit(lambda it=it: next(it), rl, sup)
                                for _ in range(units)])
        its = {s: iter(batches[s]) for s in SEEDS}
        got = [packed.train_unit(lambda: stack_batches([next(its[s]) for s in SEEDS]), rl, sup)
               for _ in range(units)]
        for s in SEEDS:
            for u in range(units):
                assert set(got[u]) == set(ref_metrics[s][u])
                for k, v in ref_metrics[s][u].items():
                    _close(v, got[u][k][s], f"seed {s} unit {u} {k}")
            _close(unpacked[s].state_dict(), packed.seed_state_dict(s), f"seed {s}")
            assert gens[s].get_state().equal(torch.get_rng_state()) or s != SEEDS[-1]
        # a seed's checkpoint is a DTAgent's: load it into a fresh pack, and into a DTAgent
        again = PackedDTAgent(hp, _agents(hp), [torch.Generator() for _ in SEEDS])
        again.load_seed_states([packed.seed_state_dict(s) for s in SEEDS])
        for s in SEEDS:
            _close(packed.seed_state_dict(s), again.seed_state_dict(s), f"reloaded seed {s}")
        one = _agents(hp)[0]
        one.load_state_dict(packed.seed_state_dict(1))
        _close(unpacked[1].state_dict(), one.state_dict(), "seed 1 into a DTAgent")
    finally:
        torch.set_default_dtype(torch.float32)


def test_packed_act_equals_unpacked():
    """Inference of every seed (deterministic and sampled) equals its DTAgent's."""
    hp = _hp(stochastic=True, entropy_reg=True)
    unpacked = _agents(hp)
    gens = [torch.Generator().manual_seed(7 + s) for s in SEEDS]
    packed = PackedDTAgent(hp, _agents(hp), gens)
    g = torch.Generator().manual_seed(3)
    states, actions = torch.randn(3, 5, 3, S_DIM, generator=g), torch.rand(3, 5, 3, A_DIM, generator=g)
    rtg = torch.randn(3, 5, 3, generator=g)
    for det in (True, False):
        got = packed.act(states, actions, rtg, deterministic=det)
        for s in SEEDS:
            torch.manual_seed(7 + s) if det is False else None
            ref = unpacked[s].act(states[s], actions[s], rtg[s], deterministic=det)
            torch.testing.assert_close(got[s], ref, rtol=1e-5, atol=1e-6)
