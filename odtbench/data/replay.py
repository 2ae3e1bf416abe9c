"""ODT data handling: offline preprocessing, the trajectory replay buffer, segment sampling.

Follows the authors' code (docs/methods/dt-family.md §7), quirks included and marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError

ACTION_EPS = 1e-6
MAX_TIMESTEP = 999  # timesteps >= 1000 are clipped


@dataclass
class OfflineData:
    """Preprocessed offline trajectories (ascending return) and state statistics."""

    trajectories: list[Trajectory]
    state_mean: np.ndarray
    state_std: np.ndarray


def prepare_offline(trajs: list[Trajectory], drop_lowest_return: bool = True) -> OfflineData:
    """State statistics over all offline states, then ODT's return sort.

    ODT keeps the top-return trajectories whose total length stays *strictly below* the
    dataset's total, which drops exactly the lowest-return one; the kept list stays in
    ascending-return order (the buffer overwrites from that low end).
    """
    if not trajs:
        raise ValueError("no offline trajectories")
    states = np.concatenate([t.observations for t in trajs], 0).astype(np.float64)
    mean = states.mean(0).astype(np.float32)
    std = (states.std(0) + 1e-6).astype(np.float32)
    order = np.argsort([t.ret for t in trajs], kind="stable")
    if drop_lowest_return and len(trajs) > 1:
        lens = np.array([len(t) for t in trajs])
        total, kept, i = lens.sum(), lens[order[-1]], len(trajs) - 2
        while i >= 0 and kept + lens[order[i]] < total:
            kept += lens[order[i]]
            i -= 1
        order = order[i + 1:]
    return OfflineData([trajs[i] for i in order], mean, std)


class TrajectoryBuffer:
    """ODT's trajectory-level FIFO, capacity counted in trajectories.

    Initialised with the top-`capacity` offline trajectories in ascending-return order; once
    full, new trajectories overwrite from a cursor starting at index 0 (the lowest-return
    offline one). The authors' slice assignment can grow the list past capacity when several
    trajectories arrive at the wrap point; we wrap per trajectory instead (same FIFO intent).
    """

    def __init__(self, capacity: int, trajectories: list[Trajectory]):
        self.capacity = int(capacity)
        self.trajectories = list(trajectories[-self.capacity:])
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.trajectories)

    def add(self, new: list[Trajectory]) -> None:
        if len(self.trajectories) < self.capacity:
            self.trajectories.extend(new)
            self.trajectories = self.trajectories[-self.capacity:]
            return
        for t in new:
            self.trajectories[self.cursor] = t
            self.cursor = (self.cursor + 1) % self.capacity

    def state_dict(self, offline: list[Trajectory] | None = None) -> dict:
        """The FIFO for a checkpoint. Trajectories that are entries of `offline` (the run's
        offline data, reloaded on resume) are stored as their index there with their length and
        return as a check, so a checkpoint does not rewrite the unchanged offline part."""
        where = {id(t): i for i, t in enumerate(offline or [])}
        entries: list[Any] = []
        for t in self.trajectories:
            i = where.get(id(t))
            entries.append(t if i is None else ("offline", i, len(t), float(t.rewards.sum())))
        return {"capacity": self.capacity, "cursor": self.cursor, "trajectories": entries}

    @classmethod
    def from_state_dict(cls, d: dict, offline: list[Trajectory] | None = None) -> TrajectoryBuffer:
        buf = cls(d["capacity"], [])
        trajs = []
        for e in d["trajectories"]:
            if isinstance(e, Trajectory):
                trajs.append(e)
                continue
            _, i, n, ret = e
            t = offline[i] if offline is not None and 0 <= i < len(offline) else None
            if t is None or len(t) != n or not np.isclose(float(t.rewards.sum()), ret):
                raise OdtbenchError("the checkpoint's replay buffer refers to offline trajectory "
                                    f"{i}, which the loaded dataset does not hold as saved: the "
                                    "dataset changed since the checkpoint; restore it or delete "
                                    "the run's checkpoint/ to start over")
            trajs.append(t)
        buf.trajectories, buf.cursor = trajs, d["cursor"]
        return buf


class SegmentSampler:
    """Samples left-padded K-step segments as tensors (the batch contract of dt_agent).

    Flat tensors are built once per trajectory list; a batch is a pure index gather, so no
    per-iteration DataLoader is needed. Trajectories are drawn with probability proportional
    to length and a start index uniform within the trajectory (docs/methods/dt-family.md §7).
    """

    def __init__(self, trajs: list[Trajectory], state_mean: np.ndarray, state_std: np.ndarray,
                 context_len: int, reward_scale: float, device: str | torch.device = "cpu"):
        self.K = int(context_len)
        self.device = torch.device(device)
        lens = np.array([len(t) for t in trajs], dtype=np.int64)
        self.lens = torch.as_tensor(lens)
        self.offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(lens)[:-1]]))
        self.rtg_offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(lens + 1)[:-1]]))
        self.probs = self.lens.double() / lens.sum()
        self._index_cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}
        mean, std = state_mean.astype(np.float32), state_std.astype(np.float32)
        obs = np.concatenate([t.observations for t in trajs], 0).astype(np.float32)
        nxt = np.concatenate([t.next_observations for t in trajs], 0).astype(np.float32)
        # Offline, only true terminations stop bootstrapping (time-limit ends do not).
        done = np.concatenate([t.terminations for t in trajs], 0).astype(np.float32)
        act = np.clip(np.concatenate([t.actions for t in trajs], 0), -1 + ACTION_EPS, 1 - ACTION_EPS)
        ts = np.concatenate([np.arange(n) for n in lens]).clip(max=MAX_TIMESTEP)
        rtg = np.concatenate([t.returns_to_go() for t in trajs]) * reward_scale
        dev = self.device
        self.obs = torch.as_tensor((obs - mean) / std, device=dev)
        self.next_obs = torch.as_tensor((nxt - mean) / std, device=dev)
        self.actions = torch.as_tensor(act.astype(np.float32), device=dev)
        self.rewards = torch.as_tensor(np.concatenate([t.rewards for t in trajs]).astype(np.float32), device=dev)
        self.dones = torch.as_tensor(done, device=dev)
        self.timesteps = torch.as_tensor(ts.astype(np.int64), device=dev)
        self.rtg = torch.as_tensor(rtg.astype(np.float32), device=dev)
        # Pads are zeros in raw state space, then normalised: -mean/std.
        self.state_pad = torch.as_tensor(-mean / std, device=dev)

    @property
    def num_transitions(self) -> int:
        return int(self.lens.sum())

    def _index_tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """lens, offsets, rtg_offsets, probs on `device` (copies made once, then cached)."""
        if device.type == "cpu":
            return self.lens, self.offsets, self.rtg_offsets, self.probs
        if device not in self._index_cache:
            self._index_cache[device] = tuple(t.to(device) for t in (
                self.lens, self.offsets, self.rtg_offsets, self.probs))
        return self._index_cache[device]

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        # Speed (docs/performance.md): the index math runs where `generator` lives. A CPU
        # generator (the default) costs one small host-to-device copy per batch on a GPU; a
        # generator on the data's device keeps sampling there: no host round trip, no sync.
        K, dev, gdev = self.K, self.device, generator.device
        lens, offsets, rtg_offsets, probs = self._index_tensors(gdev)
        traj = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        L = lens[traj]
        start = (torch.rand(batch_size, generator=generator, dtype=torch.float64,
                            device=gdev) * L).long()
        real = torch.minimum(L - start, torch.tensor(K))  # real length of each segment
        pos = torch.arange(K + 1, device=gdev)
        step = start[:, None] + pos[None, :] - (K - real)[:, None]  # (B, K+1); < start on pads
        valid = (pos[None, :] >= (K - real)[:, None])
        idx = (offsets[traj][:, None] + step.clamp(min=0))[:, :K]
        ridx = rtg_offsets[traj][:, None] + step.clamp(min=0)
        idx, ridx, valid = idx.to(dev), ridx.to(dev), valid.to(dev)
        m = valid[:, :K]
        mf = m.unsqueeze(-1)
        return {
            "states": torch.where(mf, self.obs[idx], self.state_pad),
            "next_states": torch.where(mf, self.next_obs[idx], self.state_pad),
            "actions": torch.where(mf, self.actions[idx], 0.0),
            "rewards": torch.where(m, self.rewards[idx], 0.0),
            "dones": torch.where(m, self.dones[idx], 2.0),  # pads are 2 (masked out anyway)
            "rtg": torch.where(valid, self.rtg[ridx], 0.0),
            "timesteps": torch.where(m, self.timesteps[idx], 0),
            "mask": m.float(),
        }
