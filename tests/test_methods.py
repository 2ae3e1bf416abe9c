"""Method registry and the DT agent's inference and checkpointing."""

from __future__ import annotations

import copy
import io
import sys

import pytest
import torch
from hp_record import full_record  # tests/ is on sys.path (no __init__.py)

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.methods import DTAgent, MethodSpec, get_method, list_methods, register, registry

torch.set_num_threads(1)
S, A, K = 3, 2, 5
DT_METHODS = ("ODT", "TD3", "DDPG+ODT", "TD3+ODT")


def _hp(**overrides) -> dict:
    hp = full_record(embed_dim=16, n_layer=1, n_head=2, dropout=0.1, embed_dropout=0.1, context_len=K, stochastic=False,
              entropy_reg=False, init_temperature=0.1, lr_actor=1e-3, weight_decay=1e-4,
              warmup_steps=3, grad_clip=0.25, critic_hidden=8, critic_layernorm=True,
              n_critics=2, lr_critic=1e-3, critic_weight_decay=0.01, gamma=0.99, tau=0.005,
              policy_noise=0.2, noise_clip=0.5, rl_kind="td3", actor_update_interval=2)
    hp.update(overrides)
    return hp


def _batch(b: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, K)
    mask[0, :3] = 0
    return dict(states=torch.randn(b, K, S, generator=g),
                next_states=torch.randn(b, K, S, generator=g),
                actions=(torch.rand(b, K, A, generator=g) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6),
                rewards=torch.randn(b, K, generator=g), dones=torch.zeros(b, K),
                rtg=torch.randn(b, K + 1, generator=g), timesteps=torch.zeros(b, K, dtype=torch.long),
                mask=mask)


# ---------------------------------------------------------------- registry
def test_dt_presets_define_the_four_methods():
    td3_odt, ddpg, td3, odt = (get_method(n) for n in ("TD3+ODT", "DDPG+ODT", "TD3", "ODT"))
    for spec in (td3_odt, ddpg, td3, odt):
        assert spec.family == "dt" and spec.runner == "odtbench.runcore.dt_loop:run" and spec.paper_name
    assert (td3_odt.preset["rl_kind"], td3_odt.preset["rl_coeff"], td3_odt.preset["sup_coeff"],
            td3_odt.preset["stochastic"]) == ("td3", 0.1, 1.0, False)
    assert (ddpg.preset["rl_kind"], ddpg.preset["n_critics"], ddpg.preset["policy_noise"],
            ddpg.preset["actor_update_interval"], ddpg.preset["rl_coeff"]) == ("ddpg", 1, 0.0, 1, 0.1)
    assert (td3.preset["rl_coeff"], td3.preset["sup_coeff"], td3.preset["rl_kind"]) == (0.1, 0.0, "td3")
    assert odt.preset["stochastic"] and odt.preset["entropy_reg"] and odt.preset["rl_coeff"] == 0


@pytest.mark.parametrize("name", DT_METHODS)
def test_each_dt_preset_builds_an_agent(name):
    torch.manual_seed(0)
    agent = DTAgent(_hp(**{k: v for k, v in get_method(name).preset.items() if k in _hp()}), S, A)
    assert agent.uses_critic == (name != "ODT")
    assert agent.stochastic == (name == "ODT")
    if name == "DDPG+ODT":
        assert agent.critic.n_critics == 1


def test_list_methods_follows_legend_order_and_unknown_names_fail():
    names = list_methods()
    dt = [n for n in names if n in DT_METHODS]
    assert dt == ["ODT", "TD3", "DDPG+ODT", "TD3+ODT"]
    legend = [n for n in names if n in registry.LEGEND_ORDER]
    assert legend == [n for n in registry.LEGEND_ORDER if n in names]
    with pytest.raises(UnknownChoiceError, match="unknown method 'TRPO'; valid choices: .*TD3\\+ODT"):
        get_method("TRPO")
    assert "odtbench_baselines" in sys.modules  # baselines load lazily, from their entry point


def test_register_rejects_duplicates_and_bad_specs(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    spec = MethodSpec(name="Mine", family="mlp", preset={"x": 1}, runner="math:sqrt")
    register(spec)
    register(MethodSpec(name="Mine", family="mlp", preset={"x": 1}, runner="math:sqrt"))  # same
    with pytest.raises(OdtbenchError, match="already registered"):
        register(MethodSpec(name="Mine", family="mlp", preset={"x": 2}, runner="math:sqrt"))
    assert list_methods()[-1] == "Mine"
    assert get_method("Mine").load_runner()(4.0) == 2.0
    with pytest.raises(OdtbenchError, match="package.module:function"):
        MethodSpec(name="Bad", family="dt", runner="odtbench.runcore.dt_loop.run")
    with pytest.raises(OdtbenchError, match="cannot load runner"):
        MethodSpec(name="Bad", family="dt", runner="odtbench.no_such_module:run").load_runner()


def test_third_party_methods_load_from_entry_points(monkeypatch):
    class FakeEntryPoint:
        def __init__(self, name, value):
            self.name, self.value, self._value = name, f"pkg:{name}", value

        def load(self):
            return self._value

    plugin = MethodSpec(name="PluginRL", family="mlp", runner="pkg.run:main")
    several = lambda: [MethodSpec(name="PluginA", family="mlp", runner="pkg.a:main")]  # noqa: E731
    eps = [FakeEntryPoint("one", plugin), FakeEntryPoint("many", several)]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points",
                        lambda group: eps if group == "odtbench.methods" else [])
    assert get_method("PluginRL") is plugin
    assert list_methods()[-2:] == ["PluginRL", "PluginA"]
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    eps.append(FakeEntryPoint("broken", 42))
    with pytest.raises(OdtbenchError, match="expected MethodSpec"):
        list_methods()


# ---------------------------------------------------------------- DT agent
def test_agent_rejects_missing_or_bad_hyperparameters():
    hp = _hp()
    del hp["gamma"]
    with pytest.raises(OdtbenchError, match="gamma"):
        DTAgent(hp, S, A)
    with pytest.raises(UnknownChoiceError, match="rl_kind"):
        DTAgent(_hp(rl_kind="trpo"), S, A)


@pytest.mark.parametrize("stochastic", [False, True])
def test_act_on_short_context_equals_padded_forward(stochastic):
    torch.manual_seed(0)
    agent = DTAgent(_hp(stochastic=stochastic), S, A)
    g = torch.Generator().manual_seed(3)
    s, a, r = torch.randn(4, 3, S, generator=g), torch.randn(4, 3, A, generator=g), torch.randn(4, 3, generator=g)
    action = agent.act(s, a, r)
    assert agent.actor.training  # act restores the training mode it found
    pad = K - 3
    mask = torch.cat((torch.zeros(4, pad), torch.ones(4, 3)), dim=1)
    with torch.no_grad():
        out = agent.actor.eval()(torch.cat((torch.zeros(4, pad, S), s), 1),
                                 torch.cat((torch.zeros(4, pad, A), a), 1),
                                 torch.cat((torch.zeros(4, pad), r), 1), mask)
    ref = (out.mean if stochastic else out)[:, -1].clamp(-1 + 1e-6, 1 - 1e-6)
    torch.testing.assert_close(action, ref, rtol=0, atol=1e-5)
    assert action.shape == (4, A) and action.abs().max() <= 1 - 1e-6
    if stochastic:
        torch.manual_seed(1)
        sample = agent.act(s, a, r, deterministic=False)
        assert not torch.allclose(sample, action) and sample.abs().max() <= 1 - 1e-6
    with pytest.raises(OdtbenchError, match="context_len"):
        agent.act(torch.zeros(1, K + 1, S), torch.zeros(1, K + 1, A), torch.zeros(1, K + 1))


def test_q_values_is_q1_without_grad():
    torch.manual_seed(0)
    agent = DTAgent(_hp(), S, A)
    s, a = torch.randn(7, S), torch.rand(7, A)
    q = agent.q_values(s, a)
    assert q.shape == (7,) and not q.requires_grad
    torch.testing.assert_close(q, agent.critic(s, a)[0].detach())
    with pytest.raises(OdtbenchError, match="rl_kind is 'none'"):
        DTAgent(_hp(rl_kind="none"), S, A).q_values(s, a)


def _all_state(agent: DTAgent) -> list[torch.Tensor]:
    nets = [agent.actor, agent.actor_target] + ([agent.critic, agent.critic_target]
                                                if agent.critic is not None else [])
    return [t.detach().clone() for n in nets for t in n.state_dict().values()] + [
        agent.log_temperature.detach().clone(), torch.tensor(agent.actor_opt.param_groups[0]["lr"])]


def _steps(agent: DTAgent, batch) -> None:
    if agent.uses_critic:
        agent.critic_step(batch)
    agent.actor_step(batch, rl_coeff=0.1 if agent.uses_critic else 0.0, sup_coeff=1.0)


@pytest.mark.parametrize("overrides", [{}, {"stochastic": True, "entropy_reg": True,
                                            "rl_kind": "none"}])
def test_state_dict_round_trip_reproduces_next_update_bit_for_bit(overrides):
    torch.manual_seed(0)
    agent = DTAgent(_hp(**overrides), S, A)
    batch = _batch()
    for _ in range(2):
        _steps(agent, batch)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)  # through a file, as the loop's checkpoint does
    torch.manual_seed(9)
    _steps(agent, batch)
    expected = _all_state(agent)

    torch.manual_seed(123)  # a differently initialised agent
    resumed = DTAgent(_hp(**overrides), S, A)
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    torch.manual_seed(9)
    _steps(resumed, batch)
    got = _all_state(resumed)
    assert len(got) == len(expected)
    assert all(torch.equal(x, y) for x, y in zip(got, expected, strict=True))
    other = DTAgent(_hp(rl_kind="td3" if overrides else "none"), S, A)
    with pytest.raises(OdtbenchError, match="checkpoint"):
        other.load_state_dict(copy.deepcopy(agent.state_dict()))


def test_every_registered_method_has_its_documentation_page():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for name in list_methods():
        if get_method(name).family == "external":
            continue
        page = repo / registry.doc_page(name)
        assert page.is_file(), f"{name}: write {page.relative_to(repo)}"
        text = page.read_text()
        assert "## " in text and "eviation" in text, f"{page.name}: needs its ledger of deviations"
