"""rl_kind 'td3' (TD3+ODT and TD3, docs/methods/td3-odt.md, td3.md; the study's method).

Critic (paper Eq. 3): y = r + gamma (1 - d) min_i Q_i'(s', a' + clip(noise)), a' from the
target DT on the shifted window. Actor term (paper Eq. 2): L_RL = -mean_real Q1(s_t, a*_t),
Q1 only, a*_t the deterministic output or tanh(mu) of the stochastic head."""

from __future__ import annotations

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import DTHyperparameters
from odtbench.methods.nets import SquashedGaussian
from odtbench.methods.rl_kinds.base import ACTION_BOUND, Batch, Critic, RLKind


class TD3(RLKind):
    target_actor = True

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"critic": self.q_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        a = self.agent
        with torch.no_grad():
            next_actions, _ = self.next_actions(batch)
            if a.policy_noise > 0:  # target policy smoothing (the fast path draws it beforehand)
                drawn = batch.get("smoothing_noise")
                noise = (torch.randn_like(next_actions) if drawn is None else drawn)
                noise = (noise * a.policy_noise).clamp(
                    -a.noise_clip, a.noise_clip)
                next_actions = (next_actions + noise).clamp(-ACTION_BOUND, ACTION_BOUND)
            target = self.critics["critic"].target
            y = self.bootstrap(batch, target(batch["next_states"], next_actions).min(dim=0).values)
        return self.q_td_loss(batch, y)

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        mask = batch["mask"]
        policy_actions = out.mean if isinstance(out, SquashedGaussian) else out  # with gradient
        q1 = self.critics["critic"].net.q1(batch["states"], policy_actions, detach_params=True)
        return -(q1 * mask).sum() / mask.sum()


__all__ = ["TD3"]
