"""The DT agent's RL kinds (`rl_kind`): one module per kind, registered here.

A kind is the RL objective the DT agent adds to its supervised loss (paper Eq. 2, App. C):
the critics it trains, their loss, the actor's RL term L_RL, and optional round hook,
diagnostics and checkpoint entries (`odtbench.methods.rl_kinds.base.RLKind`).
`odtbench.methods.dt_agent.DTAgent` holds what all kinds share and calls its kind.

This module stays free of torch: config checks read the names and whether a kind needs
log pi (the stochastic head) before any network exists; a kind's class is imported on
first use. Adding a kind = its module, one `register_kind` line below (or in a plug-in),
its page under docs/methods/ and its test (docs/methods/dt-family.md, "RL kinds").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odtbench.errors import OdtbenchError, UnknownChoiceError

if TYPE_CHECKING:
    from odtbench.methods.rl_kinds.base import RLKind


@dataclass(frozen=True)
class KindEntry:
    """A registered kind: its `rl_kind` name, where its class lives ("module:Class") and
    whether its RL term needs log pi, i.e. the squashed-Gaussian head."""

    name: str
    target: str
    needs_log_pi: bool = False


_KINDS: dict[str, KindEntry] = {}


def register_kind(name: str, target: str, *, needs_log_pi: bool = False) -> None:
    """Register the `RLKind` subclass at `target` ("package.module:Class") as rl_kind `name`."""
    if not name or ":" not in target:
        raise OdtbenchError(f"rl_kind {name!r}: target {target!r} must be 'module:Class'")
    if name in _KINDS:
        raise OdtbenchError(f"rl_kind {name!r} is already registered ({_KINDS[name].target})")
    _KINDS[name] = KindEntry(name, target, needs_log_pi)


def unregister_kind(name: str) -> None:
    """Remove a kind (tests register worked examples and remove them again)."""
    _KINDS.pop(name, None)


def kind_names() -> tuple[str, ...]:
    """Every registered rl_kind, in registration order."""
    return tuple(_KINDS)


def kind_entry(name: str) -> KindEntry:
    if name not in _KINDS:
        raise UnknownChoiceError("rl_kind", name, list(_KINDS))
    return _KINDS[name]


def log_pi_kinds() -> tuple[str, ...]:
    """The kinds whose RL term needs log pi (the stochastic head)."""
    return tuple(n for n, e in _KINDS.items() if e.needs_log_pi)


def load_kind(name: str) -> type[RLKind]:
    """The class of rl_kind `name` (imports its module, and torch, on first use)."""
    from odtbench.methods.rl_kinds.base import RLKind

    module, _, attr = kind_entry(name).target.partition(":")
    cls = getattr(importlib.import_module(module), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, RLKind)):
        raise OdtbenchError(f"rl_kind {name!r}: {module}:{attr} is not an RLKind subclass")
    return cls


_HERE = __name__
register_kind("td3", f"{_HERE}.td3:TD3")  # TD3+ODT, TD3 (the study)
register_kind("ddpg", f"{_HERE}.ddpg:DDPG")  # DDPG+ODT
register_kind("none", f"{_HERE}.none:Supervised")  # ODT: no RL term, no critic
register_kind("sac", f"{_HERE}.sac:SAC", needs_log_pi=True)  # SAC+ODT, SAC (paper Figs. 8, 9)
register_kind("iql", f"{_HERE}.iql:IQL")  # IQL+ODT (paper App. C, Fig. 11)
register_kind("awac", f"{_HERE}.awac:AWAC", needs_log_pi=True)  # AWAC (paper Fig. 8)
register_kind("awr", f"{_HERE}.awr:AWR", needs_log_pi=True)  # AWR (paper Fig. 8)
register_kind("ppo", f"{_HERE}.ppo:PPO", needs_log_pi=True)  # PPO (paper Figs. 8, 10)

__all__ = ["KindEntry", "register_kind", "unregister_kind", "kind_names", "kind_entry",
           "log_pi_kinds", "load_kind"]
