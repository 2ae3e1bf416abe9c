"""The in-memory trajectory: one episode (or split of one) as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Trajectory:
    """One episode. Arrays are aligned on the step axis (length T).

    `terminations[t]` is a true environment termination (no bootstrap); `truncations[t]`
    marks a time-limit or split end (bootstrap from `next_observations[t]`). They are kept
    distinct: only `terminations` becomes the TD `done` flag offline (docs/methods/dt-family.md §7).
    """

    observations: np.ndarray  # (T, S) float32, raw (unnormalised), flattened if dict obs
    actions: np.ndarray  # (T, A) float32
    rewards: np.ndarray  # (T,) float32, after the task's reward transform
    next_observations: np.ndarray  # (T, S) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool
    infos: dict = field(default_factory=dict)  # optional per-trajectory extras (e.g. success)
    online: bool = False  # collected during online finetuning (diagnostics: buffer share)

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name in ("observations", "actions", "next_observations", "terminations", "truncations"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"trajectory field {name} has length {len(getattr(self, name))}, expected {n}")

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def ret(self) -> float:
        """Undiscounted return."""
        return float(np.sum(self.rewards, dtype=np.float64))

    def returns_to_go(self) -> np.ndarray:
        """Undiscounted suffix sums, length T+1 (last entry 0)."""
        rtg = np.zeros(len(self) + 1, dtype=np.float64)
        rtg[:-1] = np.cumsum(self.rewards[::-1], dtype=np.float64)[::-1]
        return rtg.astype(np.float32)
