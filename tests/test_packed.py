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


# ------------------------------------------------------------------ packed runs (smoke hopper)
TASK = "mujoco/hopper-random"


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_time_s"}


def _curve(path) -> list[dict]:
    import csv

    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


def _close_rows(a: list[dict], b: list[dict], rel: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            try:
                fx, fy = float(x[k]), float(y[k])
            except ValueError:
                assert x[k] == y[k], k
                continue
            assert abs(fx - fy) <= rel * max(1.0, abs(fx)), (k, x[k], y[k])


@pytest.mark.parametrize("method", ["TD3+ODT", "ODT"])
def test_packed_run_matches_unpacked_runs(method, hopper_data, tmp_path):
    """Each packed seed's files equal its unpacked run's: counters and every integer exactly,
    scores to float32 rounding (batched matmuls round differently: docs/performance.md)."""
    from odtbench.config import resolve
    from odtbench.loop import run
    from odtbench.packed_loop import run_packed
    from odtbench.results import validate_run

    seeds = [0, 1]
    ref = [run(resolve(TASK, method, "smoke", seed=s), tmp_path / "u" / f"seed{s}") for s in seeds]
    got = run_packed([resolve(TASK, method, "smoke", seed=s) for s in seeds],
                     [tmp_path / "p" / f"seed{s}" for s in seeds])
    for s, a, b in zip(seeds, ref, got, strict=True):
        a, b = _strip(a), _strip(b)
        for k in ("before_score", "final_score", "best_score"):
            assert b[k] == pytest.approx(a[k], rel=1e-5), k
        assert {k: v for k, v in a.items() if "score" not in k} == \
            {k: v for k, v in b.items() if "score" not in k}
        _close_rows(_curve(tmp_path / "u" / f"seed{s}" / "curve.csv"),
                    _curve(tmp_path / "p" / f"seed{s}" / "curve.csv"), rel=1e-4)
        names = {p.name for p in (tmp_path / "u" / f"seed{s}").iterdir()}
        assert names == {p.name for p in (tmp_path / "p" / f"seed{s}").iterdir()}
        validate_run(tmp_path / "p" / f"seed{s}")  # the run-result contract's schemas


def _cli(args: list[str], env: dict):
    import subprocess
    import sys

    code = f"import sys; from odtbench.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_packed_run_sigkill_resumes_to_identical_summaries(hopper_data, tmp_path):
    import json
    import os

    env = dict(os.environ, MINARI_DATASETS_PATH=str(hopper_data), ODTBENCH_PROGRESS="0",
               OMP_NUM_THREADS="1")
    base = ["run", "--task", TASK, "--method", "TD3+ODT", "--scale", "smoke", "--seeds", "0,1,2"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert _cli(base + ["--out", str(ref)], env).returncode == 0
    # smoke: 10 pretraining updates (checkpoint every 5), then 3 iterations of 5: 17 is online
    p = _cli(base + ["--out", str(killed)], dict(env, ODTBENCH_KILL_AT_UPDATE="17"))
    assert p.returncode == -9, p.stderr  # SIGKILL
    for s in (0, 1, 2):
        assert not (killed / f"seed{s}" / "summary.json").exists()
        assert (killed / f"seed{s}" / "checkpoint" / "state.pt").exists()
    p = _cli(base + ["--out", str(killed)], env)
    assert p.returncode == 0, p.stderr
    for s in (0, 1, 2):
        a = json.loads((ref / f"seed{s}" / "summary.json").read_text())
        b = json.loads((killed / f"seed{s}" / "summary.json").read_text())
        assert a["status"] == "complete" and a["seed"] == s
        assert _strip(a) == _strip(b)
        assert _curve(ref / f"seed{s}" / "curve.csv") == _curve(killed / f"seed{s}" / "curve.csv")


def test_toy_and_mlp_are_not_packed(toy_data, tmp_path):
    from odtbench.cli import main

    out = tmp_path / "runs"
    base = ["run", "--scale", "smoke", "--seeds", "0,1", "--out", str(out)]
    assert main(base + ["--task", "toy/bandit", "--method", "TD3+ODT"]) == 2
    assert main(base + ["--task", "toy/bandit", "--method", "TD3+BC"]) == 2
    assert not out.exists()


def test_packed_run_takes_seeds_at_different_points(hopper_data, tmp_path):
    """A finished seed is left alone, a seed killed unpacked resumes from its checkpoint (an
    unpacked checkpoint is a packed seed's), a new seed starts: each as its own pack."""
    import json
    import os

    env = dict(os.environ, MINARI_DATASETS_PATH=str(hopper_data), ODTBENCH_PROGRESS="0",
               OMP_NUM_THREADS="1")
    from odtbench.config import resolve
    from odtbench.loop import run

    one = ["run", "--task", TASK, "--method", "TD3+ODT", "--scale", "smoke"]
    out = tmp_path / "runs"
    run(resolve(TASK, "TD3+ODT", "smoke", seed=0), out / "seed0")  # in-process: no start-up
    done = (out / "seed0" / "summary.json").read_text()
    p = _cli(one + ["--seed", "1", "--out", str(out / "seed1")], dict(env, ODTBENCH_KILL_AT_UPDATE="7"))
    assert p.returncode == -9
    ref = tmp_path / "ref"
    run(resolve(TASK, "TD3+ODT", "smoke", seed=1), ref)
    p = _cli(one + ["--seeds", "0,1,2", "--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    assert (out / "seed0" / "summary.json").read_text() == done
    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((out / "seed1" / "summary.json").read_text())
    assert b["gradient_steps"] == a["gradient_steps"]
    assert b["final_score"] == pytest.approx(a["final_score"], rel=1e-5)
    assert json.loads((out / "seed2" / "summary.json").read_text())["status"] == "complete"


def test_a_diverged_seed_leaves_the_pack(hopper_data, tmp_path, monkeypatch):
    """Seed 1 diverges at its first check: its summary says so, written then; seed 0 goes on
    to the end, with the numbers of its unpacked run."""
    from odtbench.config import resolve
    from odtbench.loop import run
    from odtbench.packed_loop import run_packed
    from odtbench.runcore import core

    ref = _strip(run(resolve(TASK, "TD3+ODT", "smoke", seed=0), tmp_path / "ref"))
    check = core.RunCore.check

    def failing(self, metrics, where):
        if self.ctx.seed == 1:
            raise core.Diverged(f"injected at {where}")
        return check(self, metrics, where)

    monkeypatch.setattr(core.RunCore, "check", failing)
    a, b = run_packed([resolve(TASK, "TD3+ODT", "smoke", seed=s) for s in (0, 1)],
                      [tmp_path / "p" / f"seed{s}" for s in (0, 1)])
    assert b["status"] == "diverged" and "injected at pretraining update 5" in b["diverged_reason"]
    assert b["gradient_steps"] == 5 and b["final_score"] is None
    a = _strip(a)
    assert a["status"] == "complete" and a["gradient_steps"] == ref["gradient_steps"]
    assert a["final_score"] == pytest.approx(ref["final_score"], rel=1e-5)
