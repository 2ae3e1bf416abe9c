"""rl_kind 'none' (ODT, docs/methods/odt.md): the supervised loss alone, no critic.

The authors' code trains a critic that the actor never uses; building none changes nothing
the actor sees (docs/methods/dt-family.md §8)."""

from __future__ import annotations

from odtbench.methods.rl_kinds.base import RLKind


class Supervised(RLKind):
    """No critic, no RL term: `critic_loss` and `rl_term` refuse (RLKind's defaults)."""


__all__ = ["Supervised"]
