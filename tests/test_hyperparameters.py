"""Typed hyperparameters per family: each method resolves, records and accepts only its own
keys, with their sources and types."""

from __future__ import annotations

import dataclasses

import pytest

from odtbench.cli import main
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import SCALES, resolve
from odtbench.hyperparameters.schemas import DTHyperparameters, Protocol, schema_types
from odtbench.methods import get_method, list_methods

TASK = "mujoco/hopper-random"


@pytest.mark.parametrize("method", ["ODT", "TD3+ODT", "TD3+BC", "IQL", "PDT"])
def test_a_run_records_exactly_its_schema_keys_each_with_a_source(method):
    schema = get_method(method).hyperparameters
    for scale in SCALES:
        cfg = resolve(TASK, method, scale)
        assert list(cfg.hyperparameters) and set(cfg.hyperparameters) == set(schema_types(schema))
        assert set(cfg.sources) == set(cfg.hyperparameters)
        assert set(schema_types(Protocol)) <= set(cfg.hyperparameters)  # shared by all


def test_td3bc_holds_no_dt_key_and_rejects_one_in_one_line():
    hp = resolve(TASK, "TD3+BC", "quick").hyperparameters
    dt_only = set(schema_types(DTHyperparameters)) - set(schema_types(Protocol))
    assert not dt_only & set(hp)
    assert hp["online_budget"] == resolve(TASK, "ODT", "quick").hyperparameters["online_budget"]
    with pytest.raises(OdtbenchError, match="TD3\\+BC has no hyperparameter 'n_layer'") as e:
        resolve(TASK, "TD3+BC", "smoke", overrides={"n_layer": 8})
    assert "\n" not in str(e.value)
    with pytest.raises(OdtbenchError, match="unknown hyperparameter 'n_layr'; valid choices"):
        resolve(TASK, "ODT", "smoke", overrides={"n_layr": 8})
    with pytest.raises(OdtbenchError, match="ODT has no hyperparameter 'td3bc_alpha'"):
        resolve(TASK, "ODT", "smoke", overrides={"td3bc_alpha": 1.0})


@pytest.mark.parametrize("key, value, ok", [
    ("lr_actor", 1, True), ("lr_actor", "fast", False), ("n_layer", 2.5, False),
    ("n_layer", True, False), ("stochastic", 1, False), ("actor_optimizer", "adam", True),
])
def test_overrides_must_have_the_keys_type(key, value, ok):
    if ok:
        assert resolve(TASK, "TD3+ODT", "smoke", overrides={key: value}).hyperparameters[key] == value
    else:
        with pytest.raises(OdtbenchError, match=f"hyperparameter {key}.*must be (a|true or false)"):
            resolve(TASK, "TD3+ODT", "smoke", overrides={key: value})


def test_schema_checks_still_run():
    with pytest.raises(OdtbenchError, match="not divisible by n_head"):
        resolve(TASK, "TD3+ODT", "smoke", overrides={"embed_dim": 15, "n_head": 2})
    with pytest.raises(OdtbenchError, match="not divisible by n_head"):
        resolve(TASK, "PDT", "smoke", overrides={"embed_dim": 15, "n_head": 2})


def test_every_registered_method_with_a_schema_builds_it_on_every_task_and_scale():
    from odtbench.hyperparameters.schemas import build
    from odtbench.tasks import list_tasks

    for method in list_methods():
        schema = get_method(method).hyperparameters
        for task in list_tasks()[::7]:
            for scale in SCALES:
                cfg = resolve(task.key, method, scale)
                if schema is not None:
                    typed = build(schema, cfg.hyperparameters, method)
                    assert dataclasses.asdict(typed) == cfg.hyperparameters


def test_config_command_prints_each_key_with_its_source(capsys):
    assert main(["config", "--task", TASK, "--method", "TD3+BC", "--scale", "smoke"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(resolve(TASK, "TD3+BC", "smoke").hyperparameters)
    assert "method preset TD3+BC (scale smoke)" in rows["mlp_hidden"]
    assert main(["config", "--task", TASK, "--method", "TD3+BC", "--scale", "smoke",
                 "--set", "n_layer=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("odtbench: error: TD3+BC has no hyperparameter 'n_layer'")


@pytest.mark.parametrize("method", ["TD3+ODT", "ODT", "PDT", "IQL", "TD3-scratch"])
def test_standard_is_quick_with_longer_budgets_and_ten_evaluation_episodes(method):
    """A scale built on another (SCALE_BASE) applies its base's layers, then its own: standard
    changes only the online budget (per domain), the iteration cap and the evaluation."""
    from odtbench.hyperparameters.resolve import SCALE_DOMAIN_OVERRIDES
    from odtbench.hyperparameters.schemas import data_scale, scale_layers

    assert scale_layers("standard") == ("quick", "standard") and data_scale("standard") == "quick"
    changed = {"online_budget", "max_online_iters", "eval_episodes"}
    for task, budget in (("mujoco/halfcheetah-random", 100_000), ("mujoco/walker2d-random", 300_000)):
        quick = resolve(task, method, "quick")
        std = resolve(task, method, "standard")
        assert {k for k in quick.hyperparameters
                if quick.hyperparameters[k] != std.hyperparameters[k]} <= changed
        assert std.hyperparameters["online_budget"] == budget
        assert std.hyperparameters["eval_episodes"] == 10
        assert "scale standard" in std.sources["online_budget"]
        for k in ("embed_dim", "mlp_hidden", "batch_size"):  # the sizes come from quick's layers
            if k in std.sources:
                assert std.sources[k] == quick.sources[k]
    assert SCALE_DOMAIN_OVERRIDES["standard"]["walker2d"]["online_budget"] == 300_000


def test_standard_trains_on_quicks_dataset_files():
    from odtbench.data.build import dataset_id

    for task in ("mujoco/halfcheetah-random", "adroit/hammer-cloned", "toy/bandit"):
        assert dataset_id(task, "standard") == dataset_id(task, "quick")
