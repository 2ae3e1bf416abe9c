"""Hyperparameter bounds declared on the schemas (issue 28, item 2): every numeric key has a
range with an upper bound, every string key its choices; a value beyond what a run can hold
stops in `resolve` with one line, before any file; the run carries the typed object."""

from __future__ import annotations

import dataclasses
import math

import pytest
from test_faults import _one_line, _run  # tests/ is on sys.path (no __init__.py)

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.checks import memory_limit_bytes
from odtbench.hyperparameters.resolve import resolve
from odtbench.hyperparameters.schemas import (
    Choices,
    DTHyperparameters,
    Protocol,
    Range,
    schema_bounds,
    schema_types,
)
from odtbench.methods import get_method, list_methods

TASK = "mujoco/hopper-random"
HUGE = [("batch_size", "100000000000"), ("embed_dim", "1000000"), ("lr_actor", "1e300"),
        ("context_len", "100000")]


@pytest.mark.parametrize("method", list_methods())
def test_every_key_of_every_schema_declares_its_bounds(method):
    schema = get_method(method).hyperparameters or Protocol
    bounds = schema_bounds(schema)
    for key, want in schema_types(schema).items():
        if want is bool:
            assert key not in bounds
        elif want is str:
            assert isinstance(bounds[key], Choices) and bounds[key].names(), key
        else:  # int, float, optional ones: a range closed above by a finite bound
            rng = bounds[key]
            assert isinstance(rng, Range) and math.isfinite(rng.high), key
            assert rng.ceiling or rng.high <= 1, key  # a capacity bound says why


@pytest.mark.parametrize("method", list_methods())
def test_every_resolved_value_lies_within_its_bounds_and_the_memory(method):
    """No preset meets a bound: the bounds refuse typos, never the study's values."""
    for scale in ("smoke", "paper"):
        cfg = resolve(TASK, method, scale)
        typed = cfg.typed_as(get_method(method).hyperparameters or Protocol)
        assert typed is cfg.typed  # the object resolve built, carried by the run
        assert typed.memory_bytes() < memory_limit_bytes()


@pytest.mark.parametrize("key, value", HUGE)
def test_a_huge_value_stops_with_one_line_and_writes_nothing(key, value, toy_data, tmp_path,
                                                              capsys):
    out = tmp_path / "run"
    rc, err = _run(out, capsys, "--set", f"{key}={value}")
    _one_line(rc, err, f"hyperparameter {key}=", "must be", "<=")
    assert not out.exists()


def test_sizes_that_fit_alone_but_not_together_stop_in_resolve():
    with pytest.raises(OdtbenchError, match=r"batch_size=1000000, context_len=4096, .* GiB"):
        resolve(TASK, "TD3+ODT", "smoke", overrides={"batch_size": 1_000_000,
                                                     "context_len": 4096})
    with pytest.raises(OdtbenchError, match=r"mlp_batch_size=1000000, mlp_hidden=16384"):
        resolve(TASK, "TD3+BC", "smoke", overrides={"mlp_batch_size": 1_000_000,
                                                    "mlp_hidden": 16384, "mlp_layers": 64})


def test_a_ceiling_is_named_only_above_it():
    with pytest.raises(OdtbenchError, match=r"batch_size=0 is invalid: must be an integer > 0; "):
        resolve(TASK, "TD3+ODT", "smoke", overrides={"batch_size": 0})
    with pytest.raises(OdtbenchError, match=r"gamma=2 is invalid: must be a number in \[0, 1\];"):
        resolve(TASK, "TD3+ODT", "smoke", overrides={"gamma": 2})
    with pytest.raises(OdtbenchError, match=r"eval_rtg=10000000000000.0 is invalid: .* <= 1e\+12 \("):
        resolve(TASK, "TD3+ODT", "smoke", overrides={"eval_rtg": 1e13})


def test_the_choices_are_the_implemented_ones():
    """iql_actor_schedule's choices are the ones IQL implements (the core table had drifted)."""
    from odtbench_baselines import iql

    cfg = resolve(TASK, "IQL", "smoke", overrides={"iql_actor_schedule": "cosine_pretrain"})
    assert cfg.hyperparameters["iql_actor_schedule"] == "cosine_pretrain"
    assert schema_bounds(get_method("IQL").hyperparameters)["iql_actor_schedule"].names() \
        == iql.SCHEDULES
    kinds = schema_bounds(DTHyperparameters)["rl_kind"]
    assert isinstance(kinds, Choices) and "td3" in kinds.names()


def test_a_record_edited_after_resolve_gives_its_own_typed_object():
    cfg = resolve(TASK, "TD3+ODT", "smoke")
    cfg.hyperparameters["rl_coeff"] = 0.5
    typed = cfg.typed_as(DTHyperparameters)
    assert typed is not cfg.typed and typed.rl_coeff == 0.5
    assert dataclasses.replace(typed, rl_coeff=cfg.typed.rl_coeff) == cfg.typed
    with pytest.raises(OdtbenchError, match="has no value"):
        dataclasses.replace(cfg, typed=None, hyperparameters={}).typed_as(DTHyperparameters)


def test_agents_and_their_kinds_read_the_runs_typed_object():
    """No component keeps a list of its keys: the DT agent, its kind and PDT's agent hold
    the run's typed object itself, and a complete record gives an equal one."""
    from odtbench.methods.dt_agent import DTAgent
    from odtbench_baselines.pdt import PDTAgent

    for method in [m for m in list_methods() if get_method(m).family == "dt"]:
        cfg = resolve(TASK, method, "smoke")
        agent = DTAgent(cfg.typed, 3, 2)
        assert agent.hp is cfg.typed and agent.kind.hp is cfg.typed, method
        assert DTAgent(cfg.hyperparameters, 3, 2).kind.hp == cfg.typed, method
    cfg = resolve(TASK, "PDT", "smoke")
    assert PDTAgent(cfg.typed, 3, 2).hp is cfg.typed
    with pytest.raises(OdtbenchError, match="rl_coeff has no value"):
        DTAgent({k: v for k, v in resolve(TASK, "SAC", "smoke").hyperparameters.items()
                 if k != "rl_coeff"}, 3, 2)
