"""Evaluation episodes and online collection: the two places a run acts in its environments.

Both go through `odtbench.runcore.evaluation.rollout` (batched, lockstep) with the run's seed formulas
(`eval_seeds`, `online_seeds`) and the offline state statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from odtbench.agents.protocol import CollectingPolicy, Policy
from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.schemas import DTHyperparameters, TrajectoryTransformer
from odtbench.runcore.context import RunContext
from odtbench.runcore.evaluation import RolloutResult, eval_seeds, online_seeds, rollout
from odtbench.runcore.state import RunState
from odtbench.runfiles.diagnostics import OnlineEpisodeStats


@dataclass(frozen=True)
class StateNorm:
    """The offline data's state statistics; frozen for the whole run (docs/methods/dt-family.md)."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return (obs - self.mean) / self.std


class Evaluator:
    """The run's evaluation episodes: the same env seeds at every evaluation, deterministic
    actions. A family without a return token (MLP, PDT) has no RTG target, and a Markov
    policy (MLP) no context: its agent reads the last state only."""

    def __init__(self, ctx: RunContext, norm: StateNorm):
        self.ctx, self.norm = ctx, norm

    def episodes(self, agent: Policy) -> RolloutResult:
        hp = self.ctx.typed
        # a trajectory model's RTG input and context; an MLP policy has neither
        seq = hp if isinstance(hp, TrajectoryTransformer) else None
        return rollout(agent, self.ctx.eval_envs, eval_seeds(self.ctx.seed, hp.eval_episodes),
                       state_mean=self.norm.mean, state_std=self.norm.std,
                       target_rtg=hp.eval_rtg if isinstance(hp, DTHyperparameters) else 0.0,
                       reward_scale=seq.reward_scale if seq else 0.0,
                       context_len=seq.eval_context_len if seq else 1,
                       max_len=hp.max_episode_len, deterministic=True)


class Collector:
    """Online episodes of a trajectory loop (DT family, PDT): at least one, until at least
    `min_transitions_per_iter`; sampled actions for a stochastic head, else Gaussian noise
    on the deterministic ones (docs/methods/dt-family.md §5)."""

    def __init__(self, ctx: RunContext, norm: StateNorm,
                 on_episode: Callable[[int], None] | None = None):
        self.ctx, self.norm = ctx, norm
        self.on_episode = on_episode  # called with the transitions so far (progress display)

    def collect(self, agent: CollectingPolicy, state: RunState) -> list[Trajectory]:
        ctx = self.ctx
        hp = ctx.cfg.typed_as(TrajectoryTransformer)
        dt = hp if isinstance(hp, DTHyperparameters) else None  # PDT: no RTG target, no noise
        stochastic = bool(agent.stochastic)
        new: list[Trajectory] = []
        n = 0
        while True:
            res = rollout(agent, [ctx.online_env], online_seeds(ctx.seed, state.episodes),
                          state_mean=self.norm.mean, state_std=self.norm.std,
                          target_rtg=dt.online_rtg if dt else 0.0, reward_scale=hp.reward_scale,
                          context_len=hp.eval_context_len, max_len=hp.max_episode_len,
                          deterministic=not stochastic,
                          noise_std=0.0 if stochastic else _expl_noise(dt, ctx.cfg.method),
                          generator=ctx.gen)
            for t in res.trajectories:
                t.online = True
            new.extend(res.trajectories)
            n += int(res.lengths.sum())
            state.episodes += 1
            if self.on_episode is not None:
                self.on_episode(n)
            if n >= hp.min_transitions_per_iter:
                break
        state.online_transitions += n
        OnlineEpisodeStats.add(state.online_stats, new, self.norm.mean, self.norm.std)
        return new




def _expl_noise(dt: DTHyperparameters | None, method: str) -> float:
    """The Gaussian exploration noise of a deterministic DT (a DT-family key)."""
    if dt is None:
        raise OdtbenchError(f"{method}: a deterministic policy explores with expl_noise, which "
                            "only the DT family has; use a stochastic head")
    return dt.expl_noise
