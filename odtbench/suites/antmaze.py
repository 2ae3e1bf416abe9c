"""AntMaze suite: umaze, umaze-diverse, medium-play/diverse, large-play/diverse (paper Tab. 3).

Minari ids ``D4RL/antmaze/<name>-v1`` recover gymnasium-robotics ``AntMaze_*-v4`` (27-dim ant
state + achieved/desired goal; the registered -v5 adds contact forces, 105 dims, so it cannot
read these data). Domain rules (docs/suites.md, "Domain rules"; paper Tab. 9 notes):

- data come from the collection env (random/"play" goals, continuing task); online
  collection and evaluation use D4RL's evaluation map — fixed start cell and goal cell — and
  end the episode at the goal, as D4RL's eval envs do;
- every reward is shaped r - 1, in the data and in the env, for every method; scores use
  the original sparse reward through the env's ``success`` flag (success rate x 100);
- offline trajectories are split at goal-region steps and all but the first 9 one-step
  trajectories are dropped (the code keeps 9, the paper says 10: we follow the code).
"""

from __future__ import annotations

from odtbench.suites.common import (
    ENV_MODULE,
    NON_MUJOCO,
    EnvRecipe,
    SuiteTask,
    define_env,
    suite_reference,
    tab9,
)
from odtbench.suites.prep import OfflinePrep
from odtbench.tasks import register_task

SUITE = "antmaze"
# The maze layouts of D4RL / gymnasium-robotics (1 = wall); tests check them against
# gymnasium_robotics.envs.maze.maps.
U_MAZE = ((1, 1, 1, 1, 1), (1, 0, 0, 0, 1), (1, 1, 1, 0, 1), (1, 0, 0, 0, 1), (1, 1, 1, 1, 1))
MEDIUM_MAZE = ((1, 1, 1, 1, 1, 1, 1, 1), (1, 0, 0, 1, 1, 0, 0, 1), (1, 0, 0, 1, 0, 0, 0, 1),
               (1, 1, 0, 0, 0, 1, 1, 1), (1, 0, 0, 1, 0, 0, 0, 1), (1, 0, 1, 0, 0, 1, 0, 1),
               (1, 0, 0, 0, 1, 0, 0, 1), (1, 1, 1, 1, 1, 1, 1, 1))
LARGE_MAZE = ((1,) * 12, (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1), (1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1),
              (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1), (1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1),
              (1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1), (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1),
              (1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1), (1,) * 12)
# maze -> (layout, D4RL eval start cell, eval goal cell, episode length, gymnasium-robotics name).
# Cells are (row, col) of D4RL's U_MAZE_TEST / BIG_MAZE_TEST / HARDEST_MAZE_TEST maps.
MAZES = {
    "umaze": (U_MAZE, (1, 1), (3, 1), 700, "UMaze"),
    "medium": (MEDIUM_MAZE, (1, 1), (6, 6), 1000, "Medium"),
    "large": (LARGE_MAZE, (1, 1), (7, 9), 1000, "Large"),
}
# dataset -> (maze, gymnasium-robotics collection env Minari records for it, D4RL size Tab. 5)
DATASETS = {
    "umaze": ("umaze", "AntMaze_UMaze-v4", 998_573),
    "umaze-diverse": ("umaze", "AntMaze_UMaze-v4", 999_000),
    "medium-play": ("medium", "AntMaze_Medium-v4", 999_000),
    "medium-diverse": ("medium", "AntMaze_Medium_Diverse_GR-v4", 999_000),
    "large-play": ("large", "AntMaze_Large-v4", 999_000),
    "large-diverse": ("large", "AntMaze_Large_Diverse_GR-v4", 999_000),
}
SHAPING = -1.0  # r - 1 for every method (paper Tab. 9 notes; IQL/CQL convention)

# Paper Tab. 9 rows: gamma 0.998, RL term from the start of pretraining (pretrain alpha 0.1),
# 5000 updates x 40 pretraining iterations (an evaluation after each), 2000-trajectory buffer,
# RTGs in shaped (-1 per step) units at RTG scale 0.001.
# readme: umaze K = 1 and 5000 x 40 = 200K updates (paper Tab. 9: umaze T_train 5, 40K updates).
_ANTMAZE = {**NON_MUJOCO, "gamma": 0.998, "rl_from_start": True, "pretrain_updates": 5000,
            "pretrain_iters": 40, "replay_size": 2000, "eval_context_len": 1, "reward_scale": 0.001}
ROWS = {
    "umaze": {**_ANTMAZE, "context_len": 1, "eval_rtg": -100.0, "online_rtg": -100.0},
    "medium": {**_ANTMAZE, "context_len": 1, "eval_rtg": -200.0, "online_rtg": -200.0},
    "large": {**_ANTMAZE, "context_len": 5, "eval_rtg": -500.0, "online_rtg": -500.0},
}


def eval_map(layout: tuple, start: tuple[int, int], goal: tuple[int, int]) -> list[list]:
    """`layout` with the reset cell marked "r" and the goal cell "g" (gymnasium-robotics)."""
    m = [list(row) for row in layout]
    for (i, j), mark in ((start, "r"), (goal, "g")):
        if m[i][j] == 1:
            raise ValueError(f"cell {(i, j)} of the maze is a wall")
        m[i][j] = mark
    return m


def register() -> None:
    evals = {}
    for maze, (layout, start, goal, steps, gr_name) in MAZES.items():
        # D4RL's eval envs end the episode at the goal (the study scores success x 100)
        evals[maze] = define_env(EnvRecipe.create(
            f"odtbench/AntMaze_{gr_name}_Eval-v4", f"AntMaze_{gr_name}-v4", steps,
            {"maze_map": eval_map(layout, start, goal), "continuing_task": False,
             "reset_target": False}, reward_shift=SHAPING))
    for name, (maze, collect_id, size) in DATASETS.items():
        steps = MAZES[maze][3]
        data = define_env(EnvRecipe.create(
            f"odtbench/{collect_id.removesuffix('-v4')}_Collect-v4", collect_id, steps,
            {"continuing_task": True, "reset_target": False}))
        online = evals[maze]  # the authors collect online in the evaluation env
        register_task(SuiteTask(
            suite=SUITE, dataset=f"antmaze-{name}", domain=f"antmaze-{maze}", env_id=online.name,
            source=f"generated:standin/{SUITE}/antmaze-{name}", quality=name,
            score_kind="success_rate", max_episode_steps=steps,
            paper_dataset=f"antmaze-{name}-v2", env_module=ENV_MODULE,
            published_source=f"generated:d4rl-minari/D4RL/antmaze/{name}-v1",
            online_env=online, eval_env=online, data_env=data,
            prep=OfflinePrep(reward_shift=SHAPING, antmaze=True, keep_one_step=9),
            standin_size=size, hp=tab9(ROWS[maze]),
            notes="stand-in data by default; shaped reward r-1, scored by success",
            **suite_reference(f"antmaze-{maze}"),
        ))
