"""Offline data of the extra suites: stand-ins, published Minari data, delayed MuJoCo data.

Three recipes, plugged into `odtbench.data.build` by source prefix (`register_sources`):

- ``generated:standin/<suite>/<dataset>`` — a STAND-IN for a D4RL dataset that cannot be
  downloaded here: real rollouts in the real gymnasium-robotics env the data come from
  (`SuiteTask.make_data_env`), by a uniform random policy (Adroit; AntMaze, half of whose
  episodes start in the goal cell so goal-region steps occur) or a waypoint PD controller
  (PointMaze, D4RL's maze2d recipe). Same structure as the published data, not its quality:
  the description, the recipe info and the source name say so, and reports show the source.
- ``generated:d4rl-minari/<minari id>`` — the published Minari dataset (downloaded, or found
  under the datasets root), with the authors' preprocessing applied.
- ``generated:delayed-<M>/<mujoco task>`` — the MuJoCo suite's dataset of the same scale,
  rewards delayed by M.

Raw trajectories of every recipe go through `odtbench.suites.wrappers.preprocess` with the
task's `OfflinePrep`, the offline twin of the env wrappers, so data and env agree.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from odtbench.data.build import build_dataset, load_task_dataset, register_source
from odtbench.data.trajectories import Trajectory
from odtbench.errors import DatasetError, UnknownChoiceError
from odtbench.suites.common import SuiteTask
from odtbench.suites.delayed import DELAY
from odtbench.suites.wrappers import preprocess

RECIPE_PREFIXES = ("standin", "d4rl-minari", f"delayed-{DELAY}")
SEED = 0
# scale -> (transitions, longest episode) of a stand-in; None = the task's D4RL size / the
# env's own episode length. Smoke episodes are cut short so a few hundred steps hold several.
STANDIN_SCALES: dict[str, tuple[int | None, int | None]] = {
    "smoke": (300, 100),
    "quick": (20_000, None),
    "paper": (None, None),
}
STANDIN_NOTE = ("STAND-IN, not the study's data: the D4RL/Minari dataset cannot be downloaded "
                "here, so this is a dataset of the same structure from real rollouts of a "
                "{policy} in {env}")

Policy = Callable[[np.ndarray], np.ndarray]


def register_sources() -> None:
    """Make `odtbench.data.build` build this module's sources."""
    for prefix in RECIPE_PREFIXES:
        register_source(prefix, generate)


def generate(task: Any, scale: str, root: Path, progress: bool = False
             ) -> tuple[list[Trajectory], dict[str, Any], str, str]:
    """(trajectories, recipe info, description, algorithm name) of a suite task's source."""
    if not isinstance(task, SuiteTask):
        raise DatasetError(f"task {task.key}: source {task.source} is a suite recipe, but the "
                           "task is no suite task; register it as a SuiteTask")
    kind, _, rest = task.source_name.partition("/")
    if kind == "standin":
        return _standin(task, scale)
    if kind == "d4rl-minari":
        return _published(task, rest, root)
    if kind == f"delayed-{DELAY}":
        return _delayed(task, rest, scale, root, progress)
    raise UnknownChoiceError("suite dataset source", task.source,
                             [f"generated:{p}/..." for p in RECIPE_PREFIXES])


# ---- stand-ins ----------------------------------------------------------------------------

def standin_size(task: SuiteTask, scale: str) -> tuple[int, int | None]:
    if scale not in STANDIN_SCALES:
        raise UnknownChoiceError("scale", scale, STANDIN_SCALES)
    n, cap = STANDIN_SCALES[scale]
    return (n if n is not None else task.standin_size), cap


def _standin(task: SuiteTask, scale: str) -> tuple[list[Trajectory], dict, str, str]:
    import torch

    torch.set_num_threads(1)
    n, cap = standin_size(task, scale)
    env = task.make_data_env()
    seed = int(np.random.SeedSequence([SEED, *map(ord, task.key)]).generate_state(1)[0])
    rng = np.random.default_rng(seed)
    if task.suite == "maze2d":
        policy: Policy = WaypointController(env, rng)
        name, reset_options = "waypoint PD controller with N(0, 0.1^2) action noise", None
    elif task.suite == "antmaze":
        policy = uniform_policy(env, rng)
        name = "uniform random policy (every other episode starts in the goal cell)"
        reset_options = goal_cell_starts(env, rng)
    else:
        policy, name, reset_options = uniform_policy(env, rng), "uniform random policy", None
    t0 = time.perf_counter()
    raw = collect(env, policy, n, seed, cap, reset_options)
    env.close()
    trajs = preprocess(raw, task.prep)
    data_env = task.data_recipe
    info = {"recipe": task.source_name, "standin": True, "scale": scale, "seed": seed,
            "policy": name, "transitions": n, "episode_cap": cap,
            "data_env": {"id": data_env.name, **data_env.spec_kwargs()},
            "raw_episodes": len(raw), "preprocessing": task.prep.as_dict(),
            "generate_seconds": round(time.perf_counter() - t0, 2)}
    desc = STANDIN_NOTE.format(policy=name, env=data_env.base_id) + (
        f" ({n} transitions at scale {scale}, seed {seed}), preprocessed as the authors' loader "
        f"does ({task.prep.as_dict()}).")
    return trajs, info, desc, f"odtbench stand-in ({name})"


def uniform_policy(env, rng: np.random.Generator) -> Policy:
    low, high = env.action_space.low, env.action_space.high
    return lambda obs: rng.uniform(low, high).astype(np.float32)


def goal_cell_starts(env, rng: np.random.Generator) -> Callable[[int], dict | None]:
    """Reset options putting the ant and the goal in one random free cell, every other episode.

    A random ant rarely leaves its start cell, so this is how goal-region steps (and the
    one-step trajectories the AntMaze filter removes) occur in a random-policy stand-in.
    """
    maze = env.unwrapped.maze
    free = [(i, j) for i, row in enumerate(maze.maze_map) for j, c in enumerate(row) if c != 1]

    def options(episode: int) -> dict | None:
        if episode % 2 == 0:
            return None
        cell = free[int(rng.integers(len(free)))]
        return {"goal_cell": np.array(cell), "reset_cell": np.array(cell)}

    return options


def _obs_slices(space) -> dict[str, slice]:
    """Where each key of a Dict observation space lands in the flattened vector."""
    out, lo = {}, 0
    for key, sub in space.spaces.items():
        size = int(np.prod(sub.shape))
        out[key] = slice(lo, lo + size)
        lo += size
    return out


class WaypointController:
    """D4RL's maze2d data policy: follow the shortest cell path to the goal with a PD law.

    The next waypoint is the centre of the next cell on a breadth-first shortest path (the
    goal itself once in its cell); action = clip(kp (waypoint - pos) - kd vel + noise).
    """

    def __init__(self, env, rng: np.random.Generator, kp: float = 10.0, kd: float = 1.0,
                 noise: float = 0.1):
        self.maze = env.unwrapped.maze
        self.rng, self.kp, self.kd, self.noise = rng, kp, kd, noise
        self.low, self.high = env.action_space.low, env.action_space.high
        self.sl = _obs_slices(env.unwrapped.observation_space)
        self._paths: dict[tuple, tuple] = {}

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        i, j = self.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
        return int(i), int(j)

    def _next_cell(self, start: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        key = (start, goal)
        if key not in self._paths:
            grid = self.maze.maze_map
            prev: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
            queue = deque([start])
            while queue:
                c = queue.popleft()
                if c == goal:
                    break
                for d in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                    n = (c[0] + d[0], c[1] + d[1])
                    if (0 <= n[0] < len(grid) and 0 <= n[1] < len(grid[0]) and grid[n[0]][n[1]] != 1
                            and n not in prev):
                        prev[n] = c
                        queue.append(n)
            c = goal
            while c in prev:
                back = prev[c]
                if back is None or back == start:
                    break
                c = back
            self._paths[key] = c if c in prev else start
        return self._paths[key]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        state = obs[self.sl["observation"]]
        pos, vel = state[:2], state[2:4]
        goal = obs[self.sl["desired_goal"]]
        here, there = self._cell(pos), self._cell(goal)
        target = goal if here == there else self.maze.cell_rowcol_to_xy(
            np.array(self._next_cell(here, there)))
        a = self.kp * (np.asarray(target) - pos) - self.kd * vel
        a = a + self.noise * self.rng.standard_normal(a.shape)
        return np.clip(a, self.low, self.high).astype(np.float32)


def collect(env, policy: Policy, n: int, seed: int, episode_cap: int | None = None,
            reset_options: Callable[[int], dict | None] | None = None) -> list[Trajectory]:
    """Exactly `n` steps of `policy` as episodes; time-limit, cap and final cut are truncations."""
    out: list[Trajectory] = []
    episode = 0
    opts = reset_options(episode) if reset_options else None
    obs, _ = env.reset(seed=seed, options=opts)
    buf: dict[str, list] = {k: [] for k in ("o", "a", "r", "n")}
    for step in range(n):
        a = policy(obs)
        nobs, r, term, trunc, _ = env.step(a)
        for k, v in zip("oarn", (obs, a, r, nobs), strict=True):
            buf[k].append(v)
        obs = nobs
        cut = episode_cap is not None and len(buf["r"]) >= episode_cap
        if term or trunc or cut or step == n - 1:
            length = len(buf["r"])
            terms = np.zeros(length, dtype=bool)
            truncs = np.zeros(length, dtype=bool)
            terms[-1], truncs[-1] = bool(term), not term
            out.append(Trajectory(np.asarray(buf["o"], np.float32), np.asarray(buf["a"], np.float32),
                                  np.asarray(buf["r"], np.float32), np.asarray(buf["n"], np.float32),
                                  terms, truncs))
            buf = {k: [] for k in buf}
            episode += 1
            opts = reset_options(episode) if reset_options else None
            obs, _ = env.reset(options=opts)
    return out


# ---- published Minari data ----------------------------------------------------------------

def _published(task: SuiteTask, minari_id: str, root: Path) -> tuple[list[Trajectory], dict, str, str]:
    from odtbench.data import minari_io

    if not minari_io.dataset_exists(minari_id, root):
        import minari

        try:
            with minari_io._minari_root(root):
                minari.download_dataset(minari_id)
        except Exception as exc:  # no network, unknown id, server error: all "not obtainable"
            raise DatasetError(
                f"dataset {minari_id} not found under {root} and it could not be downloaded; run "
                f"`minari download {minari_id}` where there is network and copy it into "
                f"$MINARI_DATASETS_PATH, or use the task's stand-in source {task.source}") from exc
    raw = minari_io.load_trajectories(minari_id, root)
    trajs = preprocess(raw, task.prep)
    info = {"recipe": task.source_name, "standin": False, "minari_id": minari_id,
            "raw_checksum": minari_io.trajectories_checksum(raw), "raw_episodes": len(raw),
            "preprocessing": task.prep.as_dict()}
    desc = (f"{minari_id} (Minari's D4RL dataset), preprocessed as the authors' loader does "
            f"({task.prep.as_dict()}); observations flattened in Dict key order.")
    return trajs, info, desc, f"{minari_id} + odtbench preprocessing"


# ---- delayed reward -----------------------------------------------------------------------

def _delayed(task: SuiteTask, mujoco_key: str, scale: str, root: Path, progress: bool
             ) -> tuple[list[Trajectory], dict, str, str]:
    base = build_dataset(mujoco_key, scale, root, progress=progress)
    raw, _ = load_task_dataset(mujoco_key, scale, root)
    trajs = preprocess(raw, task.prep)
    info = {"recipe": task.source_name, "standin": False, "delay": task.prep.delay,
            "base_dataset": {k: base.get(k) for k in ("id", "source", "checksum")},
            "preprocessing": task.prep.as_dict()}
    desc = (f"{base['id']} ({base['source']}) with rewards delayed by M={task.prep.delay}: "
            "each period's rewards are paid at its last step and at the episode end.")
    return trajs, info, desc, f"odtbench delayed reward M={task.prep.delay} of {base['id']}"
