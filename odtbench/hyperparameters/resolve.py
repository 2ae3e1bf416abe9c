"""Hyperparameter resolution: defaults → domain (paper Tab. 9) → method preset → scale → user.

Every resolved value carries its source, written to config.json, so a reader can check a
run against the study. Scales change sizes and budgets only, never the algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.checks import check_hyperparameters, check_memory
from odtbench.hyperparameters.overrides import split_variant
from odtbench.hyperparameters.schemas import (
    SCALES,
    Protocol,
    build,
    check_value,
    scale_layers,
    schema_types,
)

# The authors' code defaults and paper Tab. 8 (docs/methods/dt-family.md §6).
SRC_CODE = "authors' code defaults (docs/methods/dt-family.md §6)"
DEFAULTS: dict[str, Any] = {
    # Decision transformer (Tab. 8: 512/4/4, dropout 0.1, ReLU, no positional embedding)
    "embed_dim": 512, "n_layer": 4, "n_head": 4, "dropout": 0.1, "embed_dropout": 0.1,
    "context_len": 20, "eval_context_len": 5, "batch_size": 256,
    # actor optimiser: LAMB + 10k-step linear warm-up, grad-norm clip 0.25
    "actor_optimizer": "lamb", "lr_actor": 1e-4, "weight_decay": 5e-4, "warmup_steps": 10_000, "grad_clip": 0.25,
    "stochastic": False, "entropy_reg": False, "init_temperature": 0.1,
    # critic: 2x256 ReLU MLP, AdamW (torch default wd 0.01), LayerNorm off on MuJoCo
    "critic_hidden": 256, "critic_layernorm": False, "n_critics": 2,
    "lr_critic": 1e-3, "critic_weight_decay": 0.01,
    # TD3 (Tab. 8)
    "gamma": 0.99, "tau": 0.005, "policy_noise": 0.2, "noise_clip": 0.5,
    "actor_update_interval": 2, "expl_noise": 0.1,
    "rl_kind": "td3", "rl_coeff": 0.1, "sup_coeff": 1.0, "rl_from_start": False,
    # protocol
    "pretrain_updates": 5000, "pretrain_iters": 1,
    "online_updates_per_iter": 300, "online_updates_mode": "fixed",
    "min_transitions_per_iter": 0, "max_online_iters": 1500,
    # The authors' code stops at >= 600k MuJoCo transitions; the paper plots and tabulates
    # 500K (Tab. 1), which is the budget the issue and the study's figures use.
    "online_budget": 500_000,
    "replay_size": 1000, "eval_interval": 10, "eval_episodes": 10,
    "eval_rtg": 3600.0, "online_rtg": 7200.0, "reward_scale": 0.001,
    "max_episode_len": 1000, "drop_lowest_return": True,
    "checkpoint_every_updates": 2000, "divergence_q_bound": 1e6,
    # the toy's protocol only (docs/fidelity.md): new optimisers online, a constant RTG input
    "fresh_optimizers_online": False, "train_rtg_constant": None,
}

# Defaults whose source is not the authors' code defaults (docs/fidelity.md).
DEFAULT_SOURCES: dict[str, str] = {
    "embed_dropout": "authors' GPT-2 config: embd_pdrop never set, HF default 0.1 "
                     "(docs/fidelity.md)",
}

# The budget and evaluation every method shares (the study's tables: 500K MuJoCo transitions,
# 10 evaluation episodes of <= 1000 steps) and the suite's divergence bound.
SRC_PROTOCOL = "protocol of every method (docs/methods/dt-family.md §5)"

SRC_SCALE = "scale {scale}"
SCALE_OVERRIDES: dict[str, dict[str, Any]] = {
    "paper": {},
    # Small nets and budgets for one CPU machine; the algorithm is unchanged.
    "quick": {
        # DT 32/1/1 with K 5 (about 30k parameters) and the paper's 300 actor updates per
        # online iteration; warm-up:pretraining kept at the paper's 2:1 so online finetuning
        # also starts at half the learning rate. Why these sizes (the pilots that chose
        # them): docs/scales.md, "How the quick preset was chosen".
        "embed_dim": 32, "n_layer": 1, "n_head": 1, "context_len": 5, "batch_size": 64,
        "pretrain_updates": 500, "warmup_steps": 1000,
        "online_budget": 40_000, "max_online_iters": 200, "eval_interval": 5,
        "eval_episodes": 5, "checkpoint_every_updates": 500,
    },
    # Built on quick (SCALE_BASE): the quick sizes, the budgets at which the pilots saw the
    # study's MuJoCo effect at those sizes, and the study's 10 evaluation episodes, so a final
    # score is not one unlucky episode (docs/scales.md, evidence/ladder/README.md).
    "standard": {
        "online_budget": 100_000, "max_online_iters": 1000, "eval_episodes": 10,
    },
    # Seconds per run: proves the wiring only.
    "smoke": {
        "embed_dim": 16, "n_layer": 1, "n_head": 1, "context_len": 5, "eval_context_len": 2,
        "batch_size": 8, "critic_hidden": 16, "pretrain_updates": 10, "pretrain_iters": 2,
        "warmup_steps": 5,
        "online_updates_per_iter": 5, "online_budget": 120, "max_online_iters": 3,
        "min_transitions_per_iter": 40, "max_episode_len": 40, "eval_interval": 1,
        "eval_episodes": 2, "replay_size": 50, "checkpoint_every_updates": 5,
    },
}
# A scale's values for one domain, over the scale's own (the budget a domain needs to show the
# effect at the scale's sizes): scale -> domain -> values, with the evidence for each.
SCALE_DOMAIN_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "standard": {
        # halfcheetah-random: TD3+ODT leaves ODT's 2 from 55K on, 28 / 20 / 27 at 100K (seeds
        # 0-2, the ladder's 100K rungs); the scale's 100K applies
        # walker2d-random: TD3+ODT 33 at 200K on seed 0 with collapses between evaluations,
        # ODT 6 at 300K (the ladder's 300K rungs): the longer budget
        "walker2d": {"online_budget": 300_000},
    },
}
SRC_SCALE_DOMAIN = "scale {scale} ({domain}; odtbench/hyperparameters/resolve.py SCALE_DOMAIN_OVERRIDES)"

# Context lengths and pretraining iterations are capped, not set, by a scale: a domain with
# K = 1 (AntMaze umaze, Maze2D) keeps K = 1 at every scale.
CAPPED_BY_SCALE = ("context_len", "eval_context_len", "pretrain_iters")

S = TypeVar("S", bound=Protocol)


@dataclass
class RunConfig:
    """Everything a run needs: what to run and its resolved hyperparameters with sources."""

    task_key: str
    method: str
    scale: str
    seed: int
    hyperparameters: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    # a sweep's run (`TD3+ODT@rl_coeff=0.01`): its method directory; "" = the method's own
    variant: str = ""
    # The typed hyperparameters (the method's schema; `Protocol` for a method without one),
    # built by `resolve`: what the code reads, through `typed_as`. `hyperparameters` is
    # their record, with sources, for config.json.
    typed: Protocol | None = field(default=None, compare=False, repr=False)

    def typed_as(self, schema: type[S]) -> S:
        """The run's typed hyperparameters, checked to be a `schema` (the method's own or one
        it extends). Built anew (and checked) where `hyperparameters` no longer holds them:
        a record edited by hand after `resolve`, or a RunConfig made without it."""
        t, rec = self.typed, self.hyperparameters
        if t is None or not all(f.name in rec and rec[f.name] is getattr(t, f.name)
                                for f in fields(t)):
            from odtbench.methods import get_method

            t = build(get_method(self.method).hyperparameters or Protocol, rec, self.method)
        if not isinstance(t, schema):
            raise OdtbenchError(f"{self.method}'s hyperparameters are {type(t).__name__}, not "
                                f"{schema.__name__}; run it with its own runner")
        return t

    @property
    def method_dir(self) -> str:
        """The run's method directory: the sweep's name, else the method."""
        return self.variant or self.method

    @property
    def suite(self) -> str:
        return self.task_key.split("/", 1)[0]

    @property
    def dataset(self) -> str:
        return self.task_key.split("/", 1)[1]


class _Layers:
    """Applies layers of values to one method's keys only, recording each value's source.

    A generic layer (defaults, domain row, scale) sets the keys the method's schema has and
    passes over the others (another family's); a layer of the method's own (its presets, a
    user override) must name only keys the method has.
    """

    def __init__(self, spec: Any):
        self.spec = spec
        self.types = method_keys(spec)
        self.hp: dict[str, Any] = {}
        self.src: dict[str, str] = {}

    def generic(self, values: Mapping[str, Any], source: str,
                per_key: Mapping[str, str] | None = None) -> None:
        for k, v in values.items():
            if k in self.types:
                self.hp[k], self.src[k] = v, (per_key or {}).get(k, source)

    def own(self, values: Mapping[str, Any], source: str,
            per_key: Mapping[str, str] | None = None) -> None:
        for k, v in values.items():
            if k not in self.types:
                raise OdtbenchError(f"{source} sets {k!r}, which {self.spec.name} does not have "
                                    f"(family {self.spec.family}); remove it from the preset")
            self.hp[k] = v
            self.src[k] = f"{source}: {per_key[k]}" if per_key and k in per_key else source


def method_keys(spec: Any) -> dict[str, type]:
    """{key: type} of the hyperparameters a method has: its schema's fields, or (a method
    without a schema) the shared protocol's plus its presets' keys, typed by their values."""
    if spec.hyperparameters is not None:
        return schema_types(spec.hyperparameters)
    keys = dict(schema_types(Protocol))
    for layer in (spec.preset, *spec.suite_presets.values(), *spec.scale_presets.values()):
        for k, v in layer.items():
            keys.setdefault(k, type(v))
    return keys


def _all_known_keys() -> set[str]:
    """Every key some registered method has (to tell another family's key from a typo)."""
    from odtbench.methods import get_method, list_methods

    return {k for m in list_methods() for k in method_keys(get_method(m))}


def resolve(task_key: str, method: str, scale: str, seed: int = 0,
            overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Resolve the hyperparameters of one run; raises one-line errors for bad names.

    `method` may name a sweep's run (`TD3+ODT@rl_coeff=0.01`, odtbench.hyperparameters.overrides): the
    method, then values that win over `overrides`, so the run directory's name always says
    what ran."""
    from odtbench.methods import get_method
    from odtbench.tasks import get_task

    if scale not in SCALES:
        raise UnknownChoiceError("scale", scale, SCALES)
    task = get_task(task_key)
    variant = method
    method, swept = split_variant(method)
    spec = get_method(method)
    lay = _Layers(spec)
    lay.generic(DEFAULTS, SRC_CODE, {**{k: SRC_PROTOCOL for k in schema_types(Protocol)},
                                     **DEFAULT_SOURCES})
    if task.hp is None:
        raise OdtbenchError(f"task {task.key} has no hyperparameter row for its domain "
                            f"{task.domain!r}; its suite must give the Task one (`hp`, "
                            "odtbench.tasks.TaskHyperparameters; docs/suites.md)")
    # each group's conditions read the values before the group (one rule never gates another)
    given = dict(lay.hp)
    for row in task.hp.rows:  # the domain's row of paper Tab. 9, then e.g. random data's
        if row.applies(given):
            lay.generic(row.values, row.source)
    lay.own(spec.preset, f"method preset {spec.name}", spec.preset_sources)
    lay.own(spec.suite_presets.get(task.suite, {}), f"method preset {spec.name} ({task.suite})")
    hp = lay.hp
    given = dict(hp)
    for row in task.hp.rules:  # the task's rules on the method's values (the toy's)
        if row.applies(given):
            lay.generic(row.values, row.source)
    for layer in scale_layers(scale):  # a scale built on another applies its base's first
        if task.hp.scales is not None:  # the task's own scale layer
            lay.generic(task.hp.scales.get(layer, {}), SRC_SCALE.format(scale=layer))
            continue
        scaled = dict(SCALE_OVERRIDES[layer])
        for k in CAPPED_BY_SCALE:  # a scale may shorten these, never lengthen a domain's value
            if k in scaled and k in hp:
                scaled[k] = min(scaled[k], hp[k])
        lay.generic(scaled, SRC_SCALE.format(scale=layer))
        lay.generic(SCALE_DOMAIN_OVERRIDES.get(layer, {}).get(task.domain, {}),
                    SRC_SCALE_DOMAIN.format(scale=layer, domain=task.domain))
    for layer in scale_layers(scale):
        lay.own(spec.scale_presets.get(layer, {}), f"method preset {spec.name} (scale {layer})")
    user = {**(overrides or {}), **swept}
    for k in sorted(user):
        if k not in lay.types:
            if k in _all_known_keys():
                raise OdtbenchError(f"{spec.name} has no hyperparameter {k!r} (another family's "
                                    f"key); `odtbench config --method {spec.name!r}` lists its keys")
            raise UnknownChoiceError("hyperparameter", k, lay.types)
    before = dict(hp)
    lay.own({k: v for k, v in user.items() if k not in swept}, "user override")
    lay.own(swept, f"sweep value (run {variant})")
    # per-key type, range and choices of the method's schema (odtbench/hyperparameters/checks.py)
    schema = spec.hyperparameters or Protocol
    check_hyperparameters(hp, before, schema)
    if hp.get("eval_context_len", 0) > hp.get("context_len", float("inf")):
        # the DT acts on at most context_len steps: stop now, not after pretraining
        raise OdtbenchError(f"eval_context_len {hp['eval_context_len']} exceeds context_len "
                            f"{hp['context_len']} ({spec.name} on {task.key}, scale {scale}); "
                            "the DT is trained on at most context_len steps: raise context_len")
    for k, v in hp.items():
        check_value(k, v, lay.types[k], spec.name)
    typed = build(schema, hp, spec.name)  # complete, typed, and the schema's checks
    check_memory(typed, spec.name)  # the sizes together fit this machine, before any file
    src = lay.src
    return RunConfig(task_key=task.key, method=spec.name, scale=scale, seed=int(seed),
                     hyperparameters=hp, sources=src, variant=variant if swept else "",
                     typed=typed)
