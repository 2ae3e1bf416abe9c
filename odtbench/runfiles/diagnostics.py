"""Learning diagnostics: why a method learns or not, one row per evaluation (diagnostics.csv).

The columns (docs/contracts.md §1) compare the critic with what actually happened, describe
what the replay buffer holds and how far online states sit from the frozen state
normalisation, and split the actor's gradient into its supervised and RL terms:

- `q_s0`, `mc_return_s0`: Q1(s0, pi(s0)) and the discounted return obtained from s0, means
  over the evaluation episodes (an overestimating critic has q_s0 >> mc_return_s0);
- `q_mc_corr`: Pearson correlation of Q1(s_t, a_t) with the discounted Monte-Carlo return
  G_t = sum_k gamma^k r_{t+k} over every step of the evaluation episodes (a critic with the
  right shape has it near 1). G_t is cut at the episode end, so near a time limit it is
  below the value the critic should have; the correlation is still the useful signal;
- `buffer_online_share`: the fraction of the replay buffer's transitions collected online;
- `online_episodes`, `online_return_mean`, `online_length_mean`, `online_max_abs_z`: the
  online episodes collected since the previous row, and the largest |z| of their states
  under the frozen offline normalisation (|z| >> 5: the policy visits unseen states);
- `grad_sup_norm`, `grad_rl_norm`, `grad_cosine`: ||grad(sup_coeff L_sup)||,
  ||grad(rl_coeff L_RL)|| over all DT parameters and cos(grad L_sup, grad L_RL) on one batch
  (a cosine near -1 with equal norms is a stationary point where the terms cancel);
- `critic_loss`: the last critic update's loss before the evaluation;
- `diag_wall_s`: what computing this row cost, in seconds;
- `ppo_ratio_mean`, `ppo_ratio_max`, `ppo_log_ratio_max` (PPO only): the importance ratio
  pi/pi_old of the actor steps since the previous row (`DTAgent.kind_diagnostics`).
Empty cells mean "does not apply" (no critic, no online data yet).

Everything here is computed off the training path: no run RNG stream, optimiser or network
is changed, so a run's numbers are the same with or without its diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from odtbench.runfiles.results import DIAGNOSTIC_COLUMNS

__all__ = ["DIAGNOSTIC_COLUMNS", "OnlineEpisodeStats", "critic_vs_returns", "discounted_returns",
           "gradient_stats", "max_abs_z", "online_share", "pearson"]


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, with G after the last step = 0 (float64)."""
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    acc = 0.0
    for t in range(len(r) - 1, -1, -1):
        acc = r[t] + gamma * acc
        out[t] = acc
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation, or None with fewer than 3 points or a constant input."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or len(x) != len(y):
        return None
    xs, ys = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xs * xs).sum()) * float((ys * ys).sum()))
    return float((xs * ys).sum() / den) if den > 0 else None


def critic_vs_returns(q_per_episode: Sequence[np.ndarray], rewards_per_episode: Sequence[np.ndarray],
                      gamma: float) -> dict[str, float | None]:
    """q_s0, mc_return_s0 and q_mc_corr of episodes given Q along each and its rewards."""
    q0, g0, qs, gs = [], [], [], []
    for q, r in zip(q_per_episode, rewards_per_episode, strict=True):
        if len(r) == 0:
            continue
        g = discounted_returns(r, gamma)
        q = np.asarray(q, dtype=np.float64)
        q0.append(q[0])
        g0.append(g[0])
        qs.append(q)
        gs.append(g)
    if not q0:
        return {"q_s0": None, "mc_return_s0": None, "q_mc_corr": None}
    return {"q_s0": float(np.mean(q0)), "mc_return_s0": float(np.mean(g0)),
            "q_mc_corr": pearson(np.concatenate(qs), np.concatenate(gs))}


def max_abs_z(observations: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Largest |(s - mean) / std| over all steps and state dimensions."""
    obs = np.asarray(observations, dtype=np.float64)
    if obs.size == 0:
        return 0.0
    return float(np.abs((obs - mean) / std).max())


def online_share(trajectories: Sequence[Any]) -> float:
    """Fraction of transitions in `trajectories` whose Trajectory.online is set."""
    total = sum(len(t) for t in trajectories)
    online = sum(len(t) for t in trajectories if getattr(t, "online", False))
    return online / total if total else 0.0


def gradient_stats(g_sup: torch.Tensor, g_rl: torch.Tensor | None, sup_coeff: float,
                   rl_coeff: float) -> dict[str, float | None]:
    """Weighted norms of the two actor gradient terms and the cosine of the unweighted ones."""
    out: dict[str, float | None] = {"grad_sup_norm": abs(sup_coeff) * float(g_sup.norm()),
                                    "grad_rl_norm": None, "grad_cosine": None}
    if g_rl is not None:
        out["grad_rl_norm"] = abs(rl_coeff) * float(g_rl.norm())
        den = float(g_sup.norm()) * float(g_rl.norm())
        out["grad_cosine"] = float(g_sup @ g_rl) / den if den > 0 else None
    return out


class OnlineEpisodeStats:
    """Running totals of the online episodes since the last diagnostics row.

    Kept as a plain dict inside the run state, so it is checkpointed with it and a resumed run
    writes the same rows."""

    @staticmethod
    def empty() -> dict[str, float]:
        return {"episodes": 0, "return_sum": 0.0, "length_sum": 0, "max_abs_z": 0.0}

    @staticmethod
    def add(acc: dict[str, float], trajectories: Sequence[Any], mean: np.ndarray,
            std: np.ndarray) -> None:
        for t in trajectories:
            acc["episodes"] += 1
            acc["return_sum"] += float(t.ret)
            acc["length_sum"] += len(t)
            acc["max_abs_z"] = max(acc["max_abs_z"], max_abs_z(t.observations, mean, std))

    @staticmethod
    def row(acc: Mapping[str, float]) -> dict[str, float | int | None]:
        n = int(acc["episodes"])
        if n == 0:
            return {"online_episodes": 0, "online_return_mean": None,
                    "online_length_mean": None, "online_max_abs_z": None}
        return {"online_episodes": n, "online_return_mean": acc["return_sum"] / n,
                "online_length_mean": acc["length_sum"] / n,
                "online_max_abs_z": acc["max_abs_z"]}
