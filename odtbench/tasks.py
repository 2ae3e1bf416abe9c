"""The task registry: benchmark dataset name -> env, dataset source and reference scores.

A task key is ``"<suite>/<dataset>"`` (``toy/bandit``, ``mujoco/hopper-medium``). The toy and
MuJoCo suites are registered by the builder functions below. Every other suite is a plug-in:
a function under the "odtbench.suites" entry-point group (the study's adroit, antmaze, maze2d
and mujoco-delayed suites: `odtbench.suites.register`) that calls `register_task` for each of
its tasks. Plug-ins load lazily, on the first lookup, so this module never imports them.
A task owns its behaviour: the envs it collects and evaluates in and how it scores episodes.

Reference scores come from ``odtbench/data/reference_scores.csv`` (one row per domain and
reference, with provenance). A task's default reference is D4RL's published random/expert
returns; other rows (the suite's own random-policy means on the v5 envs) are reachable with
`Task.with_reference` so every normalised score can say which reference it used.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import numpy as np

from odtbench.errors import OdtbenchError, UnknownChoiceError

SUITES: tuple[str, ...] = ("toy", "mujoco", "adroit", "antmaze", "maze2d", "mujoco-delayed")
SCORE_KINDS = ("normalized", "success_rate", "raw")
DEFAULT_REFERENCE = {"toy": "toy", "mujoco": "d4rl", "adroit": "d4rl", "antmaze": "d4rl",
                     "maze2d": "d4rl", "mujoco-delayed": "d4rl"}


@dataclass(frozen=True)
class Reference:
    """One normalisation reference: 100 * (R - min) / (max - min)."""

    domain: str
    name: str  # "d4rl" | "suite-random-v5" | "toy" | "minari-metadata" ...
    env_id: str
    min: float
    max: float
    source: str  # short label written next to every score
    provenance: str = ""  # where the numbers come from, in full

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": self.min, "max": self.max, "source": self.source}


@cache
def _reference_table() -> tuple[Reference, ...]:
    text = resources.files("odtbench.data").joinpath("reference_scores.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return tuple(
        Reference(domain=r["domain"], name=r["reference"], env_id=r["env_id"],
                  min=float(r["ref_min"]), max=float(r["ref_max"]), source=r["source"],
                  provenance=r["provenance"])
        for r in rows
    )


def list_references(domain: str | None = None) -> list[Reference]:
    """All recorded references (optionally of one domain), in table order."""
    return [r for r in _reference_table() if domain is None or r.domain == domain]


def get_reference(domain: str, name: str) -> Reference:
    """The reference `name` of `domain` (e.g. ``get_reference("hopper", "d4rl")``)."""
    refs = {r.name: r for r in list_references(domain)}
    if name not in refs:
        raise UnknownChoiceError(f"reference for domain {domain!r}", name, refs)
    return refs[name]


_T = TypeVar("_T", bound="Task")


@dataclass(frozen=True)
class Task:
    """One benchmark dataset and the env it is evaluated in."""

    suite: str
    dataset: str
    domain: str  # preset row of paper Tab. 9 (odtbench.config.DOMAINS)
    env_id: str
    source: str  # "generated:<recipe>" | "minari:<dataset id>"
    quality: str  # "bandit" | "random" | "medium" | "medium-replay" | "expert" ...
    ref_min: float
    ref_max: float
    ref_source: str
    score_kind: str
    max_episode_steps: int
    paper_dataset: str | None  # the study's name (paper_results.csv), if the study ran it
    env_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    env_module: str | None = None  # imported before gymnasium.make (registers the env)
    ref_name: str = "d4rl"
    published_source: str | None = None  # a published Minari dataset of the same recipe
    notes: str = ""

    def __post_init__(self) -> None:
        if self.score_kind not in SCORE_KINDS:
            raise OdtbenchError(f"task {self.key}: score_kind {self.score_kind!r} is not one of {SCORE_KINDS}")
        if not self.ref_max > self.ref_min:
            raise OdtbenchError(f"task {self.key}: ref_max must exceed ref_min; fix reference_scores.csv")
        if not self.source.startswith(("generated:", "minari:")):
            raise OdtbenchError(f"task {self.key}: source {self.source!r} must start with 'generated:' or 'minari:'")

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.dataset}"

    @property
    def reference(self) -> dict[str, Any]:
        """What a run records about the normalisation it used."""
        return {"name": self.ref_name, "min": self.ref_min, "max": self.ref_max,
                "source": self.ref_source, "score_kind": self.score_kind}

    def normalize(self, returns: float | Iterable[float] | np.ndarray) -> np.ndarray | float:
        """Normalised score(s): 100 * (R - ref_min) / (ref_max - ref_min)."""
        r = np.asarray(returns, dtype=np.float64)
        scores = 100.0 * (r - self.ref_min) / (self.ref_max - self.ref_min)
        return float(scores) if scores.ndim == 0 else scores

    def make_env(self, **kwargs: Any):
        """A fresh gymnasium env for this task (kwargs override the task's env_kwargs)."""
        from odtbench.suites.mjcf import make  # gym.make minus MuJoCo's settotalmass warning

        if self.env_module:
            importlib.import_module(self.env_module)
        steps = kwargs.pop("max_episode_steps", self.max_episode_steps)
        return make(self.env_id, max_episode_steps=steps, **{**dict(self.env_kwargs), **kwargs})

    def make_eval_env(self, **kwargs: Any):
        """The env evaluation episodes run in (the online env unless a suite says otherwise)."""
        return self.make_env(**kwargs)

    def score(self, returns: np.ndarray, successes: np.ndarray | None = None) -> np.ndarray:
        """Per-episode scores of evaluation episodes: 100 x success for a success-rate task,
        else the normalised return."""
        if self.score_kind == "success_rate" and successes is not None:
            return 100.0 * np.asarray(successes, dtype=np.float64)
        return np.asarray(self.normalize(returns), dtype=np.float64)

    def with_reference(self: _T, name: str) -> _T:
        """The same task normalised by another recorded reference of its domain."""
        ref = get_reference(self.domain, name)
        return dataclasses.replace(self, ref_min=ref.min, ref_max=ref.max,
                                   ref_source=ref.source, ref_name=ref.name)

    def with_source(self: _T, source: str) -> _T:
        """The same task reading its data from another source, e.g. a published Minari id."""
        return dataclasses.replace(self, source=source)

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_name(self) -> str:
        return self.source.split(":", 1)[1]


_REGISTRY: dict[str, Task] = {}
SUITE_ENTRY_POINT_GROUP = "odtbench.suites"
_plugins_loaded = False


def _load_suite_plugins() -> None:
    """Call every "odtbench.suites" entry point once (each registers its suite's tasks)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # first: a plug-in may look tasks up (mujoco-delayed reads mujoco)
    for ep in importlib.metadata.entry_points(group=SUITE_ENTRY_POINT_GROUP):
        try:
            ep.load()()
        except OdtbenchError:
            raise
        except Exception as exc:  # a broken plug-in must say which one it is
            raise OdtbenchError(f"cannot load suite plugin {ep.name!r} ({ep.value}): {exc}; "
                                "fix or uninstall that package") from exc


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add a task to the registry (later suites call this)."""
    if task.key in _REGISTRY and not replace:
        raise OdtbenchError(f"task {task.key} is already registered; pass replace=True to redefine it")
    _REGISTRY[task.key] = task
    return task


def get_task(key: str, *, source: str | None = None, reference: str | None = None) -> Task:
    """The task `"<suite>/<dataset>"`, optionally with another dataset source or reference."""
    _load_suite_plugins()
    if key not in _REGISTRY:
        raise UnknownChoiceError("task", key, _REGISTRY)
    task = _REGISTRY[key]
    if source is not None:
        task = task.with_source(source)
    if reference is not None:
        task = task.with_reference(reference)
    return task


def list_tasks(suite: str | None = None) -> list[Task]:
    """Registered tasks (of one suite), in registration order."""
    _load_suite_plugins()
    if suite is not None and suite not in list_suites():
        raise UnknownChoiceError("suite", suite, list_suites())
    return [t for t in _REGISTRY.values() if suite is None or t.suite == suite]


def list_suites() -> list[str]:
    """Suites with at least one registered task, in registration order."""
    _load_suite_plugins()
    return list(dict.fromkeys(t.suite for t in _REGISTRY.values()))


def _reference_fields(domain: str, name: str) -> dict[str, Any]:
    ref = get_reference(domain, name)
    return {"ref_min": ref.min, "ref_max": ref.max, "ref_source": ref.source, "ref_name": ref.name}


def _register_toy() -> None:
    register_task(Task(
        suite="toy", dataset="bandit", domain="toy", env_id="odtbench/ToyBandit-v0",
        source="generated:toy-bandit", quality="bandit", score_kind="raw",
        max_episode_steps=1, paper_dataset=None, env_module="odtbench.toy",
        **_reference_fields("toy", "toy"),
    ))


MUJOCO_ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5",
               "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
MUJOCO_QUALITIES = ("medium", "medium-replay", "random")


def _register_mujoco() -> None:
    # D4RL used the -v2 envs (mujoco-py); the suite runs the maintained -v5 envs. Dynamics
    # are close but not identical (Ant-v5 also has a 105-dim observation and contact cost),
    # so D4RL-normalised scores here are approximately, not exactly, comparable.
    for domain, env_id in MUJOCO_ENVS.items():
        for quality in MUJOCO_QUALITIES:
            # Minari publishes medium/expert (v5, SAC) but no random or medium-replay sets.
            published = f"minari:mujoco/{domain}/medium-v0" if quality == "medium" else None
            register_task(Task(
                suite="mujoco", dataset=f"{domain}-{quality}", domain=domain, env_id=env_id,
                source=f"generated:d4rl/{quality}", quality=quality, score_kind="normalized",
                max_episode_steps=1000, paper_dataset=f"{domain}-{quality}-v2",
                published_source=published,
                notes="D4RL used the -v2 envs; this suite uses -v5",
                **_reference_fields(domain, DEFAULT_REFERENCE["mujoco"]),
            ))


_register_toy()
_register_mujoco()
