"""The losses of the DT agent's RL kinds beyond TD3/DDPG, as pure functions of tensors.

Each is the equation on its method's page (docs/methods/sac-odt.md, iql-odt.md, awac.md,
awr.md, ppo.md); `DTAgent` feeds them its networks' outputs. Shapes: (B, K) per position,
`mask` 1 on real positions and 0 on left padding; "mean_real" below is a mask-weighted mean
over real positions. Kept free of networks so that tests check them on hand-built tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mean_real(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the real (mask 1) positions."""
    return (x * mask).sum() / mask.sum()


def soft_td_target(rewards: Tensor, dones: Tensor, q_next_min: Tensor, next_log_prob: Tensor,
                   temperature: Tensor | float, gamma: float) -> Tensor:
    """SAC's target: y = r + gamma (1 - d) (min_i Q_targ,i(s', a') - T log pi(a' | s'))."""
    return rewards + gamma * (1.0 - dones) * (q_next_min - temperature * next_log_prob)


def sac_actor_loss(log_prob: Tensor, q_min: Tensor, temperature: Tensor | float,
                   mask: Tensor) -> Tensor:
    """L_RL = mean_real(T log pi(a~ | s) - min_i Q_i(s, a~)), a~ reparameterised from pi."""
    return mean_real(temperature * log_prob - q_min, mask)


def expectile_loss(diff: Tensor, expectile: float, mask: Tensor) -> Tensor:
    """mean_real |tau - 1(u < 0)| u^2 with u = diff = target - V (an upper expectile, tau > 0.5)."""
    weight = (diff < 0).to(diff.dtype).mul(1.0 - 2.0 * expectile).add(expectile)
    return mean_real(weight * diff.pow(2), mask)


def exp_weights(advantage: Tensor, scale: float, max_weight: float) -> Tensor:
    """min(exp(scale * A), max_weight): IQL's exp(beta A), AWAC's and AWR's exp(A / lambda)."""
    return (advantage * scale).exp().clamp(max=max_weight)


def weighted_log_lik_loss(weights: Tensor, log_lik: Tensor, mask: Tensor) -> Tensor:
    """L_RL = -mean_real(w * log pi(a_data | ctx)), w detached by the caller; with the
    deterministic head log_lik is the surrogate -||a_hat - a||^2."""
    return -mean_real(weights * log_lik, mask)


def lambda_returns(rewards: Tensor, dones: Tensor, next_values: Tensor, lam: float,
                   gamma: float) -> Tensor:
    """TD(lambda) targets inside each segment, bootstrapped at its last position:

        G_t = r_t + gamma (1 - d_t) ((1 - lambda) V(s'_t) + lambda G_{t+1}),
        G_{K-1} = r_{K-1} + gamma (1 - d_{K-1}) V(s'_{K-1}).

    Segments are left-padded, so every real position's G_{t+1} is real (padded outputs are
    garbage and masked by the caller)."""
    out = rewards.clone()
    acc: Tensor | None = None
    for t in range(rewards.shape[-1] - 1, -1, -1):
        boot = next_values[..., t] if acc is None else (
            (1.0 - lam) * next_values[..., t] + lam * acc)
        acc = rewards[..., t] + gamma * (1.0 - dones[..., t]) * boot
        out[..., t] = acc
    return out


# A numerical guard, not a PPO hyperparameter: log rho is capped at 20 (rho <= 4.9e8) inside
# the loss. On the tanh-Gaussian head |log pi| of an off-support action runs to thousands, so
# one update can move log rho by hundreds; exp overflows float32 at 88, and rho A with A < 0
# is then -inf (docs/methods/ppo.md). Beyond the cap rho's gradient is cut; diagnostics.csv
# records the uncapped ratio.
PPO_MAX_LOG_RATIO = 20.0


def ppo_clipped_loss(log_prob: Tensor, old_log_prob: Tensor, advantage: Tensor, clip: float,
                     mask: Tensor, max_log_ratio: float = PPO_MAX_LOG_RATIO,
                     ) -> tuple[Tensor, Tensor]:
    """(L_RL, ratio): L_RL = -mean_real min(rho A, clip(rho, 1 - eps, 1 + eps) A), with
    rho = pi(a | ctx) / pi_old(a | ctx) = exp(min(log pi - log pi_old, max_log_ratio)); A
    detached by the caller. Padded positions get rho = 1: their log-probs are arbitrary, and
    an overflowing exp there would turn the masked mean into NaN (inf * 0)."""
    log_ratio = torch.where(mask > 0, log_prob - old_log_prob, 0.0)
    ratio = log_ratio.clamp(max=max_log_ratio).exp()
    surrogate = (ratio * advantage).minimum(ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    return -mean_real(surrogate, mask), ratio


__all__ = ["PPO_MAX_LOG_RATIO", "exp_weights", "expectile_loss", "lambda_returns", "mean_real", "ppo_clipped_loss",
           "sac_actor_loss", "soft_td_target", "weighted_log_lik_loss"]
