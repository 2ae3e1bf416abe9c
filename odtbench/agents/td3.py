"""The suite's one MLP TD3 (Fujimoto et al. 2018): twin critics, target smoothing, delayed actor.

Used for the D4RL-recipe behaviour agents and by the TD3+BC baseline, which passes its own
`actor_loss` (the hook receives Q1(s, pi(s)), pi(s) and the batch and returns the loss to
minimise; the default is plain TD3's -mean Q1).

A batch is a dict of float32 tensors: ``observations (B,S)``, ``actions (B,A)``,
``rewards (B,)``, ``next_observations (B,S)``, ``terminations (B,)`` (1 = true terminal, no
bootstrap; time-limit ends must be 0 here).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from odtbench.methods.optim import adam, polyak_

Batch = dict[str, torch.Tensor]
ActorLoss = Callable[[torch.Tensor, torch.Tensor, Batch], torch.Tensor]


@dataclass(frozen=True)
class TD3Config:
    """Defaults are the TD3 paper's (and CORL/cleanrl's) MuJoCo settings."""

    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2  # target smoothing noise, in units of max action
    noise_clip: float = 0.5
    policy_delay: int = 2
    batch_size: int = 256
    expl_noise: float = 0.1  # Gaussian exploration noise for data collection


def mlp(sizes: Sequence[int], out_act: nn.Module | None = None) -> nn.Sequential:
    """Linear-ReLU stack; `out_act` after the last layer if given."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Deterministic policy: tanh MLP rescaled to the action box."""

    scale: torch.Tensor  # buffers, registered in __init__
    bias: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int],
                 low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.net = mlp([obs_dim, *hidden, act_dim], nn.Tanh())
        self.register_buffer("scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs) * self.scale + self.bias


class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied with one batched matmul (x: (n, B, in))."""

    def __init__(self, n: int, d_in: int, d_out: int):
        super().__init__()
        bound = 1.0 / d_in**0.5  # nn.Linear's default init range
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinCritic(nn.Module):
    """Q1 and Q2 as one 2-member ensemble MLP: same maths as two MLPs, half the kernel calls
    (per-update overhead, not FLOPs, dominates these small nets on a CPU)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], n: int = 2):
        super().__init__()
        sizes = [obs_dim + act_dim, *hidden, 1]
        self.n = n
        self.layers = nn.ModuleList(EnsembleLinear(n, sizes[i], sizes[i + 1])
                                    for i in range(len(sizes) - 1))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Q values of every member, shape (n, B)."""
        x = torch.cat([obs, act], dim=-1).unsqueeze(0).expand(self.n, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x.squeeze(-1)


def td3_actor_loss(q1_pi: torch.Tensor, pi: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Plain TD3: maximise Q1(s, pi(s))."""
    return -q1_pi.mean()


class TD3:
    """TD3 learner. `update(batch)` does one critic step and, every `policy_delay` calls, one
    actor step plus the Polyak target update."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray | float = -1.0,
                 high: np.ndarray | float = 1.0, config: TD3Config | None = None,
                 actor_loss: ActorLoss = td3_actor_loss):
        self.cfg = config or TD3Config()
        lo = np.broadcast_to(np.asarray(low, dtype=np.float32), (act_dim,)).copy()
        hi = np.broadcast_to(np.asarray(high, dtype=np.float32), (act_dim,)).copy()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = Actor(obs_dim, act_dim, self.cfg.hidden, lo, hi)
        self.critic = TwinCritic(obs_dim, act_dim, self.cfg.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # the fused kernel cuts the optimiser's per-step overhead severalfold on CPU
        self.actor_opt = adam(self.actor.parameters(), self.cfg.actor_lr, kernel="fused")
        self.critic_opt = adam(self.critic.parameters(), self.cfg.critic_lr, kernel="fused")
        self.actor_loss = actor_loss
        self.low = torch.as_tensor(lo)
        self.high = torch.as_tensor(hi)
        self.total_updates = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """Action(s) for observation(s); Gaussian noise (x max action) needs `rng`."""
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        a = self.actor(o.unsqueeze(0) if o.ndim == 1 else o).numpy()
        a = a[0] if o.ndim == 1 else a
        if noise > 0.0:
            assert rng is not None, "exploration noise needs an rng"
            a = a + rng.normal(0.0, noise, size=a.shape) * self.actor.scale.numpy()
        return np.clip(a, self.low.numpy(), self.high.numpy()).astype(np.float32)

    def update(self, batch: Batch) -> dict[str, float]:
        """One TD3 step on `batch`; returns losses (actor loss only on actor steps)."""
        cfg = self.cfg
        with torch.no_grad():
            scale = self.actor.scale
            noise = (torch.randn_like(batch["actions"]) * cfg.policy_noise * scale).clamp(
                -cfg.noise_clip * scale, cfg.noise_clip * scale)
            next_a = torch.max(torch.min(self.actor_target(batch["next_observations"]) + noise,
                                         self.high), self.low)
            target_q = self.critic_target(batch["next_observations"], next_a).min(dim=0).values
            y = batch["rewards"] + cfg.gamma * (1.0 - batch["terminations"]) * target_q
        q = self.critic(batch["observations"], batch["actions"])
        critic_loss = ((q - y) ** 2).mean(dim=1).sum()  # = MSE(Q1, y) + MSE(Q2, y)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.total_updates += 1
        out = {"critic_loss": critic_loss.item(), "q1_mean": q[0].mean().item()}
        if self.total_updates % cfg.policy_delay == 0:
            pi = self.actor(batch["observations"])
            self.critic.requires_grad_(False)  # skip critic weight grads the step would discard
            try:
                loss = self.actor_loss(self.critic(batch["observations"], pi)[0], pi, batch)
                self.actor_opt.zero_grad(set_to_none=True)
                loss.backward()
            finally:
                self.critic.requires_grad_(True)
            self.actor_opt.step()
            for net, targ in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                polyak_(targ.parameters(), net.parameters(), self.cfg.tau)
            out["actor_loss"] = loss.item()
        return out

    def state_dict(self) -> dict:
        return {"config": asdict(self.cfg), "total_updates": self.total_updates,
                "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_target": self.actor_target.state_dict(),
                "critic_target": self.critic_target.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.total_updates = int(state["total_updates"])
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])


class ReplayBuffer:
    """Flat transition store in arrival order (so it can be cut back into episodes)."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int):
        self.capacity, self.size = capacity, 0
        self.observations = np.zeros((capacity, obs_dim), np.float32)
        self.next_observations = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, act_dim), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminations = np.zeros(capacity, bool)
        self.truncations = np.zeros(capacity, bool)

    def add(self, obs, act, rew, next_obs, terminated: bool, truncated: bool) -> None:
        if self.size >= self.capacity:
            raise RuntimeError("replay buffer is full; size it to the training budget")
        i = self.size
        self.observations[i], self.actions[i], self.rewards[i] = obs, act, rew
        self.next_observations[i] = next_obs
        self.terminations[i], self.truncations[i] = terminated, truncated
        self.size += 1

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "observations": torch.from_numpy(self.observations[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_observations": torch.from_numpy(self.next_observations[idx]),
            "terminations": torch.from_numpy(self.terminations[idx].astype(np.float32)),
        }

    def state_dict(self) -> dict:
        n = self.size
        return {"capacity": self.capacity, "size": n,
                **{k: getattr(self, k)[:n].copy() for k in
                   ("observations", "next_observations", "actions", "rewards",
                    "terminations", "truncations")}}

    def load_state_dict(self, state: dict) -> None:
        n = int(state["size"])
        if n > self.capacity:
            raise RuntimeError(f"checkpointed buffer holds {n} transitions, capacity is {self.capacity}")
        for k in ("observations", "next_observations", "actions", "rewards", "terminations", "truncations"):
            getattr(self, k)[:n] = state[k]
        self.size = n


class FIFOReplayBuffer(ReplayBuffer):
    """Fixed-capacity ring buffer: once full, each new transition overwrites the oldest one
    (the official IQL code's `ReplayBuffer.insert`). Seed it with offline data through
    `extend`; online transitions then replace the offline ones, oldest first."""

    FIELDS = ("observations", "next_observations", "actions", "rewards", "terminations",
              "truncations")

    def __init__(self, obs_dim: int, act_dim: int, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        super().__init__(obs_dim, act_dim, capacity)
        self.insert_index = 0

    def add(self, obs, act, rew, next_obs, terminated: bool, truncated: bool) -> None:
        i = self.insert_index
        self.observations[i], self.actions[i], self.rewards[i] = obs, act, rew
        self.next_observations[i] = next_obs
        self.terminations[i], self.truncations[i] = terminated, truncated
        self.insert_index = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, arrays: dict[str, np.ndarray]) -> None:
        """Insert n transitions in order, as n `add` calls would (fields as in FIELDS)."""
        n = len(arrays["rewards"])
        skip = max(0, n - self.capacity)  # only the last `capacity` ones survive
        start = (self.insert_index + skip) % self.capacity
        pos = (start + np.arange(n - skip)) % self.capacity
        for k in self.FIELDS:
            getattr(self, k)[pos] = arrays[k][skip:]
        self.insert_index = (self.insert_index + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def positions_of_last(self, n: int) -> np.ndarray:
        """Buffer indices of the n most recently inserted transitions, oldest first."""
        if n > self.size:
            raise ValueError(f"only {self.size} transitions are held, asked for the last {n}")
        return (self.insert_index - n + np.arange(n)) % self.capacity
