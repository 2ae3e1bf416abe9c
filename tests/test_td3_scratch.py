"""TD3-scratch, the floor: online only from an empty buffer. Its first update comes after the
random start steps, only online transitions ever enter its buffer, and its start steps follow
the budget (docs/methods/td3-scratch.md)."""

from __future__ import annotations

import pytest

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import resolve
from odtbench.methods import get_method
from odtbench.runfiles.results import validate_run
from odtbench_baselines import td3_scratch
from odtbench_baselines.mlp_loop import MLPRun

TASK = "mujoco/hopper-random"


def test_start_steps_are_the_codes_25k_capped_at_5_percent_of_the_budget():
    assert td3_scratch.start_steps(resolve(TASK, "TD3-scratch", "paper").hyperparameters) == 25_000
    assert td3_scratch.start_steps(resolve(TASK, "TD3-scratch", "quick").hyperparameters) == 2_000
    hp = resolve(TASK, "TD3-scratch", "paper", overrides={"online_budget": 1_000_000})
    assert td3_scratch.start_steps(hp.hyperparameters) == 25_000  # the code's own budget
    spec = get_method("TD3-scratch")
    assert spec.role == "floor" and spec.floor_suites == ("mujoco",)
    # no pretraining key: nothing offline can be switched on by an override
    with pytest.raises(OdtbenchError, match="mlp_pretrain_steps"):
        resolve(TASK, "TD3-scratch", "smoke", overrides={"mlp_pretrain_steps": 10})
    with pytest.raises(OdtbenchError, match=r"td3_start_share=1.0 is invalid: must be a number in \[0, 1\)"):
        resolve(TASK, "TD3-scratch", "smoke", overrides={"td3_start_share": 1.0})


def test_only_online_transitions_enter_the_buffer_and_updates_wait_for_them(hopper_data,
                                                                           tmp_path):
    cfg = resolve(TASK, "TD3-scratch", "smoke", seed=0)
    hp = cfg.hyperparameters
    run = MLPRun(td3_scratch.METHOD, cfg, tmp_path / "run")
    assert run.buffer.size == 0 and run.n_offline == 0  # the offline data never enter
    start = td3_scratch.start_steps(hp)
    assert 0 < start < hp["online_budget"]
    seen: list[tuple[int, int]] = []  # (buffer size, online transitions) at each update
    update = run.agent.update

    def watched(batch):
        seen.append((run.buffer.size, run.state.online_transitions))
        return update(batch)

    run.agent.update = watched
    summary = run.execute()
    assert summary["status"] == "complete"
    assert seen[0] == (start + 1, start + 1)  # the first update follows the first policy step
    assert all(size == n for size, n in seen)  # the buffer holds exactly the online steps
    assert len(seen) == hp["online_budget"] - start  # then one update per step
    rec = validate_run(tmp_path / "run")
    pre = rec.curve[rec.curve.phase == "pretrain"]
    assert len(pre) == 1 and pre.online_transitions.iloc[0] == 0  # the initial policy's score
    assert pre.gradient_steps.iloc[0] == 0
