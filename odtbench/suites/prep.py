"""How a suite's offline data are preprocessed at load time (the offline twin of its env
wrappers): one small value type, shared by the task definitions and the wrappers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OfflinePrep:
    """The authors' load-time preprocessing of offline data (docs/suites.md, "Domain rules")."""

    reward_shift: float = 0.0
    reward_scale: float = 1.0
    delay: int = 1
    # AntMaze: split at goal-region steps (D4RL's terminals), every split end terminal, then
    # keep only the first `keep_one_step` one-step trajectories (`--remove_trivial_trajs 1`)
    antmaze: bool = False
    keep_one_step: int = 9

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
