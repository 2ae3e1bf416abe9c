"""rl_kind 'sac' (SAC+ODT, SAC; docs/methods/sac-odt.md, sac.md; paper Figs. 8, 9).

Twin soft critics: y = r + gamma (1 - d) (min_i Q_i'(s', a') - T log pi(a' | s')), a'
sampled from the target DT. Actor term: mean_real(T log pi(a~) - min_i Q_i(s, a~)), a~
reparameterised from pi. The temperature moves by ODT's rule even with ODT's entropy term off."""

from __future__ import annotations

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import DTHyperparameters
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds.base import Batch, Critic, RLKind


class SAC(RLKind):
    target_actor = True
    moves_temperature = True

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"critic": self.q_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            next_actions, next_log_prob = self.next_actions(batch)
            assert next_log_prob is not None  # the stochastic head (needs_log_pi)
            q_next = self.critics["critic"].target(batch["next_states"], next_actions).min(dim=0).values
            y = L.soft_td_target(batch["rewards"], batch["dones"], q_next, next_log_prob,
                                 self.agent.temperature.value(), self.agent.gamma)
        return self.q_td_loss(batch, y)

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        assert isinstance(out, SquashedGaussian)
        sampled, log_prob = out.rsample_with_log_prob()
        q_min = self.q_min(batch["states"], sampled)
        return L.sac_actor_loss(log_prob, q_min, self.agent.temperature.value().detach(),
                                batch["mask"])


__all__ = ["SAC"]
