"""The study's toy problem (Sec. 3.1, Fig. 2; docs/toy.md): a one-step continuous bandit.

One state, one step, action a in [-1, 1], reward r(a) = (a+1)^2 for a <= 0 and 1 - 2a for a > 0:
the peak r(0) = 1 is hidden from the offline data, whose actions sit near -1 and in [0.5, 1).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from odtbench.data.trajectories import Trajectory

ENV_ID = "odtbench/ToyBandit-v0"
DATASET_SEED = 59  # the authors' seed (docs/toy.md)
STATE = np.ones(1, dtype=np.float32)  # the single state


def toy_reward(a: np.ndarray | float) -> np.ndarray:
    """r(a) of the study, vectorised; actions are clipped to [-1, 1] first."""
    a = np.clip(np.asarray(a, dtype=np.float64), -1.0, 1.0)
    return np.where(a <= 0.0, (a + 1.0) ** 2, 1.0 - 2.0 * a)


class ToyBanditEnv(gym.Env):
    """Single-state, single-step bandit with the study's piecewise reward."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return STATE.copy(), {}

    def step(self, action):
        reward = float(toy_reward(np.asarray(action).reshape(-1)[0]))
        return STATE.copy(), reward, True, False, {}


def make_toy_trajectories(seed: int = DATASET_SEED) -> list[Trajectory]:
    """The 128-action offline dataset: 100 actions ~ U[-1, -0.95), 28 ~ U[0.5, 1).

    Each action is a one-step trajectory that terminates. The interval (-1, -0.95) follows
    the study's main text (the appendix's formula lost a minus sign).
    """
    rng = np.random.default_rng(seed)
    actions = np.concatenate([rng.uniform(-1.0, -0.95, 100), rng.uniform(0.5, 1.0, 28)])
    trajs = []
    for a in actions:
        trajs.append(
            Trajectory(
                observations=STATE[None].copy(),
                actions=np.array([[a]], dtype=np.float32),
                rewards=np.array([toy_reward(a)], dtype=np.float32),
                next_observations=STATE[None].copy(),
                terminations=np.array([True]),
                truncations=np.array([False]),
            )
        )
    return trajs


class ToyProbe:
    """Records Fig. 2 (b)-(d) of the study per epoch: rollout actions, Q(a) and pi(RTG)."""

    def __init__(self, n_grid: int = 101) -> None:
        self.action_grid = np.linspace(-1.0, 1.0, n_grid)
        self.rtg_grid = np.linspace(0.0, 1.0, n_grid)
        self.epochs: list[dict] = []

    def record(self, agent, epoch: int, gradient_steps: int, rollout_actions: list[float],
               state_norm: np.ndarray, reward_scale: float, has_critic: bool) -> None:
        import torch

        n = len(self.action_grid)
        s = torch.as_tensor(np.repeat(state_norm[None, None, :], n, 0), dtype=torch.float32)
        a = torch.as_tensor(self.action_grid, dtype=torch.float32).view(n, 1, 1)
        q = agent.q_values(s, a).reshape(-1).tolist() if has_critic else None
        rtg = torch.as_tensor(self.rtg_grid * reward_scale, dtype=torch.float32).view(n, 1)
        pi = agent.act(s, torch.zeros(n, 1, 1), rtg).reshape(-1).tolist()
        acts = [float(x) for x in rollout_actions]
        self.epochs.append({
            "epoch": epoch, "gradient_steps": gradient_steps, "rollout_actions": acts,
            "rollout_rewards": toy_reward(np.array(acts)).tolist() if acts else [],
            "critic_q": q, "actor_action": pi,
        })

    def to_json(self) -> dict:
        return {"action_grid": self.action_grid.tolist(), "rtg_grid": self.rtg_grid.tolist(),
                "true_reward": toy_reward(self.action_grid).tolist(), "epochs": self.epochs}

    def load(self, obj: dict) -> None:
        self.epochs = list(obj.get("epochs", []))


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="odtbench.toy:ToyBanditEnv", max_episode_steps=1)
