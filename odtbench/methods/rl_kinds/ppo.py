"""rl_kind 'ppo' (PPO, docs/methods/ppo.md; paper Figs. 8, 10).

Critic: V on TD(lambda) targets, as AWR's. Actor term: the clipped surrogate
-mean_real min(rho A, clip(rho, 1 - eps, 1 + eps) A), rho = pi / pi_old, A = G^lambda - V(s),
with pi_old the actor as it was at the start of the update round (`begin_round`). The ratios
pi/pi_old of the actor steps since the last diagnostics row go to diagnostics.csv."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from odtbench.hyperparameters.schemas import DTHyperparameters, PPOHyperparameters
from odtbench.methods import rl_losses as L
from odtbench.methods.nets import DecisionTransformer, SquashedGaussian
from odtbench.methods.rl_kinds.base import Batch, Critic, KindHost, RLKind, frozen_copy

RATIO_KEYS = ("ppo_ratio_mean", "ppo_ratio_max", "ppo_log_ratio_max")


def _empty_ratio_acc() -> dict[str, Any]:
    return {"sum": 0.0, "max": 0.0, "log_max": 0.0, "n": 0}


class PPO(RLKind):
    schema = PPOHyperparameters
    hp: PPOHyperparameters

    def __init__(self, name: str, agent: KindHost, hp: DTHyperparameters | Mapping[str, Any]):
        super().__init__(name, agent, hp)
        # pi_old (rebuilt at each round's start, so not checkpointed) and the ratios' sums
        self.actor_old: DecisionTransformer | None = None
        self._ratio_acc: dict[str, Any] = _empty_ratio_acc()

    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {"value": self.v_critic(hp)}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return self.lambda_value_loss(batch, self.hp.ppo_lambda)

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        mask = batch["mask"]
        log_lik = self.log_likelihood(out, batch["actions"])
        with torch.no_grad():
            adv = (self.lambda_targets(batch, self.hp.ppo_lambda)
                   - self.v(self.critics["value"].net, batch["states"]))
        old_log_prob = self._old_log_prob(batch, log_lik)
        rl, _ = L.ppo_clipped_loss(log_lik, old_log_prob, adv, self.hp.ppo_clip, mask)
        # the recorded ratio in float64 from the log-ratio: a float32 ratio overflows at
        # exp(88), and the study's point (Fig. 10) is how large it gets
        log_ratio = (log_lik.detach() - old_log_prob).double().masked_fill(mask == 0, 0.0)
        ratio = log_ratio.exp()
        stats["ppo_ratio_mean"] = L.mean_real(ratio, mask.double())
        stats["ppo_ratio_max"] = ratio.masked_fill(mask == 0, 0.0).max()
        stats["ppo_log_ratio_max"] = log_ratio.masked_fill(mask == 0, -torch.inf).max()
        return rl

    @torch.no_grad()
    def _old_log_prob(self, batch: Batch, log_lik: Tensor) -> Tensor:
        """log pi_old(a | ctx) of the batch under the round's snapshot (eval mode); before the
        first round (pretraining diagnostics) pi itself, i.e. a ratio of 1."""
        if self.actor_old is None:
            return log_lik.detach()
        a = self.agent
        out = a.dt_forward(self.actor_old, batch["states"], batch["actions"],
                    a.rtg_input(batch["rtg"][:, :-1]), batch["mask"])
        assert isinstance(out, SquashedGaussian)
        return out.log_prob(batch["actions"])

    def begin_round(self) -> None:
        """pi_old becomes the actor as it is now."""
        if self.actor_old is None:
            self.actor_old = frozen_copy(self.agent.actor)
        else:
            self.actor_old.load_state_dict(self.agent.actor.state_dict())

    def after_actor_step(self, stats: dict[str, Tensor]) -> None:
        if "ppo_ratio_mean" not in stats:  # an update without the RL term
            return
        # kept out of the update's metrics: an overflowing ratio is what PPO does here
        # (paper Fig. 10), not a reason to stop the run; device tensors, no host sync
        acc = self._ratio_acc
        mean, mx, log_mx = (stats.pop(k) for k in RATIO_KEYS)
        acc["sum"] = acc["sum"] + mean
        first = acc["n"] == 0
        acc["max"] = mx if first else torch.maximum(acc["max"], mx)
        acc["log_max"] = log_mx if first else torch.maximum(acc["log_max"], log_mx)
        acc["n"] += 1

    def diagnostics(self) -> dict[str, float | None]:
        """pi/pi_old over the actor steps since the last call: the mean of the per-update
        means, the max of the per-update maxima (float64; past 1e308 they are inf, written
        empty) and the max of log(pi/pi_old). Resets."""
        acc, self._ratio_acc = self._ratio_acc, _empty_ratio_acc()
        if not acc["n"]:
            return dict.fromkeys(RATIO_KEYS)
        return {"ppo_ratio_mean": float(acc["sum"]) / acc["n"], "ppo_ratio_max": float(acc["max"]),
                "ppo_log_ratio_max": float(acc["log_max"])}

    def state_dict(self) -> dict[str, Any]:
        return {"ppo_ratio": dict(self._ratio_acc)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._ratio_acc = dict(state["ppo_ratio"])


__all__ = ["PPO"]
