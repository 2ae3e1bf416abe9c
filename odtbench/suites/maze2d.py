"""Maze2D suite on its Minari analogue, PointMaze: open, umaze, medium, large (paper Tab. 11).

The study used D4RL's maze2d-{open-v0, umaze-v1, medium-v1, large-v1} (mujoco-py point
mass). Minari republishes them as ``D4RL/pointmaze/<maze>-v2``, regenerated in
gymnasium-robotics ``PointMaze_*-v3``: same layouts and goal cells, but goal-conditioned dict
observations (flattened here to 8 dims: achieved goal, desired goal, x/y/vx/vy), a goal
radius of 0.45 instead of 0.5, re-centred coordinates and new data (docs/suites.md).

Online collection and evaluation use D4RL's fixed goal cell with random starts and D4RL's
episode lengths; the reward is the sparse in-goal indicator, untransformed — except that the
authors' code divides online/eval rewards of maze2d-open by 100 ("pen-" matches
"maze2d-open-v0", docs/suites.md, "Domain rules") while its offline data stay unscaled. We follow
the code; scores multiply the returns back.
"""

from __future__ import annotations

from odtbench.suites.antmaze import LARGE_MAZE, MEDIUM_MAZE, U_MAZE
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

SUITE = "maze2d"
OPEN_MAZE = ((1,) * 7, (1, 0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, 0, 1), (1,) * 7)
# The authors' online/eval reward scale for maze2d-open (substring bug); 1.0 would fix it.
OPEN_ONLINE_REWARD_SCALE = 1 / 100
# maze -> (layout, D4RL goal cell "G", D4RL episode length, gymnasium-robotics name,
#          study's dataset name, D4RL size Tab. 7)
MAZES = {
    "open": (OPEN_MAZE, (2, 3), 150, "Open", "maze2d-open-v0", 999_999),
    "umaze": (U_MAZE, (1, 1), 300, "UMaze", "maze2d-umaze-v1", 999_869),
    "medium": (MEDIUM_MAZE, (6, 6), 600, "Medium", "maze2d-medium-v1", 1_999_733),
    "large": (LARGE_MAZE, (7, 9), 800, "Large", "maze2d-large-v1", 3_999_692),
}

# Paper Tab. 9 rows: T_eval 1, RTG scale 1.0, 40K pretraining updates.
_MAZE2D = {**NON_MUJOCO, "eval_context_len": 1, "pretrain_updates": 40_000, "reward_scale": 1.0}
ROWS = {
    # readme: 10K updates and a 10000-trajectory buffer (paper Tab. 9: 40K and 5K)
    "open": {**_MAZE2D, "context_len": 1, "pretrain_updates": 10_000, "replay_size": 10_000,
             "eval_rtg": 120.0, "online_rtg": 120.0},
    "umaze": {**_MAZE2D, "context_len": 1, "replay_size": 2500, "eval_rtg": 60.0, "online_rtg": 60.0},
    "medium": {**_MAZE2D, "context_len": 1, "replay_size": 5000, "eval_rtg": 60.0, "online_rtg": 60.0},
    "large": {**_MAZE2D, "context_len": 5, "replay_size": 5000, "eval_rtg": 60.0, "online_rtg": 60.0},
}


def goal_map(layout: tuple, goal: tuple[int, int]) -> list[list]:
    """`layout` with the goal cell marked "g"; every other free cell is a possible start."""
    m = [list(row) for row in layout]
    if m[goal[0]][goal[1]] == 1:
        raise ValueError(f"goal cell {goal} is a wall")
    m[goal[0]][goal[1]] = "g"
    return m


def register() -> None:
    for maze, (layout, goal, steps, gr_name, paper, size) in MAZES.items():
        base = f"PointMaze_{gr_name}-v3"
        kw = {"maze_map": goal_map(layout, goal), "continuing_task": True, "reset_target": False}
        scale = OPEN_ONLINE_REWARD_SCALE if maze == "open" else 1.0
        suffix = "Eval" if scale == 1.0 else "EvalDiv100"
        online = define_env(EnvRecipe.create(f"odtbench/PointMaze_{gr_name}_{suffix}-v3", base, steps,
                                             kw, reward_scale=scale))
        # Minari's data: a continuing task whose goal jumps to a new random cell when reached
        data = define_env(EnvRecipe.create(f"odtbench/PointMaze_{gr_name}_Collect-v3", base, steps,
                                           {"continuing_task": True, "reset_target": True}))
        register_task(SuiteTask(
            suite=SUITE, dataset=f"maze2d-{maze}", domain=f"maze2d-{maze}", env_id=online.name,
            source=f"generated:standin/{SUITE}/maze2d-{maze}", quality=maze,
            score_kind="normalized", max_episode_steps=steps, paper_dataset=paper,
            env_module=ENV_MODULE, published_source=f"generated:d4rl-minari/D4RL/pointmaze/{maze}-v2",
            online_env=online, eval_env=online, data_env=data, prep=OfflinePrep(),
            score_scale=1 / scale, standin_size=size, hp=tab9(ROWS[maze]),
            notes="stand-in data by default; PointMaze (gymnasium-robotics) stands for D4RL maze2d",
            **suite_reference(f"maze2d-{maze}"),
        ))
