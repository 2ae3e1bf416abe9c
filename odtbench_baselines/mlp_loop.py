"""The offline->online protocol of the MLP baselines (TD3+BC, IQL), and the online-only one of
the floor (TD3-scratch: `MLPMethod.offline_data` False, docs/methods/td3-scratch.md).

1. Offline pretraining: `mlp_pretrain_steps` updates (1M at paper scale, the codebases'
   default that the study ran) on batches drawn uniformly from the offline transitions,
   evaluating every `mlp_pretrain_eval_every` updates and at the end (the last one is the
   "before finetuning" score).
2. Online finetuning: one environment step, then one update, until `online_budget` online
   transitions (the study's budget, shared with the DT family). The replay buffer is a FIFO
   of `mlp_replay_size` transitions (IQL: 1M, the official code's; None = offline size +
   budget, nothing evicted), seeded with the offline transitions (a random subset of
   them if they do not fit, as the official code), whose oldest entries online transitions
   overwrite once it is full (docs/fidelity.md). Evaluation every `mlp_eval_every` online
   transitions and at the end, with the suite's evaluation episodes
   (`odtbench.runcore.evaluation.rollout`).

Time-limit ends bootstrap, true terminations do not (both codebases). States are normalised
and rewards scaled once, on the way into the buffer, with statistics of the offline data
(`Preprocessing`, one per method).

The loop is composed on the run core (odtbench/runcore/): evaluation rows, result files,
checkpoints, the update counter and the driver are shared with every other loop. Checkpoints are taken only
between episodes (an env's physics state cannot be saved portably); with every RNG state
saved, a resumed run replays the lost steps exactly. The online transitions are saved as
append-only chunks (numbered by arrival, not by buffer slot), so a checkpoint never rewrites
the transitions saved before it; a resume re-inserts them in order through the FIFO.

An agent (TD3BCAgent, IQLAgent) provides: `update(batch) -> dict of floats` (with "q_mean"),
`actor_updates`, `explore(obs, rng) -> action`, `act(states, actions, rtg, deterministic)`
(the rollout interface; reads states[:, -1]), `state_dict()` / `load_state_dict()`.

An online-only method (`offline_data=False`) starts from an empty buffer: no offline
transition enters it and there is no pretraining (one evaluation of the initial policy at 0
transitions is the "before" score). Its first `start_steps(hp)` online actions are uniform in
the action box and no update runs until the buffer holds the transition after them (TD3's
published code: `start_timesteps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from odtbench.agents.td3 import FIFOReplayBuffer
from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.runcore.context import RunContext
from odtbench.runcore.core import RunCore
from odtbench.runcore.evaluation import online_seeds
from odtbench.runcore.evaluator import StateNorm
from odtbench.runcore.state import MLPRunState
from odtbench.runfiles.atomic import write_with
from odtbench.runfiles.checkpoint import corrupt_checkpoint_error
from odtbench_baselines import MLPHyperparameters, MLPOnlineHyperparameters

BUFFER_FIELDS = FIFOReplayBuffer.FIELDS


def replay_capacity(hp: MLPOnlineHyperparameters, n_offline: int) -> int:
    """`mlp_replay_size`, or offline size + online budget (never evicts) when None."""
    size = hp.mlp_replay_size
    if size is None:
        return n_offline + int(hp.online_budget)
    if int(size) < 1:
        raise OdtbenchError(f"mlp_replay_size must be >= 1 or null, got {size}; fix the override")
    return int(size)


def offline_slots(n_offline: int, capacity: int, seed: int) -> np.ndarray:
    """Which offline transitions seed the buffer: all, in order, if they fit; else a random
    subset of `capacity` of them in random order (the official IQL initialisation)."""
    if n_offline <= capacity:
        return np.arange(n_offline)
    return np.random.default_rng(seed).permutation(n_offline)[:capacity]


@dataclass(frozen=True)
class Preprocessing:
    """How transitions enter the buffer: (s - obs_mean) / obs_std, and rewards times
    reward_scale (offline data) or online_reward_scale (online transitions)."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    reward_scale: float
    online_reward_scale: float


@dataclass(frozen=True)
class MLPMethod:
    """A method run by this loop: its data preprocessing and its agent factory
    `make_agent(hp, obs_dim, act_dim, low, high, total_updates)`."""

    name: str
    # each takes the method's own schema (an MLPOnlineHyperparameters)
    preprocess: Callable[[list[Trajectory], Any, Any], Preprocessing]
    make_agent: Callable[..., Any]
    # False: online only, from an empty buffer, no pretraining (the floor, TD3-scratch)
    offline_data: bool = True
    # online transitions acted uniformly at random, with no update, before the policy acts
    start_steps: Callable[[Any], int] | None = None


def _check_hp(hp: MLPOnlineHyperparameters) -> None:
    """What the loop needs of a record edited by hand after `resolve` (whose bounds it
    skipped): every count >= 1 (an online-only method has no pretraining keys)."""
    pre = hp if isinstance(hp, MLPHyperparameters) else None
    counts = {"mlp_pretrain_eval_every": pre.mlp_pretrain_eval_every if pre else None,
              "mlp_eval_every": hp.mlp_eval_every, "mlp_checkpoint_every": hp.mlp_checkpoint_every,
              "mlp_batch_size": hp.mlp_batch_size, "online_budget": hp.online_budget,
              "max_episode_len": hp.max_episode_len, "eval_episodes": hp.eval_episodes}
    for key, value in counts.items():
        if value is not None and int(value) < 1:
            raise OdtbenchError(f"hyperparameter {key} must be >= 1, got {value}; fix the "
                                "preset or the --set override")
    if pre and int(pre.mlp_pretrain_steps) < 0:
        raise OdtbenchError(f"mlp_pretrain_steps must be >= 0, got {pre.mlp_pretrain_steps}")


class MLPRun:
    """One TD3+BC / IQL run on one task and seed: the MLP protocol on the run core."""

    def __init__(self, method: MLPMethod, cfg: RunConfig, out_dir: Path | str):
        self.hp = cfg.typed_as(MLPOnlineHyperparameters)  # the method's own schema
        _check_hp(self.hp)
        self.ctx = ctx = RunContext.open(cfg, out_dir, "cpu")
        self.method = method
        trajs = ctx.trajectories
        prep = method.preprocess(trajs, self.hp, ctx.task)
        self.norm = StateNorm(prep.obs_mean, prep.obs_std)  # evaluation reads it too
        self.reward_scale = float(prep.reward_scale)
        self.online_reward_scale = float(prep.online_reward_scale)
        self.np_rng = np.random.default_rng(cfg.seed)
        space = ctx.online_env.action_space
        assert isinstance(space, gym.spaces.Box), "MLP baselines act in continuous (Box) spaces"
        S = trajs[0].observations.shape[1]
        A = trajs[0].actions.shape[1]
        self.low = np.asarray(space.low, np.float32)
        self.high = np.asarray(space.high, np.float32)
        if method.offline_data:
            pre = cfg.typed_as(MLPHyperparameters)
            self.n_pretrain = int(pre.mlp_pretrain_steps)
            self.pretrain_every = int(pre.mlp_pretrain_eval_every)
        else:  # the initial policy's one evaluation stands for the pretraining phase
            self.n_pretrain, self.pretrain_every = 0, 1
        budget = int(self.hp.online_budget)
        self.start_steps = int(method.start_steps(self.hp)) if method.start_steps else 0
        if not 0 <= self.start_steps < budget:
            raise OdtbenchError(f"{method.name}: {self.start_steps} random start steps leave no "
                                f"update in the online budget of {budget}; lower the start "
                                "steps or raise online_budget")
        total = self.n_pretrain + budget - self.start_steps
        self.agent = method.make_agent(self.hp, S, A, self.low, self.high, total)
        # an online-only method never sees an offline transition (only the data's shapes)
        self.n_offline = sum(len(t) for t in trajs) if method.offline_data else 0
        self.buffer = FIFOReplayBuffer(S, A, replay_capacity(self.hp, self.n_offline))
        self._offline_slots = offline_slots(self.n_offline, self.buffer.capacity, cfg.seed)
        if self.n_offline:
            self._fill_offline(trajs)
        self.core = RunCore(ctx, MLPRunState(), self.agent, self.norm)

    @property
    def state(self) -> MLPRunState:
        st = self.core.state
        assert isinstance(st, MLPRunState)
        return st

    # ------------------------------------------------------------------ data
    def _norm(self, obs: np.ndarray) -> np.ndarray:
        return ((np.asarray(obs, np.float32) - self.norm.mean) / self.norm.std).astype(np.float32)

    def _fill_offline(self, trajs: list[Trajectory]) -> None:
        cat, keep = np.concatenate, self._offline_slots
        self.buffer.extend({
            "observations": self._norm(cat([t.observations for t in trajs]))[keep],
            "next_observations": self._norm(cat([t.next_observations for t in trajs]))[keep],
            "actions": cat([t.actions for t in trajs])[keep],
            "rewards": (cat([t.rewards for t in trajs]) * self.reward_scale)[keep],
            "terminations": cat([t.terminations for t in trajs])[keep],
            "truncations": cat([t.truncations for t in trajs])[keep],
        })

    # ------------------------------------------------------------------ the Loop protocol
    def _chunk_path(self, k: int) -> Path:
        return self.core.checkpointer.path.parent / f"online_{k:05d}.npz"

    def checkpoint_extras(self) -> dict[str, Any]:
        """The online transitions since the last checkpoint, as a new buffer chunk on disk,
        and the exploration RNG."""
        st, b = self.state, self.buffer
        lo, hi = st.online_saved, st.online_transitions
        if hi > lo:  # the online transitions since the last checkpoint, as a new chunk
            if hi - lo > b.capacity:
                raise OdtbenchError(f"{hi - lo} online transitions since the last checkpoint "
                                    f"exceed the replay size {b.capacity}; lower "
                                    "mlp_checkpoint_every or raise mlp_replay_size")
            pos = b.positions_of_last(hi - lo)
            path = self._chunk_path(len(st.chunks))
            write_with(path, lambda fh: np.savez(fh, **{k: getattr(b, k)[pos]
                                                        for k in BUFFER_FIELDS}))
            st.chunks.append([lo, hi])
            st.online_saved = hi
        st.updates_at_checkpoint = st.updates
        return {"np_rng": self.np_rng.bit_generator.state}

    def restore_extras(self, payload: dict[str, Any]) -> None:
        self.np_rng.bit_generator.state = payload["np_rng"]
        # the buffer holds the offline transitions only (as __init__ left it): re-insert the
        # online ones in arrival order
        expected = 0
        for k, (lo, hi) in enumerate(self.state.chunks):
            if lo != expected:
                raise OdtbenchError(f"{self._chunk_path(k)}: buffer chunks are not contiguous; "
                                    "delete the run directory and re-run")
            try:
                with np.load(self._chunk_path(k)) as data:
                    self.buffer.extend({f: data[f] for f in BUFFER_FIELDS})
            except Exception as exc:  # missing, truncated or not an npz file
                raise corrupt_checkpoint_error(self._chunk_path(k), exc) from None
            expected = hi

    def diagnostics_extras(self) -> dict[str, Any]:
        return {}  # a transition buffer: no trajectory share; no DT gradient terms

    def finish(self) -> None:
        pass

    # progress (odtbench/runfiles/progress.py): pretraining counts updates, online transitions
    @property
    def units(self) -> MLPRun:
        return self  # the ProgressUnits below

    def pretrain_total(self) -> int:
        return self.n_pretrain

    def phase_done(self) -> int:
        st = self.state
        return st.updates if st.phase == "pretrain" else st.online_transitions

    def live_done(self) -> int | None:
        return self.phase_done()  # one update per step: every unit counts at once

    def evals_ahead(self, k: int) -> int:
        """Evaluations in the phase's last k units: every `every` units and at the end."""
        hp, st = self.hp, self.state
        if st.phase == "pretrain":
            total, every = self.n_pretrain, self.pretrain_every
        else:
            total, every = int(hp.online_budget), int(hp.mlp_eval_every)
        done = total - k
        return total // every - done // every + (total % every != 0) if k > 0 else 0

    # ------------------------------------------------------------------ training
    def _updates(self, n: int) -> dict[str, float]:
        B = int(self.hp.mlp_batch_size)
        m = self.core.updates(n, lambda: self.agent.update(self.buffer.sample(B, self.np_rng)),
                              counter="updates")
        self.state.gradient_steps = self.agent.actor_updates
        return m

    def pretrain(self) -> None:
        hp, st, core = self.hp, self.state, self.core
        total, every = self.n_pretrain, self.pretrain_every
        while st.phase == "pretrain":
            done = st.pretrain_steps
            n = min(total - done, int(hp.mlp_checkpoint_every), every - done % every)
            m = self._updates(n)
            st.pretrain_steps += n
            core.check(m, f"pretraining update {st.updates}")
            if st.pretrain_steps % every == 0 or st.pretrain_steps == total:
                core.evaluate("pretrain", st.pretrain_iter)
                st.pretrain_iter += 1
            if st.pretrain_steps == total:
                st.phase = "online"
            core.save_checkpoint()

    def _episode(self) -> dict[str, float]:
        """One online episode (cut at the budget): act, store, update, evaluate on schedule."""
        hp, st, env = self.hp, self.state, self.ctx.online_env
        budget, every = int(hp.online_budget), int(hp.mlp_eval_every)
        obs, _ = env.reset(seed=online_seeds(self.ctx.seed, st.episodes)[0])
        o = self._norm(obs)
        m: dict[str, float] = {}
        for t in range(int(hp.max_episode_len)):
            if st.online_transitions < self.start_steps:  # TD3's uniform random start
                a = self.np_rng.uniform(self.low, self.high).astype(np.float32)
            else:
                a = self.agent.explore(o, self.np_rng)
            nxt, r, term, trunc, _ = env.step(a)
            o2 = self._norm(nxt)
            trunc = bool(trunc) or t + 1 == int(hp.max_episode_len)
            self.buffer.add(o, a, float(r) * self.online_reward_scale, o2, bool(term), trunc)
            st.online_transitions += 1
            # one update per step once the policy acts (from the first step with offline data)
            m = self._updates(1) if st.online_transitions > self.start_steps else m
            n = st.online_transitions
            if n % every == 0 or n == budget:
                self.core.check(m, f"online transition {n}")
                self.core.evaluate("online", -(-n // every))
            if term or trunc or n >= budget:
                break
            o = o2
        st.episodes += 1
        return m

    def online(self) -> None:
        hp, st = self.hp, self.state
        while st.online_transitions < int(hp.online_budget):
            m = self._episode()
            self.core.check(m, f"online transition {st.online_transitions}")
            if st.updates - st.updates_at_checkpoint >= int(hp.mlp_checkpoint_every):
                self.core.save_checkpoint()
        st.phase = "done"
        self.core.save_checkpoint()

    def execute(self) -> dict[str, Any]:
        return self.core.execute(self)


def run_mlp(method: MLPMethod, cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> dict:
    """Run (or resume, or return the finished summary of) one MLP-baseline run.

    Small MLPs with one update per environment step are faster on the CPU than on a GPU, so
    `device` is accepted (the workflow passes one to every run) but the run stays on the CPU.
    """
    r = MLPRun(method, cfg, out_dir)
    if device != "cpu":
        r.ctx.log.info("device %s requested; %s runs on the CPU", device, method.name)
    return r.execute()
