"""Shared machinery of the study's other suites: env recipes, the suite task type, references.

An `EnvRecipe` says how to build one env: a gymnasium(-robotics) env, its time limit and the
authors' per-env wrappers (reward shift/scale, delayed reward). Dict (goal-conditioned)
observations are always flattened, in `gymnasium.spaces.Dict` key order (sorted:
achieved_goal, desired_goal, observation) — the order `odtbench.data.minari_io` flattens
stored dict observations in, so data and env agree. Recipes are registered as gymnasium ids in
the ``odtbench/`` namespace (`odtbench.suites.envs`), so a dataset written for a task records an
env whose spaces and reward units match the stored data.

A `SuiteTask` is a `Task` with three envs (online collection, evaluation, and the raw env the
offline data come from), the offline preprocessing of its data (`OfflinePrep`) and the factor
that turns returns in wrapper units back into env units before D4RL normalisation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.suites.prep import OfflinePrep
from odtbench.tasks import SRC_TAB9, HpRow, Task, TaskHyperparameters

ENV_MODULE = "odtbench.suites.envs"  # imported before gymnasium.make: registers the ids below
ENTRY_POINT = "odtbench.suites.common:make_recipe_env"
ENV_RECIPES: dict[str, EnvRecipe] = {}

# ---- hyperparameters: the study's other domains (the authors' readme rows; paper Tab. 9) ----
# Shared by every non-MuJoCo domain: critic LayerNorm on, 1:1 critic:actor updates
# (d = 1), critic lr 2e-4, actor wd 1e-4, >= 1000 transitions per online iteration, no
# iteration cap (99999) and a 1M-transition online budget (the paper plots and tabulates 1M;
# the code stops at >= 1.05M). Each suite module adds its domains' rows to it.
NON_MUJOCO: dict[str, Any] = {
    "critic_layernorm": True, "actor_update_interval": 1, "lr_critic": 2e-4, "lr_actor": 1e-4,
    "weight_decay": 1e-4, "min_transitions_per_iter": 1000, "max_online_iters": 99_999,
    "online_budget": 1_000_000,
}


def tab9(row: dict[str, Any]) -> TaskHyperparameters:
    """A domain's row of paper Tab. 9 (as the authors' readme ran it) as a task's rows."""
    return TaskHyperparameters(rows=(HpRow(row, SRC_TAB9),))


def _freeze(x: Any) -> Any:
    """Lists (maze maps) -> tuples, so recipes are hashable."""
    if isinstance(x, list | tuple):
        return tuple(_freeze(v) for v in x)
    return x


def _thaw(x: Any) -> Any:
    if isinstance(x, tuple):
        return [_thaw(v) for v in x]
    return x


@dataclass(frozen=True)
class EnvRecipe:
    """One env: `base_id` with `base_kwargs`, a time limit and the authors' reward wrappers.

    The time limit wraps the base env, inside the reward wrappers, so the delayed-reward
    wrapper sees a truncation and pays out what it owes at the end of every episode.
    Rewards become ``(r + reward_shift) * reward_scale`` (docs/suites.md, "Domain rules"), then are delayed
    by `delay` steps when it is > 1 (M = 1 is off, as the authors' `--delayed_reward`).
    """

    name: str  # gymnasium id it is registered under, "odtbench/<Name>-v<N>"
    base_id: str
    max_episode_steps: int
    base_kwargs: tuple[tuple[str, Any], ...] = ()
    reward_shift: float = 0.0
    reward_scale: float = 1.0
    delay: int = 1

    @classmethod
    def create(cls, name: str, base_id: str, max_episode_steps: int,
               base_kwargs: dict[str, Any] | None = None, **wrappers: Any) -> EnvRecipe:
        kw = tuple(sorted((k, _freeze(v)) for k, v in (base_kwargs or {}).items()))
        return cls(name=name, base_id=base_id, max_episode_steps=int(max_episode_steps),
                   base_kwargs=kw, **wrappers)

    def spec_kwargs(self) -> dict[str, Any]:
        """JSON-serialisable kwargs of the registered entry point (Minari stores them)."""
        return {"base_id": self.base_id, "max_episode_steps": self.max_episode_steps,
                "base_kwargs": {k: _thaw(v) for k, v in self.base_kwargs},
                "reward_shift": self.reward_shift, "reward_scale": self.reward_scale,
                "delay": self.delay}

    def make(self, max_episode_steps: int | None = None, **overrides: Any):
        """A fresh env: base env (own time limit) -> flatten dict obs -> reward wrappers."""
        import gymnasium as gym

        from odtbench.suites.wrappers import AffineReward, DelayedReward

        _ensure_base_registered(self.base_id)
        kw = {**{k: _thaw(v) for k, v in self.base_kwargs}, **overrides}
        from odtbench.suites.mjcf import make  # gym.make minus MuJoCo's settotalmass warning

        env = make(self.base_id, max_episode_steps=int(max_episode_steps or self.max_episode_steps), **kw)
        if isinstance(env.observation_space, gym.spaces.Dict):
            env = gym.wrappers.FlattenObservation(env)
        if self.reward_shift != 0.0 or self.reward_scale != 1.0:
            env = AffineReward(env, self.reward_shift, self.reward_scale)
        if self.delay > 1:
            env = DelayedReward(env, self.delay)
        return env


def make_recipe_env(base_id: str, max_episode_steps: int, base_kwargs: dict[str, Any] | None = None,
                    reward_shift: float = 0.0, reward_scale: float = 1.0, delay: int = 1,
                    render_mode: str | None = None):
    """Entry point of the registered ``odtbench/...`` ids (also what Minari recovers)."""
    kw = dict(base_kwargs or {})
    if render_mode is not None:
        kw["render_mode"] = render_mode
    recipe = EnvRecipe.create("odtbench/Recovered-v0", base_id, max_episode_steps, kw,
                              reward_shift=reward_shift, reward_scale=reward_scale, delay=delay)
    return recipe.make()


def _ensure_base_registered(base_id: str) -> None:
    import gymnasium as gym

    if base_id not in gym.registry:
        # gymnasium-robotics registers its envs on import (it prints a warning that the Adroit
        # v1 reward functions changed in 1.2.1: see docs/suites.md)
        import gymnasium_robotics  # noqa: F401
    if base_id not in gym.registry:
        raise OdtbenchError(f"env {base_id} is not registered; install gymnasium-robotics==1.4.2 "
                            "(pip install -e .)")


def define_env(recipe: EnvRecipe) -> EnvRecipe:
    """Record a recipe under its id (registered with gymnasium by `odtbench.suites.envs`)."""
    old = ENV_RECIPES.get(recipe.name)
    if old is not None and old != recipe:
        raise OdtbenchError(f"env recipe {recipe.name} is defined twice with different settings")
    ENV_RECIPES[recipe.name] = recipe
    return recipe


@dataclass(frozen=True)
class SuiteTask(Task):
    """A task of the Adroit / AntMaze / Maze2D / delayed-reward suites."""

    online_env: EnvRecipe | None = None  # online collection; `env_id` is its registered id
    eval_env: EnvRecipe | None = None  # evaluation, when it differs (AntMaze/Maze2D eval maps)
    data_env: EnvRecipe | None = None  # the raw env the offline data come from (stand-ins)
    prep: OfflinePrep = field(default_factory=OfflinePrep)
    # Returns are in wrapper units; x score_scale gives env units for D4RL normalisation
    # (Adroit r/100 -> x100, hammer x1000: the study's metric).
    score_scale: float = 1.0
    standin_size: int = 1_000_000  # transitions of a paper-scale stand-in (the D4RL size)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.online_env is None or self.data_env is None:
            raise OdtbenchError(f"task {self.key}: a suite task needs online_env and data_env recipes")
        if self.env_id != self.online_env.name:
            raise OdtbenchError(f"task {self.key}: env_id {self.env_id} must name its online env "
                                f"recipe {self.online_env.name}")

    def _required(self, recipe: EnvRecipe | None, what: str) -> EnvRecipe:
        if recipe is None:  # __post_init__ rejects such a task already
            raise OdtbenchError(f"task {self.key}: a suite task needs an {what} recipe")
        return recipe

    @property
    def online_recipe(self) -> EnvRecipe:
        """online_env, which every suite task has."""
        return self._required(self.online_env, "online_env")

    @property
    def data_recipe(self) -> EnvRecipe:
        """data_env, which every suite task has."""
        return self._required(self.data_env, "data_env")

    def make_env(self, **kwargs: Any):
        """The online-collection env (wrapped, flat observations, reward in wrapper units)."""
        return self.online_recipe.make(**kwargs)

    def make_eval_env(self, **kwargs: Any):
        """The evaluation env (AntMaze/Maze2D: the D4RL evaluation map and goal)."""
        return (self.eval_env or self.online_recipe).make(**kwargs)

    def make_data_env(self, **kwargs: Any):
        """The raw env (flat observations, original reward) the offline data are collected in."""
        return self.data_recipe.make(**kwargs)

    def normalize(self, returns: Any) -> np.ndarray | float:
        """D4RL normalised score of returns given in wrapper units."""
        return super().normalize(np.asarray(returns, dtype=np.float64) * self.score_scale)

    def normalize_offline(self, returns: Any) -> np.ndarray | float:
        """D4RL normalised score of offline returns (in the units of the preprocessed data).

        Differs from `normalize` only where the authors scale online and offline rewards
        differently (maze2d-open). AntMaze returns are shaped (-1 per step), so their
        normalised value is not a success rate.
        """
        return super().normalize(np.asarray(returns, dtype=np.float64) / self.prep.reward_scale)

    def with_reference(self, name: str) -> SuiteTask:
        refs = {r.name: r for r in SUITE_REFERENCES if r.domain == self.domain}
        if not refs:  # a MuJoCo domain (delayed suite): the main reference table
            return super().with_reference(name)
        if name not in refs:
            raise UnknownChoiceError(f"reference for domain {self.domain!r}", name, refs)
        ref = refs[name]
        return dataclasses.replace(self, ref_min=ref.min, ref_max=ref.max,
                                   ref_source=ref.source, ref_name=ref.name)


@dataclass(frozen=True)
class SuiteReference:
    domain: str
    name: str
    min: float
    max: float
    source: str
    provenance: str


_D4RL_SRC = "D4RL (Fu et al. 2020) infos.py"
_D4RL_PROV = ("d4rl/infos.py (Farama-Foundation/D4RL @ 0ace16de) REF_MIN_SCORE/REF_MAX_SCORE['{key}']"
              " (random / expert policy returns in the D4RL env); applied to the gymnasium-robotics"
              " port as an approximation")
_ADROIT_V1 = " (the -v1 entries copy the -human-v0 ones)"
SUITE_REFERENCES: tuple[SuiteReference, ...] = (
    SuiteReference("pen", "d4rl", 96.262799, 3076.8331017826877, _D4RL_SRC,
                   _D4RL_PROV.format(key="pen-*-v1") + _ADROIT_V1),
    SuiteReference("hammer", "d4rl", -274.856578, 12794.134825156867, _D4RL_SRC,
                   _D4RL_PROV.format(key="hammer-*-v1") + _ADROIT_V1),
    SuiteReference("door", "d4rl", -56.512833, 2880.5693087298737, _D4RL_SRC,
                   _D4RL_PROV.format(key="door-*-v1") + _ADROIT_V1),
    SuiteReference("relocate", "d4rl", -6.425911, 4233.877797728884, _D4RL_SRC,
                   _D4RL_PROV.format(key="relocate-*-v1") + _ADROIT_V1),
    *(SuiteReference(f"antmaze-{m}", "d4rl", 0.0, 1.0, _D4RL_SRC,
                     _D4RL_PROV.format(key=f"antmaze-{m}-*-v2") + "; the study scores success x 100")
      for m in ("umaze", "medium", "large")),
    SuiteReference("maze2d-open", "d4rl", 0.01, 20.66, _D4RL_SRC,
                   _D4RL_PROV.format(key="maze2d-open-v0")),
    SuiteReference("maze2d-umaze", "d4rl", 23.85, 161.86, _D4RL_SRC,
                   _D4RL_PROV.format(key="maze2d-umaze-v1")),
    SuiteReference("maze2d-medium", "d4rl", 13.13, 277.39, _D4RL_SRC,
                   _D4RL_PROV.format(key="maze2d-medium-v1")),
    SuiteReference("maze2d-large", "d4rl", 6.7, 273.99, _D4RL_SRC,
                   _D4RL_PROV.format(key="maze2d-large-v1")),
)


def suite_reference(domain: str, name: str = "d4rl") -> dict[str, Any]:
    """`ref_min`, `ref_max`, `ref_source`, `ref_name` fields of a task of `domain`."""
    for r in SUITE_REFERENCES:
        if r.domain == domain and r.name == name:
            return {"ref_min": r.min, "ref_max": r.max, "ref_source": r.source, "ref_name": r.name}
    raise UnknownChoiceError(f"reference for domain {domain!r}", name,
                             [r.name for r in SUITE_REFERENCES if r.domain == domain])
