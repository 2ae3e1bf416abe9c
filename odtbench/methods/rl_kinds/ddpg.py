"""rl_kind 'ddpg' (DDPG+ODT, docs/methods/ddpg-odt.md): TD3 with one critic, no target
smoothing and actor update interval 1 (a preset). Not in the authors' code."""

from __future__ import annotations

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.schemas import DTHyperparameters
from odtbench.methods.rl_kinds.td3 import TD3


class DDPG(TD3):
    @classmethod
    def check(cls, name: str, hp: DTHyperparameters) -> None:
        if hp.n_critics != 1 or hp.policy_noise != 0:
            raise OdtbenchError("rl_kind 'ddpg' needs n_critics=1 and policy_noise=0; use "
                                "rl_kind 'td3' for twin critics with target smoothing")


__all__ = ["DDPG"]
