"""The authors' reward transforms, as env wrappers and as the same operations on offline data.

Each rule has one implementation used on both sides, so data and env agree by construction:
`affine_reward` (Adroit r/100 or r/1000, AntMaze r - 1), `delay_rewards` / `DelayedReward`
(delayed reward, study App. G, M = 5), and the AntMaze trajectory rules `split_at_goal` and
`drop_trivial` (docs/suites.md, "Domain rules"). `preprocess` applies them in the authors' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import SupportsFloat, cast

import gymnasium as gym
import numpy as np

from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError
from odtbench.suites.prep import OfflinePrep


def affine_reward(r: np.ndarray | float, shift: float, scale: float) -> np.ndarray | float:
    """(r + shift) * scale: the per-env reward transform of docs/suites.md, "Domain rules"."""
    return (r + shift) * scale


def delay_rewards(rewards: np.ndarray, m: int) -> np.ndarray:
    """Sum rewards over periods of `m` steps and pay each sum at the period's last step.

    Steps j with j mod m = m - 1 and the trajectory's last step receive the rewards accrued
    since the previous payment; every other step gets 0 (the authors' delayed-reward rule). The
    trajectory's return is unchanged. m = 1 returns the rewards unchanged.
    """
    if m < 1:
        raise OdtbenchError(f"delayed reward period must be >= 1, got {m}")
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    if m == 1 or len(r) == 0:
        return r.astype(np.asarray(rewards).dtype, copy=True)
    pay = np.zeros(len(r), dtype=bool)
    pay[m - 1::m] = True
    pay[-1] = True
    start = 0
    for j in np.flatnonzero(pay):
        out[j] = r[start:j + 1].sum()
        start = j + 1
    return out.astype(np.asarray(rewards).dtype)


class AffineReward(gym.RewardWrapper):
    """Env side of `affine_reward`; `info` (e.g. AntMaze's success) passes through untouched."""

    def __init__(self, env: gym.Env, shift: float, scale: float):
        super().__init__(env)
        self.shift, self.scale = float(shift), float(scale)

    def reward(self, reward: SupportsFloat) -> float:
        # gymnasium types rewards as SupportsFloat; the envs here return floats (numpy or not),
        # passed on as they are so the arithmetic keeps their precision
        return float(affine_reward(cast(float, reward), self.shift, self.scale))


class DelayedReward(gym.Wrapper):
    """Env side of `delay_rewards`: pays the accrued reward every `m` steps or at episode end."""

    def __init__(self, env: gym.Env, m: int):
        super().__init__(env)
        if m < 2:
            raise OdtbenchError(f"DelayedReward needs a period >= 2, got {m}")
        self.m = int(m)
        self._t, self._owed = 0, 0.0

    def reset(self, **kwargs):
        self._t, self._owed = 0, 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self._owed += float(r)
        self._t += 1
        if self._t % self.m == 0 or term or trunc:
            r, self._owed = self._owed, 0.0
        else:
            r = 0.0
        return obs, r, term, trunc, info


def _piece(t: Trajectory, lo: int, hi: int, goal_end: bool) -> Trajectory:
    term = np.zeros(hi - lo, dtype=bool)
    trunc = np.zeros(hi - lo, dtype=bool)
    # The authors mark the last step of *every* split trajectory terminal, goal or not
    # (docs/methods/dt-family.md §7); `truncations` keeps the true cause for the record.
    term[-1] = True
    trunc[-1] = not goal_end and not bool(t.terminations[hi - 1])
    return Trajectory(t.observations[lo:hi].copy(), t.actions[lo:hi].copy(), t.rewards[lo:hi].copy(),
                      t.next_observations[lo:hi].copy(), term, trunc, dict(t.infos))


def split_at_goal(t: Trajectory, goal_reward: float = 1.0) -> list[Trajectory]:
    """Split an AntMaze episode after every goal-region step (sparse reward >= goal_reward).

    D4RL's antmaze data mark every goal-region step terminal, so the authors' loader cuts a
    trajectory there; consecutive goal steps become one-step trajectories.
    """
    goal = np.asarray(t.rewards) >= goal_reward
    ends = sorted(set(np.flatnonzero(goal).tolist()) | {len(t) - 1})
    out, lo = [], 0
    for e in ends:
        out.append(_piece(t, lo, e + 1, bool(goal[e])))
        lo = e + 1
    return out


def drop_trivial(trajs: Sequence[Trajectory], keep: int = 9) -> list[Trajectory]:
    """Drop one-step trajectories except the first `keep` (`--remove_trivial_trajs 1`).

    The authors' code keeps 9; the paper's text says 10 (paper Tab. 9 notes). We follow the code.
    """
    out, seen = [], 0
    for t in trajs:
        if len(t) == 1:
            seen += 1
            if seen > keep:
                continue
        out.append(t)
    return out


def preprocess(trajs: Sequence[Trajectory], prep: OfflinePrep) -> list[Trajectory]:
    """The authors' load-time rules on raw offline trajectories (docs/suites.md, "Domain rules").

    AntMaze: split at goal steps (every split end terminal), shape rewards by -1, drop all
    but the first `keep_one_step` one-step trajectories. Then the reward scale (Adroit) and
    the delayed reward, with the same functions the env wrappers use.
    """
    out: list[Trajectory] = []
    for t in trajs:
        out.extend(split_at_goal(t) if prep.antmaze else [t])
    if prep.antmaze:
        out = drop_trivial(out, prep.keep_one_step)
    result = []
    for t in out:
        r = np.asarray(affine_reward(t.rewards.astype(np.float64), prep.reward_shift, prep.reward_scale))
        r = delay_rewards(r, prep.delay)
        result.append(Trajectory(t.observations, t.actions, r.astype(np.float32), t.next_observations,
                                 t.terminations, t.truncations, dict(t.infos)))
    if not result:
        raise OdtbenchError("preprocessing left no trajectories; the dataset is empty or all "
                            "one-step (collect longer episodes)")
    return result
