"""D4RL dataset recipes for any gymnasium continuous-control task (Fu et al. 2020, Sec. 5).

- ``random``: a uniform random policy.
- ``medium``: a behaviour agent (the suite's MLP TD3, D4RL used SAC) trained until its
  evaluation score reaches ~1/3 of the expert reference, then rolled out.
- ``medium-replay``: that agent's replay buffer up to the medium point (random warm-up
  included), cut back into episodes.
- ``expert``: the same agent trained further, then rolled out.

One behaviour training serves medium, medium-replay and expert: it is checkpointed at the
medium point (and after the expert phase) under `workdir`, keyed by env, scale settings and
seed, so the three datasets come from the same agent whichever is built first.

Every dataset is deterministic for a seed on a given machine (single-threaded torch, numpy
generators and env seeds derived from `RecipeScale.seed`). A dataset of N transitions is cut
at exactly N: the last, incomplete episode ends in a truncation (a split end, bootstrapped),
never a termination; time-limit ends are truncations too.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odtbench.agents.td3 import TD3, ReplayBuffer, TD3Config
from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError, UnknownChoiceError

QUALITIES = ("random", "medium", "medium-replay", "expert")
EnvFactory = Callable[[], Any]
ScoreFn = Callable[[float], "np.ndarray | float"]  # return -> normalised score (Task.normalize)
Policy = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RecipeScale:
    """Sizes, budgets and seed of one scale (the recipe itself never changes)."""

    name: str
    random_transitions: int
    medium_transitions: int
    expert_transitions: int
    train_max_steps: int  # env steps allowed to reach the medium score
    expert_extra_steps: int  # further env steps for the expert agent
    start_steps: int  # uniform-random warm-up actions before TD3 updates start
    eval_every: int
    eval_episodes: int
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    lr: float = 3e-4  # actor and critic Adam learning rate
    seed: int = 0
    medium_score: float = 100.0 / 3.0  # D4RL: "about 1/3 of the expert"
    # TD3's Gaussian exploration noise on data rollouts stands in for sampling D4RL's
    # stochastic SAC policy (so medium/expert data are not a single deterministic path).
    rollout_noise: float = 0.1

    def fingerprint(self) -> str:
        """Hash of everything that determines the behaviour training."""
        keys = ("train_max_steps", "start_steps", "eval_every", "eval_episodes", "hidden",
                "batch_size", "lr", "seed", "medium_score")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


SCALES: dict[str, RecipeScale] = {
    # seconds: proves the wiring; the agent will not reach the medium score
    "smoke": RecipeScale("smoke", random_transitions=2_000, medium_transitions=2_000,
                         expert_transitions=2_000, train_max_steps=3_000,
                         expert_extra_steps=1_000, start_steps=1_000, eval_every=1_000,
                         eval_episodes=2, hidden=(32, 32), batch_size=64),
    # one CPU: hopper random + medium + medium-replay within 45 minutes on 2 cores. TD3
    # updates dominate the time, so quick uses 128-wide nets and the TD3 paper's original
    # batch 100 / lr 1e-3 (Fujimoto et al. 2018), about half the per-update cost of
    # 256-wide / batch 256. Measured (seed 0, Hopper-v5): medium score reached at 275k env
    # steps, 24 min 50 s wall for all three datasets from nothing (docs/datasets.md); a
    # 128-wide lr-3e-4 agent was still at score ~10 after 125k steps, so the budget is 300k.
    "quick": RecipeScale("quick", random_transitions=100_000, medium_transitions=100_000,
                         expert_transitions=100_000, train_max_steps=300_000,
                         expert_extra_steps=200_000, start_steps=10_000, eval_every=5_000,
                         eval_episodes=5, hidden=(128, 128), batch_size=100, lr=1e-3),
    # D4RL sizes: 1M transitions per random/medium/expert dataset
    "paper": RecipeScale("paper", random_transitions=1_000_000, medium_transitions=1_000_000,
                         expert_transitions=1_000_000, train_max_steps=1_000_000,
                         expert_extra_steps=1_000_000, start_steps=25_000, eval_every=10_000,
                         eval_episodes=10),
}


def get_scale(scale: str | RecipeScale) -> RecipeScale:
    if isinstance(scale, RecipeScale):
        return scale
    if scale not in SCALES:
        raise UnknownChoiceError("scale", scale, SCALES)
    return SCALES[scale]


def _seed(base: int, *stream: int) -> int:
    """An independent 32-bit seed per (base, stream) pair."""
    return int(np.random.SeedSequence([base, *stream]).generate_state(1)[0])


# ---- rollouts -----------------------------------------------------------------------------

def _box(env) -> tuple[np.ndarray, np.ndarray]:
    space = env.action_space
    if not hasattr(space, "low") or not np.all(np.isfinite(space.low)):
        raise OdtbenchError(f"env {env.spec.id if env.spec else env}: D4RL recipes need a bounded Box action space")
    return space.low.astype(np.float32), space.high.astype(np.float32)


def split_episodes(obs: np.ndarray, act: np.ndarray, rew: np.ndarray, next_obs: np.ndarray,
                   term: np.ndarray, trunc: np.ndarray) -> list[Trajectory]:
    """Cut a flat, in-order transition stream into episodes at termination/truncation.

    A trailing incomplete episode is kept and marked truncated (the stream was cut there).
    """
    trunc = trunc.copy()
    if len(trunc) and not (term[-1] or trunc[-1]):
        trunc[-1] = True
    ends = np.flatnonzero(term | trunc) + 1
    out: list[Trajectory] = []
    start = 0
    for end in ends.tolist():
        out.append(Trajectory(obs[start:end].copy(), act[start:end].copy(), rew[start:end].copy(),
                              next_obs[start:end].copy(), term[start:end].copy(), trunc[start:end].copy()))
        start = end
    return out


def rollout(make_env: EnvFactory, policy: Policy, n_transitions: int, seed: int,
            desc: str = "rollout", progress: bool = False) -> list[Trajectory]:
    """Exactly `n_transitions` steps of `policy`, as episodes (see `split_episodes`)."""
    from tqdm import tqdm

    env = make_env()
    obs, _ = env.reset(seed=seed)
    buf = ReplayBuffer(int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)), n_transitions)
    ret, returns = 0.0, []
    with tqdm(total=n_transitions, desc=desc, unit="step", disable=not progress, mininterval=5) as bar:
        for i in range(n_transitions):
            a = policy(obs)
            nobs, r, term, trunc, _ = env.step(a)
            buf.add(obs, a, r, nobs, term, trunc)
            ret += float(r)
            obs = nobs
            if term or trunc:
                returns.append(ret)
                ret = 0.0
                obs, _ = env.reset()
                bar.set_postfix(ret=f"{returns[-1]:.1f}", refresh=False)
            if i % 1000 == 999:
                bar.update(1000)
        bar.update(n_transitions - bar.n)
    env.close()
    s = buf.state_dict()
    return split_episodes(s["observations"], s["actions"], s["rewards"], s["next_observations"],
                          s["terminations"], s["truncations"])


def uniform_policy(make_env: EnvFactory, seed: int) -> Policy:
    env = make_env()
    low, high = _box(env)
    env.close()
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(low, high).astype(np.float32)


def random_policy_return(make_env: EnvFactory, episodes: int = 100, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the uniform random policy's return over `episodes` full episodes."""
    env = make_env()
    policy = uniform_policy(make_env, _seed(seed, 1))
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=_seed(seed, 2, k))
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def evaluate(agent: TD3, env, episodes: int, seed: int) -> float:
    """Mean return of the deterministic policy over `episodes` seeded episodes."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=_seed(seed, k))
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(agent.act(obs))
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    return float(np.mean(returns))


# ---- behaviour agent ----------------------------------------------------------------------

@dataclass
class Behaviour:
    """A trained behaviour agent at one phase, with its training record."""

    agent: TD3
    buffer: ReplayBuffer
    env_steps: int
    eval_history: list[tuple[int, float, float]]  # (env steps, return, score)
    reached: bool  # the phase's target score was reached within the budget
    train_seconds: float

    @property
    def last_eval(self) -> tuple[int, float, float]:
        return self.eval_history[-1] if self.eval_history else (self.env_steps, float("nan"), float("nan"))


def _train(agent: TD3, buffer: ReplayBuffer, make_env: EnvFactory, score_fn: ScoreFn,
           scale: RecipeScale, steps: int, start_steps: int, stop_score: float | None,
           seed: int, desc: str, progress: bool, history: list) -> tuple[int, bool]:
    """Run `steps` TD3 env steps (stopping early at `stop_score`); returns (steps done, reached)."""
    from tqdm import tqdm

    torch.manual_seed(_seed(seed, 0))
    rng = np.random.default_rng(_seed(seed, 1))
    env, eval_env = make_env(), make_env()
    low, high = _box(env)
    obs, _ = env.reset(seed=_seed(seed, 2))
    ret, last_ret, reached, done_steps = 0.0, float("nan"), False, 0
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress, mininterval=5) as bar:
        for t in range(steps):
            if t < start_steps:
                a = rng.uniform(low, high).astype(np.float32)
            else:
                a = agent.act(obs, agent.cfg.expl_noise, rng)
            nobs, r, term, trunc, _ = env.step(a)
            buffer.add(obs, a, r, nobs, term, trunc)
            ret += float(r)
            obs = nobs
            if term or trunc:
                last_ret, ret = ret, 0.0
                obs, _ = env.reset()
            if t >= start_steps:
                agent.update(buffer.sample(scale.batch_size, rng))
            done_steps = t + 1
            if done_steps % scale.eval_every == 0 and t >= start_steps:
                ev = evaluate(agent, eval_env, scale.eval_episodes, _seed(seed, 3, done_steps))
                history.append((done_steps, ev, float(score_fn(ev))))
                bar.set_postfix(ret=f"{last_ret:.0f}", eval=f"{ev:.0f}", score=f"{history[-1][2]:.1f}",
                                refresh=False)
                if stop_score is not None and history[-1][2] >= stop_score:
                    reached = True
            if done_steps % 100 == 0 or reached:
                bar.update(done_steps - bar.n)
            if reached:
                break
    env.close()
    eval_env.close()
    return done_steps, reached


def _td3_config(scale: RecipeScale) -> TD3Config:
    return TD3Config(hidden=scale.hidden, batch_size=scale.batch_size, actor_lr=scale.lr,
                     critic_lr=scale.lr)


def _ckpt_dir(workdir: Path, env_id: str, scale: RecipeScale) -> Path:
    slug = env_id.replace("/", "_")
    return Path(workdir) / f"{slug}-{scale.name}-seed{scale.seed}-{scale.fingerprint()}"


def _save(path: Path, b: Behaviour, extra: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"agent": b.agent.state_dict(), "buffer": b.buffer.state_dict(),
                "env_steps": b.env_steps, "eval_history": b.eval_history, "reached": b.reached,
                "train_seconds": b.train_seconds, **extra}, tmp)
    os.replace(tmp, path)


def _load(path: Path, obs_dim: int, act_dim: int, low, high, scale: RecipeScale, capacity: int) -> Behaviour:
    state = torch.load(path, weights_only=False)
    agent = TD3(obs_dim, act_dim, low, high, _td3_config(scale))
    agent.load_state_dict(state["agent"])
    buf = ReplayBuffer(obs_dim, act_dim, max(capacity, int(state["buffer"]["size"])))
    buf.load_state_dict(state["buffer"])
    return Behaviour(agent, buf, int(state["env_steps"]), [tuple(e) for e in state["eval_history"]],
                     bool(state["reached"]), float(state["train_seconds"]))


def train_behaviour(make_env: EnvFactory, env_id: str, score_fn: ScoreFn,
                    scale: RecipeScale, workdir: Path, phase: str = "medium",
                    progress: bool = False) -> Behaviour:
    """The behaviour agent at `phase` ("medium" or "expert"), trained or loaded from its checkpoint."""
    if phase not in ("medium", "expert"):
        raise UnknownChoiceError("behaviour phase", phase, ("medium", "expert"))
    torch.set_num_threads(1)  # determinism, and the suite shares small machines
    ckpt = _ckpt_dir(workdir, env_id, scale)
    env = make_env()
    obs_dim, act_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    low, high = _box(env)
    env.close()
    path = ckpt / f"{phase}.pt"
    capacity = scale.train_max_steps + (scale.expert_extra_steps if phase == "expert" else 0)
    if path.is_file():
        return _load(path, obs_dim, act_dim, low, high, scale, capacity)
    ckpt.mkdir(parents=True, exist_ok=True)
    # Parallel builds of medium and medium-replay (e.g. two Snakemake jobs) must share one
    # training: the second waits on the lock, then loads the checkpoint.
    with open(ckpt / f"{phase}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return _load(path, obs_dim, act_dim, low, high, scale, capacity)
        return _train_phase(make_env, env_id, score_fn, scale, workdir, phase, progress,
                            obs_dim, act_dim, low, high, capacity, path)


def _train_phase(make_env: EnvFactory, env_id: str, score_fn: ScoreFn,
                 scale: RecipeScale, workdir: Path, phase: str, progress: bool, obs_dim: int,
                 act_dim: int, low: np.ndarray, high: np.ndarray, capacity: int, path: Path) -> Behaviour:
    if phase == "medium":
        torch.manual_seed(_seed(scale.seed, 9))  # network init must not depend on earlier draws
        agent = TD3(obs_dim, act_dim, low, high, _td3_config(scale))
        buf = ReplayBuffer(obs_dim, act_dim, capacity)
        history: list = []
        t0 = time.perf_counter()
        steps, reached = _train(agent, buf, make_env, score_fn, scale, scale.train_max_steps,
                                scale.start_steps, scale.medium_score, _seed(scale.seed, 10),
                                f"{env_id} behaviour->medium", progress, history)
        b = Behaviour(agent, buf, steps, history, reached, time.perf_counter() - t0)
    else:
        b = train_behaviour(make_env, env_id, score_fn, scale, workdir, "medium", progress)
        big = ReplayBuffer(obs_dim, act_dim, capacity)
        big.load_state_dict(b.buffer.state_dict())
        t0 = time.perf_counter()
        # The training env restarts from a fresh seeded reset: an env's mid-episode physics
        # state is not part of the checkpoint.
        steps, _ = _train(b.agent, big, make_env, score_fn, scale, scale.expert_extra_steps, 0,
                          None, _seed(scale.seed, 11), f"{env_id} behaviour->expert", progress,
                          b.eval_history)
        b = Behaviour(b.agent, big, b.env_steps + steps, b.eval_history, True,
                      b.train_seconds + time.perf_counter() - t0)
    _save(path, b, {"scale": dataclasses.asdict(scale), "env_id": env_id})
    return b


# ---- recipes ------------------------------------------------------------------------------

def generate(quality: str, make_env: EnvFactory, env_id: str, score_fn: ScoreFn,
             scale: str | RecipeScale, workdir: Path, progress: bool = False) -> tuple[list[Trajectory], dict]:
    """Trajectories of one D4RL recipe and a record of how they were made."""
    sc = get_scale(scale)
    if quality not in QUALITIES:
        raise UnknownChoiceError("dataset recipe", f"d4rl/{quality}", [f"d4rl/{q}" for q in QUALITIES])
    torch.set_num_threads(1)
    info: dict[str, Any] = {"recipe": f"d4rl/{quality}", "scale": sc.name, "seed": sc.seed,
                            "scale_settings": dataclasses.asdict(sc)}
    t0 = time.perf_counter()
    if quality == "random":
        trajs = rollout(make_env, uniform_policy(make_env, _seed(sc.seed, 20)), sc.random_transitions,
                        _seed(sc.seed, 21), f"{env_id} random", progress)
        info["policy"] = "uniform random actions"
    elif quality == "medium-replay":
        b = train_behaviour(make_env, env_id, score_fn, sc, workdir, "medium", progress)
        s = b.buffer.state_dict()
        trajs = split_episodes(s["observations"], s["actions"], s["rewards"], s["next_observations"],
                               s["terminations"], s["truncations"])
        info.update(_behaviour_info(b), policy="TD3 replay buffer up to the medium point")
    else:
        b = train_behaviour(make_env, env_id, score_fn, sc, workdir, quality, progress)
        n = sc.medium_transitions if quality == "medium" else sc.expert_transitions
        rng = np.random.default_rng(_seed(sc.seed, 30 if quality == "medium" else 31))
        trajs = rollout(make_env, lambda o: b.agent.act(o, sc.rollout_noise, rng), n,
                        _seed(sc.seed, 32 if quality == "medium" else 33), f"{env_id} {quality}", progress)
        info.update(_behaviour_info(b), policy=f"TD3 {quality} policy + N(0, {sc.rollout_noise}^2) noise")
    info["generate_seconds"] = round(time.perf_counter() - t0, 2)
    return trajs, info


def _behaviour_info(b: Behaviour) -> dict:
    steps, ret, score = b.last_eval
    return {"behaviour": {"agent": "TD3 (odtbench.agents.td3)", "env_steps": b.env_steps,
                          "target_reached": b.reached, "last_eval_return": ret,
                          "last_eval_score": score, "train_seconds": round(b.train_seconds, 2),
                          "eval_history": [list(e) for e in b.eval_history]}}
