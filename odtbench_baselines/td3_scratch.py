"""TD3-scratch: the floor. TD3 (Fujimoto et al. 2018) trained online only, from an empty
replay buffer, with the suite's budget and evaluation (docs/methods/td3-scratch.md).

The suite's one MLP TD3 (`odtbench.agents.td3`, plain actor loss -mean Q1) on the MLP loop
(`odtbench_baselines.mlp_loop`) with `offline_data=False`: no offline transition enters the
buffer and nothing is pretrained. The offline dataset gives only the task's shapes (and the
run's bookkeeping); states are the environment's raw states and rewards unscaled, as in the
published code. The first min(td3_start_steps, td3_start_share x online_budget) actions are
uniform in the action box with no update; then one environment step, one update.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from odtbench.data.trajectories import Trajectory
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.hyperparameters.schemas import as_schema
from odtbench_baselines import TD3ScratchHyperparameters
from odtbench_baselines.mlp_loop import MLPMethod, Preprocessing, run_mlp
from odtbench_baselines.td3bc import MLPTD3Agent, td3_config


def start_steps(hp: TD3ScratchHyperparameters | Mapping[str, Any]) -> int:
    """Uniform-random start steps: the published code's 25K, at most the same share of the
    budget as 25K is of the study's 500K (5 %), so a small budget keeps its updates.
    `hp`: the run's typed hyperparameters, or their record."""
    t = as_schema(hp, TD3ScratchHyperparameters, "TD3-scratch")
    return min(int(t.td3_start_steps), int(float(t.td3_start_share) * int(t.online_budget)))


def preprocess(trajs: list[Trajectory], hp: TD3ScratchHyperparameters,
               task: Any) -> Preprocessing:
    """Raw states, unscaled rewards: no statistic of the offline data reaches the agent."""
    dim = trajs[0].observations.shape[1]
    return Preprocessing(np.zeros(dim, np.float32), np.ones(dim, np.float32), 1.0, 1.0)


def make_agent(hp: TD3ScratchHyperparameters, obs_dim: int, act_dim: int, low: np.ndarray,
               high: np.ndarray, total_updates: int) -> MLPTD3Agent:
    cfg = td3_config(hp, actor_lr=hp.td3_actor_lr, critic_lr=hp.td3_critic_lr,
                     policy_noise=hp.td3_policy_noise, noise_clip=hp.td3_noise_clip,
                     policy_freq=hp.td3_policy_freq, expl_noise=hp.td3_expl_noise)
    return MLPTD3Agent(cfg, obs_dim, act_dim, low, high)


METHOD = MLPMethod(name="TD3-scratch", preprocess=preprocess, make_agent=make_agent,
                   offline_data=False, start_steps=start_steps)


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> dict:
    """Run (or resume) one TD3-scratch run; the method's runner in the registry."""
    return run_mlp(METHOD, cfg, out_dir, device=device)
