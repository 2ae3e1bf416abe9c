"""The study's other suites: Adroit, AntMaze, Maze2D (PointMaze) and delayed-reward MuJoCo.

`register` (this package's "odtbench.suites" entry point, pyproject.toml) registers their
tasks (``adroit/pen-human``, ``antmaze/antmaze-umaze``, ``maze2d/maze2d-open``,
``mujoco-delayed/hopper-medium``, ...) and their dataset sources. It imports no gymnasium:
envs are built on demand (`odtbench.suites.common.EnvRecipe`). docs/suites.md describes
the domain rules, the stand-in datasets and how each suite differs from the study's D4RL setup.
"""

from odtbench.suites import adroit, antmaze, delayed, maze2d
from odtbench.suites.common import EnvRecipe, OfflinePrep, SuiteTask

SUITE_NAMES = ("adroit", "antmaze", "maze2d", "mujoco-delayed")


def register() -> None:
    """Register the four suites' tasks (in this order) and their offline-data recipes."""
    from odtbench.suites import standins

    adroit.register()
    antmaze.register()
    maze2d.register()
    delayed.register()
    standins.register_sources()


__all__ = ["SUITE_NAMES", "EnvRecipe", "OfflinePrep", "SuiteTask", "register"]
