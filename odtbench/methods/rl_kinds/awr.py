"""rl_kind 'awr' (AWR, docs/methods/awr.md; paper Fig. 8).

Critic: V alone on TD(lambda) targets of the target V. Actor term: -mean_real(w log pi(a_data)),
w = min(exp(A / beta), max_weight), A = G^lambda - V(s). No Q: the diagnostics' q_s0 is V's."""

from __future__ import annotations

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import AWRHyperparameters, DTHyperparameters
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds.base import Batch, Critic, RLKind


class AWR(RLKind):
    schema = AWRHyperparameters
    hp: AWRHyperparameters

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"value": self.v_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return self.lambda_value_loss(batch, self.hp.awr_lambda)

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        log_lik = self.log_likelihood(out, batch["actions"])
        with torch.no_grad():
            adv = (self.lambda_targets(batch, self.hp.awr_lambda)
                   - self.v(self.critics["value"].net, batch["states"]))
            weights = L.exp_weights(adv, 1.0 / self.hp.awr_beta, self.hp.awr_max_weight)
        return L.weighted_log_lik_loss(weights, log_lik, batch["mask"])


__all__ = ["AWR"]
