"""The one registry of the suite's methods.

A method is a `MethodSpec`: a name, a family, its family's typed hyperparameter schema, the
overrides that define it (applied by `odtbench.hyperparameters.resolve` on top of the domain defaults) and the
dotted path of the function that runs it. Each method's page is `doc_page(name)`. The DT
methods (the study's four and its ablations' RL kinds) are presets of one agent
(`odtbench.methods.dt_agent.DTAgent`), registered here. Every other method, the study's
baselines (TD3+BC, IQL, PDT in `odtbench_baselines`) included, is a plug-in: it registers
through the "odtbench.methods" entry-point group, loaded lazily on the first lookup, so the
core never imports its plug-ins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.schemas import (
    AWACHyperparameters,
    AWRHyperparameters,
    DTHyperparameters,
    IQLODTHyperparameters,
    PPOHyperparameters,
)

ENTRY_POINT_GROUP = "odtbench.methods"
# The study's legend order (paper figures and tables); others follow in registration order.
LEGEND_ORDER = ("TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT")
# What a method is to the study: a method its tables compare, one of its ablation kinds (run
# in reports/ablations.html only), a floor (a reference the tables need beside them, drawn
# and labelled as such and never ranked with the study's methods), or "" (a plug-in's own).
ROLES = ("study", "ablation", "floor", "")
DT_RUNNER = "odtbench.runcore.dt_loop:run"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method. `preset` holds the hyperparameter overrides that define it."""

    name: str
    family: str  # "dt" (the ODT family), "mlp", "pdt", ...
    preset: dict[str, Any] = field(default_factory=dict)
    runner: str = DT_RUNNER  # "package.module:function"
    description: str = ""
    paper_name: str = ""
    # Method-specific values per suite (e.g. IQL's expectile per domain) and per scale
    # (e.g. a baseline's own pretraining budget); applied after the generic layers.
    suite_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The family's typed schema (`odtbench.hyperparameters.schemas`): the only keys a run of this
    # method resolves, records and accepts. None: the shared protocol plus the preset's keys.
    hyperparameters: type | None = None
    # Where a preset value comes from, per key (config.json's sources), where the method's
    # name alone does not say it: e.g. an original algorithm's published default.
    preset_sources: dict[str, str] = field(default_factory=dict)
    role: str = ""  # one of ROLES
    # A floor's suites: where `methods: all` plans it beside the study's methods.
    floor_suites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.family:
            raise OdtbenchError(f"method spec {self!r} needs a non-empty name and family")
        if self.role not in ROLES:
            raise OdtbenchError(f"method {self.name!r}: role {self.role!r} is not one of "
                                f"{', '.join(repr(r) for r in ROLES)}")
        if self.floor_suites and self.role != "floor":
            raise OdtbenchError(f"method {self.name!r} lists floor_suites but its role is "
                                f"{self.role!r}; set role='floor' or drop floor_suites")
        module, _, attr = self.runner.partition(":")
        if not module or not attr:
            raise OdtbenchError(f"method {self.name!r}: runner {self.runner!r} must look like "
                                "'package.module:function'")

    def load_runner(self) -> Callable[..., Any]:
        """Import and return the function that runs this method."""
        module, _, attr = self.runner.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise OdtbenchError(f"method {self.name!r}: cannot load runner {self.runner!r} "
                                f"({exc}); fix the spec's runner path") from exc


def doc_page(name: str) -> str:
    """The method's page, relative to the repository root: "TD3+ODT" -> docs/methods/td3-odt.md."""
    return f"docs/methods/{name.lower().replace('+', '-')}.md"


_REGISTRY: dict[str, MethodSpec] = {}
_plugins_loaded = False


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add a method; registering an existing name raises unless replace=True."""
    if not isinstance(spec, MethodSpec):
        raise OdtbenchError(f"register() takes a MethodSpec, got {type(spec).__name__}")
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec and not replace:
        raise OdtbenchError(f"method {spec.name!r} is already registered; pick another name "
                            "or pass replace=True")
    _REGISTRY[spec.name] = spec
    return spec


def _register_entry_point_value(value: Any, source: str) -> None:
    """An entry point may give a MethodSpec, an iterable of them, or a callable returning
    either (or None, if it registered its methods itself)."""
    if callable(value) and not isinstance(value, MethodSpec):
        value = value()
    if value is None:
        return
    if isinstance(value, MethodSpec):
        specs: list[Any] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        specs = list(value)
    else:
        specs = [value]
    for spec in specs:
        if not isinstance(spec, MethodSpec):
            raise OdtbenchError(f"entry point {source} gave {type(spec).__name__}, expected "
                                "MethodSpec; return MethodSpec objects")
        register(spec)


def _load_plugins() -> None:
    """Load the "odtbench.methods" entry points (the baselines' among them), once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: plugins call register(), which must not recurse here
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            value = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise OdtbenchError(f"cannot load method plugin {ep.name!r} ({ep.value}): {exc}; "
                                "fix or uninstall that package") from exc
        _register_entry_point_value(value, f"{ep.name!r} ({ep.value})")


def list_methods() -> list[str]:
    """Registered method names: the study's legend order first, then the others."""
    _load_plugins()
    known = [name for name in LEGEND_ORDER if name in _REGISTRY]
    return known + [name for name in _REGISTRY if name not in LEGEND_ORDER]


def get_method(name: str) -> MethodSpec:
    """The spec of a registered method; unknown names raise UnknownChoiceError."""
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownChoiceError("method", name, list_methods()) from None


# The study's four DT methods: presets of one agent (docs/methods/; paper §4.2).
DT_METHODS = (
    MethodSpec(
        name="ODT", family="dt", role="study",
        hyperparameters=DTHyperparameters, paper_name="ODT",
        preset={"stochastic": True, "entropy_reg": True, "rl_kind": "none",
                "rl_coeff": 0.0, "sup_coeff": 1.0},
        description="Online Decision Transformer: squashed-Gaussian DT, supervised NLL with "
                    "entropy regularisation, no RL gradient (the authors' code still trains an "
                    "unused critic; skipping it changes nothing the actor sees)",
    ),
    MethodSpec(
        name="TD3+ODT", family="dt", role="study",
        hyperparameters=DTHyperparameters, paper_name="TD3+ODT",
        preset={"stochastic": False, "entropy_reg": False, "rl_kind": "td3",
                "rl_coeff": 0.1, "sup_coeff": 1.0},
        description="deterministic DT; supervised MSE plus 0.1 x TD3 actor gradient (the study)",
    ),
    MethodSpec(
        name="DDPG+ODT", family="dt", role="study",
        hyperparameters=DTHyperparameters, paper_name="DDPG+ODT",
        preset={"stochastic": False, "entropy_reg": False, "rl_kind": "ddpg",
                "n_critics": 1, "policy_noise": 0.0, "actor_update_interval": 1,
                "rl_coeff": 0.1, "sup_coeff": 1.0},
        description="as TD3+ODT with a DDPG critic: one critic, no target smoothing, no delay",
    ),
    MethodSpec(
        name="TD3", family="dt", role="study",
        hyperparameters=DTHyperparameters, paper_name="TD3",
        preset={"stochastic": False, "entropy_reg": False, "rl_kind": "td3",
                "rl_coeff": 0.1, "sup_coeff": 0.0},
        description="TD3 gradient only during online finetuning of a DT actor; pretraining "
                    "stays supervised",
    ),
)

# The study's ablations (paper App. C): other RL gradients on the same DT. Where the study
# gives no value, the original algorithm's published default (sources per key below and on
# each method's page).
_SRC_D1 = "one critic update per actor update, as the original algorithm"
_SRC_ALPHA = ("the authors' code default actor_rl_coeff 0.1, as TD3's (the study gives none "
              "for this kind)")
_SRC_RL_ONLY = "RL gradient only online on a supervised-pretrained DT (paper Fig. 8), as TD3"
# Stochastic kinds pretrain as ODT does: NLL with the entropy term (paper App. C: the
# stochastic-policy algorithms use ODT's squashed-Gaussian head).
_ODT_HEAD = {"stochastic": True, "entropy_reg": True}
# With dropout, pi (training mode) and pi_old differ by their dropout masks alone, and on a
# tanh-Gaussian's |log pi| of hundreds exp(log pi - log pi_old) overflows in the first update
# (docs/methods/ppo.md); PPO on transformers (RLHF) runs without dropout for this reason.
_SRC_PPO_DROPOUT = "off for PPO: the ratio pi/pi_old must not see dropout (docs/methods/ppo.md)"
_SRC_ODT_HEAD = "ODT's squashed-Gaussian head and pretraining (paper App. C)"
# What the RL-only kinds on ODT's head (AWAC, AWR, PPO) share, with the sources of each key.
_RL_ONLY_ON_ODT_HEAD = {**_ODT_HEAD, "actor_update_interval": 1, "rl_coeff": 0.1, "sup_coeff": 0.0}
_RL_ONLY_ON_ODT_HEAD_SOURCES = {"stochastic": _SRC_ODT_HEAD, "entropy_reg": _SRC_ODT_HEAD,
                                "sup_coeff": _SRC_RL_ONLY, "rl_coeff": _SRC_ALPHA,
                                "actor_update_interval": _SRC_D1}
ABLATION_METHODS = (
    MethodSpec(
        name="SAC+ODT", family="dt", role="ablation",
        hyperparameters=DTHyperparameters, paper_name="SAC+ODT",
        preset={"stochastic": True, "entropy_reg": False, "rl_kind": "sac",
                "actor_update_interval": 1, "rl_coeff": 0.1, "sup_coeff": 1.0},
        preset_sources={"rl_coeff": "paper Fig. 9 (coefficient 0.1)",
                        "entropy_reg": "authors' code: SAC runs without ODT's entropy flag; its "
                                       "entropy term is the RL term's",
                        "actor_update_interval": "authors' code asserts d = 1 for SAC"},
        description="stochastic DT; ODT's supervised NLL plus 0.1 x SAC actor gradient, twin "
                    "soft critics, entropy temperature (paper Fig. 9)",
    ),
    MethodSpec(
        name="SAC", family="dt", role="ablation",
        hyperparameters=DTHyperparameters, paper_name="SAC",
        preset={"stochastic": True, "entropy_reg": False, "rl_kind": "sac",
                "actor_update_interval": 1, "rl_coeff": 0.1, "sup_coeff": 0.0},
        preset_sources={"sup_coeff": _SRC_RL_ONLY, "rl_coeff": _SRC_ALPHA,
                        "entropy_reg": "authors' code: SAC runs without ODT's entropy flag",
                        "actor_update_interval": "authors' code asserts d = 1 for SAC"},
        description="SAC gradient only during online finetuning of a stochastic DT (paper Fig. 8)",
    ),
    MethodSpec(
        name="IQL+ODT", family="dt", role="ablation",
        hyperparameters=IQLODTHyperparameters, paper_name="IQL+ODT",
        preset={"stochastic": False, "entropy_reg": False, "rl_kind": "iql",
                "actor_update_interval": 1, "rl_coeff": 0.1, "sup_coeff": 1.0,
                "iql_expectile": 0.7, "iql_temperature": 3.0, "iql_max_weight": 100.0},
        suite_presets={"antmaze": {"iql_expectile": 0.9, "iql_temperature": 10.0}},
        preset_sources={"stochastic": "TD3+ODT's deterministic DT, the RL term swapped",
                        "rl_coeff": _SRC_ALPHA, "actor_update_interval": _SRC_D1,
                        "iql_expectile": "IQL (Kostrikov et al. 2022) MuJoCo default; the "
                                         "authors' code default too",
                        "iql_temperature": "IQL (Kostrikov et al. 2022) MuJoCo beta; the "
                                           "authors' code default too",
                        "iql_max_weight": "IQL official code: weights clipped at 100"},
        description="deterministic DT; supervised MSE plus 0.1 x IQL's advantage-weighted "
                    "term, expectile V, Q on r + gamma V(s') (paper App. C, Fig. 11)",
    ),
    MethodSpec(
        name="AWAC", family="dt", role="ablation",
        hyperparameters=AWACHyperparameters, paper_name="AWAC",
        preset={**_RL_ONLY_ON_ODT_HEAD, "rl_kind": "awac", "awac_lambda": 1.0, "awac_max_weight": 20.0},
        preset_sources={**_RL_ONLY_ON_ODT_HEAD_SOURCES,
                        "awac_lambda": "AWAC (Nair et al. 2020) lambda 1.0; the authors' code "
                                       "beta 1 too",
                        "awac_max_weight": "the authors' code clips AWAC's weights at 20"},
        description="AWAC gradient only during online finetuning of a stochastic DT "
                    "(paper Fig. 8): Q-based advantage, exp(A / lambda)-weighted NLL",
    ),
    MethodSpec(
        name="AWR", family="dt", role="ablation",
        hyperparameters=AWRHyperparameters, paper_name="AWR",
        preset={**_RL_ONLY_ON_ODT_HEAD, "rl_kind": "awr", "awr_beta": 1.0, "awr_max_weight": 20.0,
                "awr_lambda": 0.98},
        preset_sources={**_RL_ONLY_ON_ODT_HEAD_SOURCES,
                        "awr_beta": "AWR (Peng et al. 2019) temperature 1.0; the authors' code too",
                        "awr_max_weight": "AWR (Peng et al. 2019) weight clip 20; the authors' "
                                          "code too",
                        "awr_lambda": "the authors' code default TD(lambda) 0.98 (AWR, Peng et "
                                      "al. 2019: 0.95)"},
        description="AWR gradient only during online finetuning of a stochastic DT (paper "
                    "Fig. 8): V on TD(lambda) targets, exp(A / beta)-weighted NLL",
    ),
    MethodSpec(
        name="PPO", family="dt", role="ablation",
        hyperparameters=PPOHyperparameters, paper_name="PPO",
        preset={**_RL_ONLY_ON_ODT_HEAD, "rl_kind": "ppo", "ppo_clip": 0.2, "ppo_lambda": 0.98,
                "dropout": 0.0, "embed_dropout": 0.0},
        preset_sources={"dropout": _SRC_PPO_DROPOUT, "embed_dropout": _SRC_PPO_DROPOUT,
                        **_RL_ONLY_ON_ODT_HEAD_SOURCES,
                        "ppo_clip": "PPO (Schulman et al. 2017) clip 0.2; the authors' code too",
                        "ppo_lambda": "the authors' code default GAE lambda 0.98 (PPO, Schulman "
                                      "et al. 2017: 0.95)"},
        description="PPO gradient only during online finetuning of a stochastic DT (paper "
                    "Figs. 8, 10): clipped surrogate against the round's pi_old, V baseline; "
                    "pi/pi_old in diagnostics.csv",
    ),
)
for _spec in (*DT_METHODS, *ABLATION_METHODS):
    register(_spec)
