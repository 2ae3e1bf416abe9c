"""Batched DT rollouts: evaluation episodes in lockstep, and online data collection.

All live episodes share the step index, so the policy runs once per step for the whole batch
on exactly the real context (the last T_eval steps; no padding to K, which is equivalent
because padded keys are masked and there is no positional embedding).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from odtbench.agents.protocol import Policy
from odtbench.data.trajectories import Trajectory

ACTION_EPS = 1e-6


def eval_seeds(run_seed: int, n: int) -> list[int]:
    """Env seeds of a run's `n` evaluation episodes (the same at every evaluation)."""
    return [run_seed * 1000 + i for i in range(n)]


def online_seeds(run_seed: int, episode: int, n: int = 1) -> list[int]:
    """Env seeds of `n` online episodes starting at the run's `episode`-th: 100 + episode, as
    the authors seed their online envs, offset per run seed."""
    return [100 + episode + i + 1_000_000 * run_seed for i in range(n)]


@dataclass
class RolloutResult:
    trajectories: list[Trajectory]
    returns: np.ndarray  # (N,) episode returns in env-reward units
    lengths: np.ndarray  # (N,)
    successes: np.ndarray | None = None  # (N,) bool where the env reports success


def episode_trajectory(raw_obs: np.ndarray, actions: torch.Tensor, rewards: np.ndarray,
                       length: int, truncated: bool) -> Trajectory:
    """One episode's first `length` steps as a Trajectory (raw_obs holds length + 1 rows)."""
    ends = np.zeros(length, dtype=bool)
    ends_truncated = np.zeros(length, dtype=bool)
    # The authors store every online episode end as terminal, time-limit ends included
    # (docs/methods/dt-family.md §7); `truncations` keeps the true cause for the record.
    ends[-1] = True
    ends_truncated[-1] = truncated
    return Trajectory(observations=raw_obs[:length].copy(),
                      actions=actions[:length].numpy().astype(np.float32),
                      rewards=rewards[:length].copy(),
                      next_observations=raw_obs[1:length + 1].copy(),
                      terminations=ends, truncations=ends_truncated)


def rollout(agent: Policy, envs: list[gym.Env], seeds: list[int], *, state_mean: np.ndarray,
            state_std: np.ndarray, target_rtg: float, reward_scale: float, context_len: int,
            max_len: int, deterministic: bool = True, noise_std: float = 0.0,
            generator: torch.Generator | None = None) -> RolloutResult:
    """Run one episode per env in lockstep with the DT policy.

    RTG starts at `target_rtg * reward_scale` and is decremented by `r_t * reward_scale`
    (docs/methods/dt-family.md §1). Exploration: Gaussian noise of std `noise_std` added to the
    deterministic action, unclipped before the final clamp (docs/methods/dt-family.md §5).
    """
    n = len(envs)
    S = int(np.prod(envs[0].observation_space.shape or ()))
    A = int(np.prod(envs[0].action_space.shape or ()))
    mean = torch.as_tensor(state_mean, dtype=torch.float32)
    std = torch.as_tensor(state_std, dtype=torch.float32)
    states = torch.zeros(n, max_len + 1, S)
    actions = torch.zeros(n, max_len + 1, A)
    rtg = torch.zeros(n, max_len + 1)
    rtg[:, 0] = target_rtg * reward_scale
    raw_obs = np.zeros((n, max_len + 1, S), dtype=np.float32)
    rewards = np.zeros((n, max_len), dtype=np.float32)
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    any_success_info = False
    lengths = np.zeros(n, dtype=np.int64)
    for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs, _ = env.reset(seed=int(seed))
        raw_obs[i, 0] = np.asarray(obs, dtype=np.float32).reshape(-1)
    states[:, 0] = (torch.as_tensor(raw_obs[:, 0]) - mean) / std
    alive = np.ones(n, dtype=bool)
    # eval mode once for the whole rollout, not per step (agents without the hook: per call)
    with getattr(agent, "inference", contextlib.nullcontext)():
        for t in range(max_len):
            ids = np.flatnonzero(alive)
            if len(ids) == 0:
                break
            lo = max(0, t + 1 - context_len)
            tid = torch.as_tensor(ids)
            act = agent.act(states[tid, lo:t + 1], actions[tid, lo:t + 1], rtg[tid, lo:t + 1],
                            deterministic=deterministic)
            if noise_std > 0:
                act = act + noise_std * torch.randn(act.shape, generator=generator)
            act = act.clamp(-1.0, 1.0)
            actions[tid, t] = act
            act_np = act.numpy()
            for j, i in enumerate(ids.tolist()):
                obs, r, term, trunc, info = envs[i].step(act_np[j])
                raw_obs[i, t + 1] = np.asarray(obs, dtype=np.float32).reshape(-1)
                rewards[i, t] = r
                lengths[i] = t + 1
                if "success" in info or "is_success" in info:
                    any_success_info = True
                    success[i] |= bool(info.get("success", info.get("is_success", False)))
                if term or trunc or t + 1 == max_len:
                    alive[i] = False
                    terminated[i], truncated[i] = bool(term), not term
            states[tid, t + 1] = (torch.as_tensor(raw_obs[ids, t + 1]) - mean) / std
            rtg[tid, t + 1] = rtg[tid, t] - torch.as_tensor(rewards[ids, t]) * reward_scale
    trajs = [episode_trajectory(raw_obs[i], actions[i], rewards[i], int(lengths[i]),
                                bool(truncated[i])) for i in range(n)]
    return RolloutResult(trajs, rewards.sum(1, dtype=np.float64), lengths,
                         success if any_success_info else None)
