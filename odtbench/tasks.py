"""The task registry: benchmark dataset name -> env, dataset source and reference scores.

A task key is ``"<suite>/<dataset>"`` (``toy/bandit``, ``mujoco/hopper-medium``). The toy and
MuJoCo suites are registered by the builder functions below. Every other suite is a plug-in:
a function under the "odtbench.suites" entry-point group (the study's adroit, antmaze, maze2d
and mujoco-delayed suites: `odtbench.suites.register`) that calls `register_task` for each of
its tasks. Plug-ins load lazily, on the first lookup, so this module never imports them.
A task owns its behaviour: the envs it collects and evaluates in and how it scores episodes,
and its suite's hyperparameter rows (`TaskHyperparameters`: paper Tab. 9's row of its domain,
and the toy's rules), which `odtbench.hyperparameters.resolve.resolve` layers between the defaults and the user.

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
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol, TypeVar

import numpy as np

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.methods.rl_kinds import log_pi_kinds

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


SRC_TAB9 = "paper Tab. 9 / authors' readme (docs/methods/dt-family.md §6)"
# A condition of an `HpRow`: (key, op, value) on the hyperparameters resolved so far. A key
# the method does not have holds for "not in" only (a row for the DT family stays off a
# baseline that lacks the key).
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt,
    "in": lambda have, value: have in value, "not in": lambda have, value: have not in value,
}


@dataclass(frozen=True)
class HpRow:
    """Hyperparameter values a task's suite sets, with the source every run records for them;
    only keys the method's schema has are set. `when`: (key, op, value) conditions that must
    all hold on the values resolved before the row's group (`TaskHyperparameters.rows` or
    `.rules`), so one row of a group never gates another (the toy's rules)."""

    values: Mapping[str, Any]
    source: str
    when: tuple[tuple[str, str, Any], ...] = ()

    def __post_init__(self) -> None:
        for key, op, _ in self.when:
            if op not in _OPS:
                raise UnknownChoiceError(f"operator of the condition on {key!r}", op, _OPS)

    def applies(self, hp: Mapping[str, Any]) -> bool:
        for key, op, value in self.when:
            if key not in hp:
                if op != "not in":
                    return False
                continue
            if callable(value):  # read when the run resolves (e.g. the kinds registered then)
                value = value()
            if not _OPS[op](hp[key], value):
                return False
        return True


@dataclass(frozen=True)
class TaskHyperparameters:
    """What a task's suite sets in a run's hyperparameters (odtbench.hyperparameters.resolve.resolve):
    `rows` after the defaults and before the method's presets (its domain's row of paper
    Tab. 9, then e.g. Tab. 8's rule for random data); `rules` after the method's presets
    (the toy's); `scales`, when set, replaces the generic scale layer (the toy is already
    tiny). The rows must set the domain's RTGs: no task runs on another domain's."""

    rows: tuple[HpRow, ...]
    rules: tuple[HpRow, ...] = ()
    scales: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        set_keys = {k for row in self.rows if not row.when for k in row.values}
        missing = [k for k in ("eval_rtg", "online_rtg") if k not in set_keys]
        if missing:
            raise OdtbenchError(f"a task's hyperparameter rows must set {' and '.join(missing)} "
                                "(its domain's RTGs; paper Tab. 9)")


class Probe(Protocol):
    """What a run records per online epoch beside its curve (the toy's Fig. 2: probes.json)."""

    epochs: list[dict]

    def record(self, agent: Any, epoch: int, gradient_steps: int, rollout_actions: list[float],
               state_norm: np.ndarray, reward_scale: float, has_critic: bool) -> None: ...

    def to_json(self) -> dict: ...

    def load(self, obj: dict) -> None: ...


_T = TypeVar("_T", bound="Task")


@dataclass(frozen=True)
class Task:
    """One benchmark dataset and the env it is evaluated in."""

    suite: str
    dataset: str
    domain: str  # the domain of paper Tab. 9 (its row: `hp`) and of the references
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
    # the suite's hyperparameter rows; None: the task cannot be run (config.resolve says so)
    hp: TaskHyperparameters | None = field(default=None, hash=False)
    probe: str | None = None  # "module:factory" of the run's Probe (the toy's Fig. 2), if any

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

    def make_probe(self) -> Probe | None:
        """A fresh Probe for a run of this task, or None (imported only when a task has one)."""
        if self.probe is None:
            return None
        module, _, name = self.probe.partition(":")
        factory = getattr(importlib.import_module(module), name)
        return factory()

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


# ---- the toy (docs/toy.md): its row, its rules and its probe ---------------------------
SRC_TOY = "toy preset (paper App. F.2.1, adapted to the DT agent: docs/toy.md)"
# The study's toy uses 2x128 MLPs, Adam lr 1e-3, batch 32, 20 pretraining steps, 16 online
# epochs of 64 rollouts each trained for one pass over the growing dataset, RTG 1,
# exploration noise of width 0.01. Here the same protocol drives the suite's DT agent.
TOY: dict[str, Any] = {
    "embed_dim": 64, "n_layer": 1, "n_head": 1, "dropout": 0.0, "embed_dropout": 0.0,
    # Tuned (docs/toy.md): batch 16 (two passes' worth of steps per epoch instead of one)
    # and the suite's usual Gaussian exploration noise 0.1 instead of U(-0.01, 0.01).
    "context_len": 1, "eval_context_len": 1, "batch_size": 16,
    "actor_optimizer": "adam", "lr_actor": 1e-3, "weight_decay": 0.0, "warmup_steps": 1,
    "critic_hidden": 128, "lr_critic": 1e-3, "critic_weight_decay": 0.0,
    "pretrain_updates": 20, "online_updates_mode": "epoch",
    "min_transitions_per_iter": 64, "max_online_iters": 16, "online_budget": 16 * 64,
    "replay_size": 100_000, "eval_interval": 1, "eval_episodes": 1,
    "eval_rtg": 1.0, "online_rtg": 1.0, "reward_scale": 1.0,
    "expl_noise": 0.1, "max_episode_len": 1, "actor_update_interval": 1,
    "checkpoint_every_updates": 100,
    # the authors' toy creates fresh Adam optimisers after pretraining, for every method
    # (docs/toy.md)
    "fresh_optimizers_online": True,
}
# The rules, after the method's presets. The study's toy actors are all deterministic with
# tiny uniform exploration noise; its "ODT" is plain RTG-conditioned regression (App. F.2.1,
# docs/toy.md). A kind whose RL term needs log pi keeps its stochastic head.
# In the toy the study weights the supervised term 0.02 against the full Q term, and its RL
# methods pretrain with that loss already (DDPG: -Q; ODT+DDPG: 0.02 MSE - Q; docs/toy.md).
# The RL-only method is the study's DDPG panel: no supervised term, and its actor is pi(1), a
# constant RTG input of 1 (the rollout RTG) in every batch instead of the data's RTG.
_RL_METHOD = (("rl_kind", "!=", "none"), ("rl_coeff", ">", 0))
TOY_RULES = (
    # The toy's row again, over every method's preset: a method built for long episodes runs
    # in the toy's sizes and cadence (PDT's preset would make it a 512-wide, K 20 DT with a
    # 10K-step warm-up on one-step episodes). The DT family's presets set none of these keys.
    HpRow(TOY, SRC_TOY),
    HpRow({"stochastic": False, "entropy_reg": False, "grad_clip": 0.0}, SRC_TOY,
          (("rl_kind", "not in", log_pi_kinds),)),
    HpRow({"grad_clip": 0.0}, SRC_TOY, (("rl_kind", "in", log_pi_kinds),)),
    HpRow({"rl_coeff": 1.0, "sup_coeff": 0.02, "rl_from_start": True}, SRC_TOY, _RL_METHOD),
    HpRow({"sup_coeff": 0.0, "train_rtg_constant": 1.0}, SRC_TOY,
          (*_RL_METHOD, ("sup_coeff", "==", 0))),
)
# The toy is already tiny: only smoke shortens it.
TOY_SCALES: dict[str, dict[str, Any]] = {
    "paper": {}, "quick": {},
    "smoke": {"max_online_iters": 3, "online_budget": 3 * 64, "pretrain_updates": 10},
}


def _register_toy() -> None:
    register_task(Task(
        suite="toy", dataset="bandit", domain="toy", env_id="odtbench/ToyBandit-v0",
        source="generated:toy-bandit", quality="bandit", score_kind="raw",
        max_episode_steps=1, paper_dataset=None, env_module="odtbench.toy",
        hp=TaskHyperparameters(rows=(HpRow(TOY, SRC_TOY),), rules=TOY_RULES, scales=TOY_SCALES),
        probe="odtbench.toy:ToyProbe",
        **_reference_fields("toy", "toy"),
    ))


# ---- MuJoCo ----------------------------------------------------------------------------
MUJOCO_ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5",
               "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
MUJOCO_QUALITIES = ("medium", "medium-replay", "random")
# Per-domain rows of the authors' readme commands (docs/methods/dt-family.md §6); where the paper's
# Tab. 9 differs (ant) the readme is what ran, and we follow it. The delayed-reward suite
# reuses them.
MUJOCO_ROWS: dict[str, dict[str, Any]] = {
    "hopper": {"eval_rtg": 3600.0, "online_rtg": 7200.0, "weight_decay": 5e-4},
    "halfcheetah": {"eval_rtg": 6000.0, "online_rtg": 12000.0, "weight_decay": 1e-4},
    "walker2d": {"eval_rtg": 5000.0, "online_rtg": 10000.0, "lr_actor": 1e-3,
                 "weight_decay": 1e-3, "pretrain_updates": 10_000},
    # readme: T_eval 5, RTG 5000/10000, lr_a 1e-4 (paper Tab. 9: T_eval 1, 6000/12000, 1e-3)
    "ant": {"eval_rtg": 5000.0, "online_rtg": 10000.0, "weight_decay": 1e-4},
}
# Random datasets collect >= 1000 transitions per online iteration (paper Tab. 8).
RANDOM_DATASET = {"min_transitions_per_iter": 1000}


def _mujoco_hp(domain: str, quality: str) -> TaskHyperparameters:
    """A MuJoCo domain's row, plus paper Tab. 8's rule for random datasets."""
    rows = [HpRow(MUJOCO_ROWS[domain], SRC_TAB9)]
    if quality == "random":
        rows.append(HpRow(RANDOM_DATASET, "paper Tab. 8 (>=1000 steps/epoch on random data)"))
    return TaskHyperparameters(rows=tuple(rows))


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
                hp=_mujoco_hp(domain, quality),
                **_reference_fields(domain, DEFAULT_REFERENCE["mujoco"]),
            ))


_register_toy()
_register_mujoco()
