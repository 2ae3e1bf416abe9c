"""IQL (Kostrikov, Nair & Levine, "Offline RL with Implicit Q-Learning", ICLR 2022).

Per update, in the order of the official code (value, actor, critic, target):

    L_V  = mean_B |tau - 1(u < 0)| u^2,    u = min_i Q_targ,i(s, a) - V(s)       (expectile tau)
    L_pi = -mean_B w log pi(a | s),        w = min(exp(beta (min_i Q_targ,i(s, a) - V(s))), 100)
    L_Q  = sum_i mean_B (Q_i(s, a) - y)^2, y = r + gamma (1 - d) V(s')
    Q_targ <- (1 - 0.005) Q_targ + 0.005 Q

(the actor and critic steps use the V just updated). Per-domain expectile tau and inverse
temperature beta from the paper's hyperparameter table (MuJoCo 0.7 / 3, AntMaze 0.9 / 10,
Adroit 0.7 / 0.5; set per suite in the method spec). Networks: 2x256 ReLU MLPs, the suite's
twin critic (`odtbench.agents.td3.TwinCritic`); the policy is N(tanh(f(s)), diag sigma^2) with
a state-independent log sigma clipped to [-5, 2]; Adam 3e-4 everywhere, the actor's learning
rate on a cosine decay to 0. Nets keep PyTorch's default init (the JAX code uses orthogonal).

Offline-to-online details (the official finetuning script; docs/methods/iql.md):
- MuJoCo rewards (hopper, halfcheetah, walker2d only; not ant) are scaled by
  1000 / (max - min episode return) of the offline data. That script scales only the offline
  data; online rewards enter unscaled. `iql_scale_online_rewards` (False = the code) applies
  the factor online too.
- Online actions are sampled from the policy and clipped to [-1, 1]; evaluation uses tanh(f(s)).
- `iql_actor_schedule` (docs/fidelity.md): "cosine" (the default) decays over pretraining plus
  the online budget, so the actor keeps learning online; "cosine_pretrain" decays over the
  pretraining updates only, as the official code's fixed 1M-step horizon does, which reaches
  0 at the switch and freezes the actor online; "constant" is the official AntMaze
  finetuning config (no decay; the antmaze suite preset).
- The replay buffer is a 1M-transition FIFO (`mlp_replay_size`): online transitions replace
  offline ones once it is full. Adroit's actor uses dropout 0.1 (`iql_dropout`) after each
  hidden ReLU, in its updates only (acting and evaluation run it without dropout).
- IQL's Q target uses the current V, not a Polyak V (unlike the IQL variant in the authors'
  TD3+ODT code). docs/methods/iql.md has the equations, sources and deviations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from odtbench.agents.td3 import Batch, TwinCritic, mlp
from odtbench.data.trajectories import Trajectory
from odtbench.errors import UnknownChoiceError
from odtbench.hyperparameters.resolve import RunConfig
from odtbench.hyperparameters.schemas import as_schema
from odtbench.methods.optim import adam, polyak_
from odtbench_baselines import IQL_SCHEDULES, IQLHyperparameters
from odtbench_baselines.mlp_loop import MLPMethod, Preprocessing, run_mlp

# The official finetuning script (docs/methods/iql.md) normalises the rewards of these locomotion domains only.
REWARD_NORM_DOMAINS = ("hopper", "halfcheetah", "walker2d")
SCHEDULES = IQL_SCHEDULES  # the schema's choices (odtbench_baselines.IQLHyperparameters)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |tau - 1(diff < 0)| diff^2: asymmetric L2, an upper expectile for tau > 0.5."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


def awr_weights(q: torch.Tensor, v: torch.Tensor, temperature: float,
                max_weight: float = 100.0) -> torch.Tensor:
    """exp(beta (Q - V)), clipped at 100 as in the official code."""
    return torch.exp(temperature * (q - v)).clamp(max=max_weight)


class GaussianPolicy(nn.Module):
    """N(tanh(f(s)), diag exp(2 log_std)) with a learned state-independent log_std."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...],
                 log_std_min: float = -5.0, log_std_max: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim])
        if dropout > 0:  # after each hidden ReLU, as the official MLP's dropout_rate
            layers: list[nn.Module] = []
            for layer in self.net:
                layers.append(layer)
                if isinstance(layer, nn.ReLU):
                    layers.append(nn.Dropout(dropout))
            self.net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std), mean in (-1, 1)."""
        return torch.tanh(self.net(obs)), self.log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a | s), summed over action dimensions; shape (B,)."""
        mean, log_std = self(obs)
        z = (actions - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class IQLAgent:
    """IQL learner with the MLP-loop agent interface (see mlp_loop)."""

    def __init__(self, hp: IQLHyperparameters | Mapping[str, Any], obs_dim: int, act_dim: int,
                 total_updates: int,
                 pretrain_updates: int | None = None):
        # `hp`: the run's typed hyperparameters, or a complete record of them (tests)
        a = as_schema(hp, IQLHyperparameters, "IQL")
        hidden = (int(a.mlp_hidden),) * int(a.mlp_layers)
        self.expectile, self.temperature = float(a.iql_expectile), float(a.iql_temperature)
        self.max_weight = float(a.iql_max_weight)
        self.gamma, self.tau = float(a.mlp_discount), float(a.mlp_tau)
        self.actor = GaussianPolicy(obs_dim, act_dim, hidden, float(a.iql_log_std_min),
                                    float(a.iql_log_std_max), float(a.iql_dropout))
        self.actor.eval()  # dropout only inside `update`
        self.critic = TwinCritic(obs_dim, act_dim, hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = mlp([obs_dim, *hidden, 1])
        self.actor_opt = adam(self.actor.parameters(), float(a.iql_actor_lr), kernel="fused")
        self.critic_opt = adam(self.critic.parameters(), float(a.iql_critic_lr), kernel="fused")
        self.value_opt = adam(self.value.parameters(), float(a.iql_value_lr), kernel="fused")
        schedule = str(a.iql_actor_schedule)
        if schedule not in SCHEDULES:
            raise UnknownChoiceError("iql_actor_schedule", schedule, SCHEDULES)
        horizon = max(1, int(total_updates))
        if schedule == "cosine_pretrain":
            n_pre = a.mlp_pretrain_steps if pretrain_updates is None else pretrain_updates
            horizon = max(1, int(n_pre))

        def lr_factor(step: int) -> float:  # cosine decay to 0 over `horizon` updates
            if schedule == "constant":
                return 1.0
            return 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))

        self.actor_sched = torch.optim.lr_scheduler.LambdaLR(self.actor_opt, lr_factor)
        self.actor_updates = 0

    def update(self, batch: Batch) -> dict[str, float]:
        obs, act = batch["observations"], batch["actions"]
        with torch.no_grad():
            q_targ = self.critic_target(obs, act).min(dim=0).values
        # 1. V: expectile regression onto min Q_targ(s, a)
        value_loss = expectile_loss(q_targ - self.value(obs).squeeze(-1), self.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()
        # 2. policy: advantage-weighted regression, with the updated V
        with torch.no_grad():
            w = awr_weights(q_targ, self.value(obs).squeeze(-1), self.temperature, self.max_weight)
        self.actor.train()
        actor_loss = -(w * self.actor.log_prob(obs, act)).mean()
        self.actor.eval()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.actor_sched.step()
        self.actor_updates += 1
        # 3. Q: TD target through V(s') (no max over actions: in-sample learning)
        with torch.no_grad():
            y = batch["rewards"] + self.gamma * (1.0 - batch["terminations"]) * \
                self.value(batch["next_observations"]).squeeze(-1)
        q = self.critic(obs, act)
        critic_loss = ((q - y) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        polyak_(self.critic_target.parameters(), self.critic.parameters(), self.tau)
        return {"value_loss": value_loss.item(), "actor_loss": actor_loss.item(),
                "critic_loss": critic_loss.item(), "q_mean": q[0].mean().item()}

    def explore(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A policy sample, clipped to the action box (as the official finetuning script)."""
        with torch.no_grad():
            mean, log_std = self.actor(torch.as_tensor(obs, dtype=torch.float32))
        a = mean.numpy() + np.exp(log_std.numpy()) * rng.standard_normal(mean.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    @torch.no_grad()
    def act(self, states: torch.Tensor, actions: torch.Tensor, rtg: torch.Tensor,
            deterministic: bool = True) -> torch.Tensor:
        """Rollout interface: the mean action of the last state (or a sample)."""
        mean, log_std = self.actor(torch.as_tensor(states, dtype=torch.float32)[:, -1])
        return mean if deterministic else (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1, 1)

    _MODULES = ("actor", "critic", "critic_target", "value", "actor_opt", "critic_opt",
                "value_opt", "actor_sched")

    def state_dict(self) -> dict:
        return {"actor_updates": self.actor_updates,
                **{k: getattr(self, k).state_dict() for k in self._MODULES}}

    def load_state_dict(self, state: dict) -> None:
        self.actor_updates = int(state["actor_updates"])
        for k in self._MODULES:
            getattr(self, k).load_state_dict(state[k])


def reward_scale(trajs: list[Trajectory]) -> float:
    """1000 / (max - min offline episode return): IQL's locomotion reward normalisation."""
    rets = [t.ret for t in trajs]
    spread = max(rets) - min(rets)
    return 1000.0 / spread if spread > 0 else 1.0


def preprocess(trajs: list[Trajectory], hp: IQLHyperparameters, task: Any) -> Preprocessing:
    """No state normalisation; locomotion rewards scaled (see module doc)."""
    S = trajs[0].observations.shape[1]
    scale = 1.0
    if hp.iql_normalize_rewards and task.domain in REWARD_NORM_DOMAINS:
        scale = reward_scale(trajs)
    online = scale if hp.iql_scale_online_rewards else 1.0
    return Preprocessing(np.zeros(S, np.float32), np.ones(S, np.float32), scale, online)


def make_agent(hp: IQLHyperparameters, obs_dim: int, act_dim: int, low: np.ndarray,
               high: np.ndarray, total_updates: int) -> IQLAgent:
    return IQLAgent(hp, obs_dim, act_dim, total_updates, int(hp.mlp_pretrain_steps))


METHOD = MLPMethod(name="IQL", preprocess=preprocess, make_agent=make_agent)


def run(cfg: RunConfig, out_dir: Path | str, device: str = "cpu") -> dict:
    """Run (or resume) one IQL run; the method's runner in the registry."""
    return run_mlp(METHOD, cfg, out_dir, device=device)
