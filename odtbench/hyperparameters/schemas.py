"""Typed hyperparameters: one schema per method family.

A schema is a frozen dataclass whose fields are exactly the keys a family's code reads, with
their types. `odtbench.hyperparameters.resolve.resolve` applies its layers (defaults, domain row, method
preset, scale, user) to those keys only, so a run records, and `--set` accepts, the keys of
its own family and no other. The values of every layer live in `odtbench.hyperparameters.resolve`, the
tasks' rows (`odtbench.tasks.TaskHyperparameters`, given by each suite) and the method
specs; a schema holds names, types and each key's valid values (`Range`, `Choices`, with an
upper bound for every number: docs/contracts.md, "Hyperparameter bounds"), and says what
memory one update at its sizes needs (`memory_bytes`).

Families: `Protocol` (what every method shares: the budget and the evaluation; also the
schema of external methods), `TrajectoryTransformer` (the transformer and iteration keys
the DT family and PDT share), `DTHyperparameters` (ODT, TD3+ODT, DDPG+ODT, TD3, SAC+ODT,
SAC: docs/methods/dt-family.md) and its extensions for the RL kinds with keys of their own
(IQL+ODT, AWAC, AWR, PPO). The baselines declare theirs next to their specs
(`odtbench_baselines`).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar

from odtbench.errors import OdtbenchError

# Every scale a run's hyperparameters and a task's dataset are resolved at (docs/scales.md):
# the one list (odtbench.hyperparameters.resolve and odtbench.data.build read it).
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


@dataclass(frozen=True)
class Range:
    """A numeric key's valid values, `low` to `high`, each end open or closed.

    `ceiling` says why `high` is the most a run takes where it is a limit of what a machine
    can hold or finish, not of the quantity itself (a probability's 1 needs no reason): such a
    bound stops a typo such as `batch_size=100000000000` with one line, before torch would
    die on it (docs/contracts.md, "Hyperparameter bounds")."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    ceiling: str = ""

    def contains(self, value: float) -> bool:
        lo_ok = value > self.low if self.low_open else value >= self.low
        hi_ok = value < self.high if self.high_open else value <= self.high
        return lo_ok and hi_ok

    def text(self, value: float | None = None) -> str:
        """What is valid, said for `value`: a ceiling is named only to a value above it."""
        low = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if not self.ceiling:
            return (f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}"
                    f"{')' if self.high_open else ']'}")
        if value is None or self.contains(value) or (value <= self.low if self.low_open
                                                       else value < self.low):
            return low
        return (f"{low} and {'<' if self.high_open else '<='} {_num(self.high)} "
                f"({self.ceiling})")


def _num(x: float) -> str:
    """1048576, not 1.04858e+06; 1e+09 and 1e+38 as such."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e7 else f"{x:g}"


@dataclass(frozen=True)
class Choices:
    """A string key's valid values: a tuple, or a function giving them (a registry's names,
    plug-ins included, read when a run is resolved)."""

    values: tuple[str, ...] | Callable[[], tuple[str, ...]]

    def names(self) -> tuple[str, ...]:
        return self.values if isinstance(self.values, tuple) else self.values()


# The bounds the schemas' fields share. Upper bounds are what one run can hold or finish, far
# beyond every preset (paper scale: width 512, K 20, batch 256, 1M steps), so no study value
# meets them; the memory of sizes together is checked by `memory_bytes` (odtbench/hyperparameters/checks.py).
_GIB_MATRIX = "a wider layer's weight matrix alone is over 1 GiB"
WIDTH = Range(0, 16_384, low_open=True, ceiling=_GIB_MATRIX)
DEPTH = Range(0, 256, low_open=True, ceiling="deeper than any network this suite trains")
HEADS = Range(0, 256, low_open=True, ceiling="more heads than any width the suite holds")
ENSEMBLE = Range(0, 64, low_open=True, ceiling="more critics than any ensemble in the study")
CONTEXT = Range(0, 4_096, low_open=True,
                ceiling="3 tokens a step: a longer context's attention does not fit in memory")
BATCH = Range(0, 1_048_576, low_open=True,
              ceiling="a larger batch's tensors do not fit in memory")
# updates, iterations, transitions, steps: more than any run can finish
_FOREVER = "a run of more would not finish"
COUNT = Range(0, 1_000_000_000, low_open=True, ceiling=_FOREVER)
COUNT0 = Range(0, 1_000_000_000, ceiling=_FOREVER)  # may be 0
REPLAY = Range(0, 100_000_000, low_open=True,
               ceiling="100x the official 1M-transition buffer; more does not fit in memory")
LR = Range(0, 10, low_open=True, ceiling="a step 10x the weights diverges at once")
# loss weights, temperatures, scales, decays, noise, clip norms
_HUGE = "beyond float32 precision of the losses it scales"
POSITIVE = Range(0, 1e6, low_open=True, ceiling=_HUGE)
NONNEG = Range(0, 1e6, ceiling=_HUGE)
Q_BOUND = Range(0, 1e38, low_open=True, ceiling="float32's largest value is 3.4e38")
# a scale any finite value of which trains or ends as a recorded divergence, never a crash
ANY_SCALE = Range(0, sys.float_info.max, low_open=True,
                  ceiling="the largest float; a huge scale ends the run as diverged")
RETURN = Range(-1e12, 1e12, ceiling="a return float32 cannot resolve")
LOG_STD = Range(-20, 20, ceiling="exp() of it over- or underflows float32")
UNIT = Range(0, 1)
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)
HALF_OPEN_UNIT = Range(0, 1, high_open=True)


def _rl_kinds() -> tuple[str, ...]:
    """The registered RL kinds (odtbench.methods.rl_kinds, torch-free), plug-ins included."""
    from odtbench.methods.rl_kinds import kind_names

    return kind_names()


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """The protocol every method shares (docs/methods/dt-family.md §5)."""

    online_budget: Annotated[int, COUNT]  # online transitions
    eval_episodes: Annotated[int, COUNT]
    max_episode_len: Annotated[int, COUNT]
    divergence_q_bound: Annotated[float, Q_BOUND]  # |Q| beyond this ends the run as diverged

    # the sizes `memory_bytes` grows with (the keys its error names)
    memory_keys: ClassVar[tuple[str, ...]] = ()

    def memory_bytes(self) -> int:
        """Float32 bytes one training update needs at least (weights and the activations
        kept for the backward pass, counted from below): `odtbench.hyperparameters.resolve.resolve` refuses
        values whose update cannot fit in this machine's memory. 0: sizes of its own."""
        return 0


@dataclass(frozen=True, kw_only=True)
class TrajectoryTransformer(Protocol):
    """A transformer over trajectory segments and its iteration protocol: what the DT family
    and PDT share (docs/methods/dt-family.md §1, §5)."""

    embed_dim: Annotated[int, WIDTH]
    n_layer: Annotated[int, DEPTH]
    n_head: Annotated[int, HEADS]
    dropout: Annotated[float, HALF_OPEN_UNIT]
    # the embeddings' own dropout (docs/fidelity.md)
    embed_dropout: Annotated[float, HALF_OPEN_UNIT]
    context_len: Annotated[int, CONTEXT]
    eval_context_len: Annotated[int, CONTEXT]
    batch_size: Annotated[int, BATCH]
    # LAMB with a linear warm-up, and the stochastic head's temperature
    lr_actor: Annotated[float, LR]
    weight_decay: Annotated[float, NONNEG]
    warmup_steps: Annotated[int, COUNT0]
    grad_clip: Annotated[float, NONNEG]
    init_temperature: Annotated[float, POSITIVE]
    reward_scale: Annotated[float, ANY_SCALE]  # RTG scale at the input
    drop_lowest_return: bool
    # pretraining iterations, online iterations, trajectory FIFO, evaluation schedule
    pretrain_iters: Annotated[int, COUNT]
    pretrain_updates: Annotated[int, COUNT0]
    checkpoint_every_updates: Annotated[int, COUNT]
    online_updates_per_iter: Annotated[int, COUNT]
    min_transitions_per_iter: Annotated[int, COUNT0]
    max_online_iters: Annotated[int, COUNT]
    replay_size: Annotated[int, COUNT]
    eval_interval: Annotated[int, COUNT]

    memory_keys: ClassVar[tuple[str, ...]] = (
        "batch_size", "context_len", "embed_dim", "n_layer", "n_head")

    def memory_bytes(self) -> int:
        # per layer, per segment: the attention weights (heads x tokens^2) and the MLP's
        # 4x-wide hidden layer (tokens x 4 embed_dim); 12 embed_dim^2 weights per layer
        tokens = 3 * self.context_len  # (RTG, state, action) per step
        acts = self.batch_size * self.n_layer * (self.n_head * tokens ** 2
                                                 + 4 * tokens * self.embed_dim)
        return 4 * (acts + 12 * self.n_layer * self.embed_dim ** 2)

    def __post_init__(self) -> None:
        if self.embed_dim % self.n_head:
            raise OdtbenchError(f"embed_dim {self.embed_dim} is not divisible by n_head "
                                f"{self.n_head}; change one of them")


@dataclass(frozen=True, kw_only=True)
class DTHyperparameters(TrajectoryTransformer):
    """The DT family's agent and protocol (docs/methods/dt-family.md §6)."""

    # "lamb" (the study), "adam" (the toy)
    actor_optimizer: Annotated[str, Choices(("lamb", "adam"))]
    stochastic: bool
    entropy_reg: bool
    # critic and TD3
    critic_hidden: Annotated[int, WIDTH]
    critic_layernorm: bool
    n_critics: Annotated[int, ENSEMBLE]
    lr_critic: Annotated[float, LR]
    critic_weight_decay: Annotated[float, NONNEG]
    gamma: Annotated[float, UNIT]
    tau: Annotated[float, UNIT]
    policy_noise: Annotated[float, NONNEG]
    noise_clip: Annotated[float, NONNEG]
    actor_update_interval: Annotated[int, COUNT]
    expl_noise: Annotated[float, NONNEG]
    rl_kind: Annotated[str, Choices(_rl_kinds)]  # a registered kind (odtbench.methods.rl_kinds)
    rl_coeff: Annotated[float, NONNEG]
    sup_coeff: Annotated[float, NONNEG]
    rl_from_start: bool
    # online iterations and evaluation
    # "fixed" updates per iteration, or one "epoch" (the toy)
    online_updates_mode: Annotated[str, Choices(("fixed", "epoch"))]
    eval_rtg: Annotated[float, RETURN]
    online_rtg: Annotated[float, RETURN]
    # the toy's protocol only (docs/fidelity.md): new optimisers online, a constant RTG input
    fresh_optimizers_online: bool
    train_rtg_constant: Annotated[float | None, RETURN]

    memory_keys: ClassVar[tuple[str, ...]] = (
        *TrajectoryTransformer.memory_keys, "critic_hidden", "n_critics")

    def memory_bytes(self) -> int:
        # each critic: two hidden layers' weights, and its hidden units for every batch entry
        critics = self.n_critics * (2 * self.critic_hidden ** 2
                                    + 2 * self.batch_size * self.context_len * self.critic_hidden)
        return super().memory_bytes() + 4 * critics

    def __post_init__(self) -> None:
        if self.n_critics < 1 or self.actor_update_interval < 1:
            raise OdtbenchError("n_critics and actor_update_interval must be >= 1")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class IQLODTHyperparameters(DTHyperparameters):
    """IQL+ODT (docs/methods/iql-odt.md): expectile V, advantage-weighted DT term."""

    iql_expectile: Annotated[float, OPEN_UNIT]
    iql_temperature: Annotated[float, POSITIVE]  # beta in exp(beta (Q - V))
    iql_max_weight: Annotated[float, POSITIVE]


@dataclass(frozen=True, kw_only=True)
class AWACHyperparameters(DTHyperparameters):
    """AWAC on the DT (docs/methods/awac.md)."""

    awac_lambda: Annotated[float, POSITIVE]  # w = exp(A / lambda)
    awac_max_weight: Annotated[float, POSITIVE]


@dataclass(frozen=True, kw_only=True)
class AWRHyperparameters(DTHyperparameters):
    """AWR on the DT (docs/methods/awr.md)."""

    awr_beta: Annotated[float, POSITIVE]  # w = exp(A / beta)
    awr_max_weight: Annotated[float, POSITIVE]
    awr_lambda: Annotated[float, UNIT]  # TD(lambda) of the value targets


@dataclass(frozen=True, kw_only=True)
class PPOHyperparameters(DTHyperparameters):
    """PPO on the DT (docs/methods/ppo.md)."""

    ppo_clip: Annotated[float, POSITIVE]  # epsilon of the clipped surrogate
    ppo_lambda: Annotated[float, UNIT]  # lambda of the advantage's value targets


@cache
def schema_types(schema: type) -> dict[str, type]:
    """{key: type} of a schema's fields, in declaration order."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


@cache
def schema_bounds(schema: type) -> dict[str, Range | Choices]:
    """{key: its Range or Choices} of the schema's fields that declare one (`Annotated`)."""
    hints = typing.get_type_hints(schema, include_extras=True)
    out: dict[str, Range | Choices] = {}
    for f in dataclasses.fields(schema):
        for meta in getattr(hints[f.name], "__metadata__", ()):
            if isinstance(meta, Range | Choices):
                out[f.name] = meta
    return out


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


S = TypeVar("S")


def as_schema(values: S | Mapping[str, Any], schema: type[S], method: str) -> S:
    """`values` as `schema`'s typed object: itself, or built (and checked) from a complete
    record of its keys (a resolved run's `hyperparameters`, in tests and benchmarks)."""
    if isinstance(values, schema):
        return values
    if isinstance(values, Mapping):
        return build(schema, values, method)
    raise OdtbenchError(f"{method}: hyperparameters {type(values).__name__} are not "
                        f"{schema.__name__}; build them with odtbench.hyperparameters.resolve.resolve")


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
