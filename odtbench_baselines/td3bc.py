"""TD3+BC (Fujimoto & Gu, "A Minimalist Approach to Offline RL", NeurIPS 2021).

The suite's one MLP TD3 (`odtbench.agents.td3`) with the behaviour-cloning actor loss

    L_actor = -lambda * mean_B Q1(s, pi(s)) + mean_B (pi(s) - a)^2,
    lambda  = alpha / mean_B |Q1(s, pi(s))|        (alpha = 2.5; lambda is not differentiated)

passed through TD3's actor-loss hook, on states normalised with the offline dataset's mean
and std (+1e-3) — the paper's Eq. 3-4 and its code's defaults. Everything else is TD3's:
twin critics, target smoothing 0.2 / clip 0.5, actor every 2nd update, Adam 3e-4, tau 0.005.

The official code is offline only. As the study did, the run continues with the same loss
online (`odtbench_baselines.mlp_loop`): TD3's Gaussian exploration noise 0.1 (TD3's own default), one
update per environment step on the offline data plus the new transitions, normalisation
statistics fixed to the offline data's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from odtbench.agents.td3 import TD3, ActorLoss, Batch, TD3Config, td3_actor_loss
from odtbench.data.trajectories import Trajectory
from odtbench.hyperparameters.resolve import RunConfig
from odtbench_baselines import MLPOnlineHyperparameters, TD3BCHyperparameters
from odtbench_baselines.mlp_loop import MLPMethod, Preprocessing, run_mlp

STATE_STD_EPS = 1e-3  # TD3+BC's `normalize_states(eps=1e-3)`


def td3bc_actor_loss(q1_pi: torch.Tensor, pi: torch.Tensor, batch: Batch,
                     alpha: float = 2.5) -> torch.Tensor:
    """-lambda Q1(s, pi(s)) + MSE(pi(s), a) with lambda = alpha / mean|Q1| (detached)."""
    lam = alpha / q1_pi.abs().mean().detach()
    return -lam * q1_pi.mean() + F.mse_loss(pi, batch["actions"])


def td3_config(hp: MLPOnlineHyperparameters, *, actor_lr: float, critic_lr: float,
               policy_noise: float, noise_clip: float, policy_freq: int,
               expl_noise: float) -> TD3Config:
    """The MLP TD3's configuration: the shared `mlp_*` sizes and one method's TD3 keys
    (TD3+BC: td3bc_*; TD3-scratch: td3_*)."""
    return TD3Config(hidden=(int(hp.mlp_hidden),) * int(hp.mlp_layers),
                     actor_lr=float(actor_lr), critic_lr=float(critic_lr),
                     gamma=float(hp.mlp_discount), tau=float(hp.mlp_tau),
                     policy_noise=float(policy_noise), noise_clip=float(noise_clip),
                     policy_delay=int(policy_freq), batch_size=int(hp.mlp_batch_size),
                     expl_noise=float(expl_noise))


class MLPTD3Agent:
    """The suite's MLP TD3 (`odtbench.agents.td3`) behind the MLP loop's agent interface (see
    mlp_loop), configured by one method (`td3_config`)."""

    def __init__(self, cfg: TD3Config, obs_dim: int, act_dim: int, low: np.ndarray,
                 high: np.ndarray, actor_loss: ActorLoss = td3_actor_loss):
        self.td3 = TD3(obs_dim, act_dim, low, high, cfg, actor_loss=actor_loss)

    @property
    def actor_updates(self) -> int:
        return self.td3.total_updates // self.td3.cfg.policy_delay

    def update(self, batch: Batch) -> dict[str, float]:
        m = self.td3.update(batch)
        m["q_mean"] = m.pop("q1_mean")
        return m

    def explore(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.td3.act(obs, noise=self.td3.cfg.expl_noise, rng=rng)

    @torch.no_grad()
    def act(self, states: torch.Tensor, actions: torch.Tensor, rtg: torch.Tensor,
            deterministic: bool = True) -> torch.Tensor:
        """Rollout interface: a Markov policy reads only the last state of the context."""
        return self.td3.actor(torch.as_tensor(states, dtype=torch.float32)[:, -1])

    def state_dict(self) -> dict:
        return self.td3.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.td3.load_state_dict(state)


class TD3BCAgent(MLPTD3Agent):
    """TD3 + the BC actor loss."""

    def __init__(self, hp: TD3BCHyperparameters, obs_dim: int, act_dim: int,
                 low: np.ndarray, high: np.ndarray):
        loss = functools.partial(td3bc_actor_loss, alpha=float(hp.td3bc_alpha))
        cfg = td3_config(hp, actor_lr=hp.td3bc_actor_lr, critic_lr=hp.td3bc_critic_lr,
                         policy_noise=hp.td3bc_policy_noise, noise_clip=hp.td3bc_noise_clip,
                         policy_freq=hp.td3bc_policy_freq, expl_noise=hp.td3bc_expl_noise)
        super().__init__(cfg, obs_dim, act_dim, low, high, loss)


def preprocess(trajs: list[Trajectory], hp: TD3BCHyperparameters, task: Any) -> Preprocessing:
    """Offline state mean/std (TD3+BC's state normalisation); rewards unscaled."""
    obs = np.concatenate([t.observations for t in trajs]).astype(np.float64)
    if hp.td3bc_normalize_states:
        mean, std = obs.mean(0), obs.std(0) + STATE_STD_EPS
    else:
        mean, std = np.zeros(obs.shape[1]), np.ones(obs.shape[1])
    return Preprocessing(mean.astype(np.float32), std.astype(np.float32), 1.0, 1.0)


def make_agent(hp: TD3BCHyperparameters, obs_dim: int, act_dim: int, low: np.ndarray,
               high: np.ndarray, total_updates: int) -> TD3BCAgent:
    return TD3BCAgent(hp, obs_dim, act_dim, low, high)


METHOD = MLPMethod(name="TD3+BC", preprocess=preprocess, make_agent=make_agent)


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> dict:
    """Run (or resume) one TD3+BC run; the method's runner in the registry."""
    return run_mlp(METHOD, cfg, out_dir, device=device)
