"""Typed hyperparameters: one schema per method family.

A schema is a frozen dataclass whose fields are exactly the keys a family's code reads, with
their types. `odtbench.config.resolve` applies its layers (defaults, domain row, method
preset, scale, user) to those keys only, so a run records, and `--set` accepts, the keys of
its own family and no other. The values of every layer live in `odtbench.config`, the
tasks' rows (`odtbench.tasks.TaskHyperparameters`, given by each suite) and the method
specs; a schema holds names and types only.

Families: `Protocol` (what every method shares: the budget and the evaluation; also the
schema of external methods), `TrajectoryTransformer` (the transformer and iteration keys
the DT family and PDT share), `DTHyperparameters` (ODT, TD3+ODT, DDPG+ODT, TD3, SAC+ODT,
SAC: docs/methods/dt-family.md) and its extensions for the RL kinds with keys of their own
(IQL+ODT, AWAC, AWR, PPO). The baselines declare theirs next to their specs
(`odtbench_baselines`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from odtbench.errors import OdtbenchError

# Every scale a run's hyperparameters and a task's dataset are resolved at (docs/scales.md):
# the one list (odtbench.config and odtbench.data.build read it).
SCALES = ("smoke", "quick", "standard", "paper")
# The scale the workflow and the suite commands use unless told otherwise: the smallest that
# shows the study's MuJoCo result (docs/scales.md).
DEFAULT_SCALE = "standard"
# A scale built on another: it trains on its base's datasets (the same files) and applies its
# base's size layers before its own, so it states only what it changes.
SCALE_BASE: dict[str, str] = {"standard": "quick"}


def scale_layers(scale: str) -> tuple[str, ...]:
    """The scales whose size layers a run at `scale` applies, base first."""
    base = SCALE_BASE.get(scale)
    return (*scale_layers(base), scale) if base else (scale,)


def data_scale(scale: str) -> str:
    """The scale whose dataset files a run at `scale` trains on."""
    return scale_layers(scale)[0]


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """The protocol every method shares (docs/methods/dt-family.md §5)."""

    online_budget: int  # online transitions
    eval_episodes: int
    max_episode_len: int
    divergence_q_bound: float  # |Q| beyond this ends the run as diverged


@dataclass(frozen=True, kw_only=True)
class TrajectoryTransformer(Protocol):
    """A transformer over trajectory segments and its iteration protocol: what the DT family
    and PDT share (docs/methods/dt-family.md §1, §5)."""

    embed_dim: int
    n_layer: int
    n_head: int
    dropout: float
    embed_dropout: float  # the embeddings' own dropout (docs/fidelity.md)
    context_len: int
    eval_context_len: int
    batch_size: int
    # LAMB with a linear warm-up, and the stochastic head's temperature
    lr_actor: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    init_temperature: float
    reward_scale: float  # RTG scale at the input
    drop_lowest_return: bool
    # pretraining iterations, online iterations, trajectory FIFO, evaluation schedule
    pretrain_iters: int
    pretrain_updates: int
    checkpoint_every_updates: int
    online_updates_per_iter: int
    min_transitions_per_iter: int
    max_online_iters: int
    replay_size: int
    eval_interval: int

    def __post_init__(self) -> None:
        if self.embed_dim % self.n_head:
            raise OdtbenchError(f"embed_dim {self.embed_dim} is not divisible by n_head {self.n_head}")


@dataclass(frozen=True, kw_only=True)
class DTHyperparameters(TrajectoryTransformer):
    """The DT family's agent and protocol (docs/methods/dt-family.md §6)."""

    actor_optimizer: str  # "lamb" (the study), "adam" (the toy)
    stochastic: bool
    entropy_reg: bool
    # critic and TD3
    critic_hidden: int
    critic_layernorm: bool
    n_critics: int
    lr_critic: float
    critic_weight_decay: float
    gamma: float
    tau: float
    policy_noise: float
    noise_clip: float
    actor_update_interval: int
    expl_noise: float
    rl_kind: str  # a registered RL kind (odtbench.methods.rl_kinds)
    rl_coeff: float
    sup_coeff: float
    rl_from_start: bool
    # online iterations and evaluation
    online_updates_mode: str  # "fixed" updates per iteration, or one "epoch" (the toy)
    eval_rtg: float
    online_rtg: float
    # the toy's protocol only (docs/fidelity.md): new optimisers online, a constant RTG input
    fresh_optimizers_online: bool
    train_rtg_constant: float | None

    def __post_init__(self) -> None:
        if self.n_critics < 1 or self.actor_update_interval < 1:
            raise OdtbenchError("n_critics and actor_update_interval must be >= 1")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class IQLODTHyperparameters(DTHyperparameters):
    """IQL+ODT (docs/methods/iql-odt.md): expectile V, advantage-weighted DT term."""

    iql_expectile: float
    iql_temperature: float  # beta in exp(beta (Q - V))
    iql_max_weight: float


@dataclass(frozen=True, kw_only=True)
class AWACHyperparameters(DTHyperparameters):
    """AWAC on the DT (docs/methods/awac.md)."""

    awac_lambda: float  # w = exp(A / lambda)
    awac_max_weight: float


@dataclass(frozen=True, kw_only=True)
class AWRHyperparameters(DTHyperparameters):
    """AWR on the DT (docs/methods/awr.md)."""

    awr_beta: float  # w = exp(A / beta)
    awr_max_weight: float
    awr_lambda: float  # TD(lambda) of the value targets


@dataclass(frozen=True, kw_only=True)
class PPOHyperparameters(DTHyperparameters):
    """PPO on the DT (docs/methods/ppo.md)."""

    ppo_clip: float  # epsilon of the clipped surrogate
    ppo_lambda: float  # lambda of the advantage's value targets


@cache
def schema_types(schema: type) -> dict[str, type]:
    """{key: type} of a schema's fields, in declaration order."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def check_value(key: str, value: Any, want: type, method: str) -> None:
    """One-line error unless `value` has the key's type (an int is a valid float); an
    optional type (`float | None`) also takes None."""
    args = [a for a in typing.get_args(want) if a is not type(None)]
    if args:
        if value is None:
            return
        want = args[0]
    if want is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, want)
    if not ok:
        raise OdtbenchError(f"{method}: hyperparameter {key} must be a {want.__name__}, got "
                            f"{value!r}; fix the preset or the --set override")


def build(schema: type, values: Mapping[str, Any], method: str) -> Any:
    """The typed hyperparameters of a run (runs the schema's own checks)."""
    types = schema_types(schema)
    missing = [k for k in types if k not in values]
    if missing:
        raise OdtbenchError(f"{method}: hyperparameter {missing[0]} has no value; give it one "
                            "in the method's preset")
    for key, want in types.items():
        check_value(key, values[key], want, method)
    return schema(**{k: values[k] for k in types})
