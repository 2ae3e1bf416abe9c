"""rl_kind 'iql' (IQL+ODT, docs/methods/iql-odt.md; paper App. C, Fig. 11).

Critics: Q on y = r + gamma (1 - d) V(s') (in-sample, no next action) plus V's expectile
loss mean_real |tau - 1(u < 0)| u^2, u = min_i Q_targ,i(s, a) - V(s). Actor term:
-mean_real(w log pi(a_data)), w = min(exp(beta A), max_weight), A = min_i Q_targ,i(s, a) - V(s).
The target DT is unused by its losses but Polyak-averaged as for the other Q kinds, so its
checkpoints hold the same entries."""

from __future__ import annotations

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import DTHyperparameters, IQLODTHyperparameters
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds.base import Batch, Critic, RLKind


class IQL(RLKind):
    schema = IQLODTHyperparameters
    hp: IQLODTHyperparameters
    target_actor = True

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"critic": self.q_critic(hp), "value": self.v_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        q, v = self.critics["critic"], self.critics["value"]
        with torch.no_grad():
            y = self.bootstrap(batch, self.v(v.net, batch["next_states"]))
        loss, q_mean = self.q_td_loss(batch, y)
        with torch.no_grad():
            q_data = q.target(batch["states"], batch["actions"]).min(dim=0).values
        u = q_data - self.v(v.net, batch["states"])
        return loss + L.expectile_loss(u, self.hp.iql_expectile, batch["mask"]), q_mean

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        states, actions = batch["states"], batch["actions"]
        log_lik = self.log_likelihood(out, actions)
        with torch.no_grad():
            adv = (self.critics["critic"].target(states, actions).min(dim=0).values
                   - self.v(self.critics["value"].net, states))
            weights = L.exp_weights(adv, self.hp.iql_temperature, self.hp.iql_max_weight)
        return L.weighted_log_lik_loss(weights, log_lik, batch["mask"])


__all__ = ["IQL"]
