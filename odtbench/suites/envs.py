"""Importing this module registers every suite env recipe as a gymnasium id (``odtbench/...``).

Tasks name it as their `env_module`, so writing a dataset (and `minari`'s
``recover_environment`` after ``import odtbench.suites.envs``) can build the wrapped env.
"""

from __future__ import annotations

import gymnasium as gym

import odtbench.suites  # noqa: F401  (defines the recipes)
from odtbench.suites.common import ENTRY_POINT, ENV_RECIPES


def register_all() -> list[str]:
    """Register the recipes not registered yet; returns every recipe id."""
    for name, recipe in ENV_RECIPES.items():
        if name not in gym.registry:
            gym.register(id=name, entry_point=ENTRY_POINT, kwargs=recipe.spec_kwargs(),
                         max_episode_steps=None, disable_env_checker=True)
    return list(ENV_RECIPES)


register_all()
