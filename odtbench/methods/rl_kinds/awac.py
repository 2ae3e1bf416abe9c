"""rl_kind 'awac' (AWAC, docs/methods/awac.md; paper Fig. 8).

Twin Q critic as TD3's without target smoothing. Actor term: -mean_real(w log pi(a_data)),
w = min(exp(A / lambda), max_weight), A = min_i Q_i(s, a) - min_i Q_i(s, a~), a~ ~ pi."""

from __future__ import annotations

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import AWACHyperparameters, DTHyperparameters
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds.base import Batch, Critic, RLKind


class AWAC(RLKind):
    schema = AWACHyperparameters
    hp: AWACHyperparameters
    target_actor = True

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"critic": self.q_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            next_actions, _ = self.next_actions(batch)
            target = self.critics["critic"].target
            y = self.bootstrap(batch, target(batch["next_states"], next_actions).min(dim=0).values)
        return self.q_td_loss(batch, y)

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        states, actions = batch["states"], batch["actions"]
        log_lik = self.log_likelihood(out, actions)
        with torch.no_grad():
            assert isinstance(out, SquashedGaussian)
            adv = self.q_min(states, actions) - self.q_min(states, out.rsample())
            weights = L.exp_weights(adv, 1.0 / self.hp.awac_lambda, self.hp.awac_max_weight)
        return L.weighted_log_lik_loss(weights, log_lik, batch["mask"])


__all__ = ["AWAC"]
