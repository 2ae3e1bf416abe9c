"""The typed state of a run: everything a checkpoint saves and a resume restores.

One dataclass per loop family; the fields are the run's counters, its phase and status, and
the rows it has written so far (so a resumed run rewrites the same files). The checkpoint
holds `to_dict()`; `from_dict` restores it and rejects a state of another shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from odtbench.errors import OdtbenchError
from odtbench.runfiles.diagnostics import OnlineEpisodeStats

# pretrain -> [online_warmup -> return_warmup (PDT)] -> online -> done
Phase = Literal["pretrain", "online_warmup", "return_warmup", "online", "done"]
Status = Literal["running", "complete", "diverged"]

S = TypeVar("S", bound="RunState")


@dataclass
class RunState:
    """What every loop counts and records."""

    phase: Phase = "pretrain"
    status: Status = "running"
    diverged_reason: str | None = None
    pretrain_iter: int = 0  # pretraining iterations done (one evaluation each)
    pretrain_units: int = 0  # updates done in the current pretraining iteration
    online_iter: int = 0
    online_transitions: int = 0
    episodes: int = 0  # online episodes started (the online seed formula's index)
    gradient_steps: int = 0  # actor updates: the curve's x-axis alternative
    wall_time_s: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    online_stats: dict[str, float] = field(default_factory=OnlineEpisodeStats.empty)
    last_critic_loss: float | None = None
    eval_s: float | None = None  # seconds per evaluation so far (the progress ETA's share)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any], where: str) -> S:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            odd = sorted(set(data) ^ names)
            raise OdtbenchError(f"{where}: the checkpoint's run state does not match this code "
                                f"(fields {odd}); delete the checkpoint folder to start over")
        return cls(**data)

    def counters(self) -> dict[str, Any]:
        """The scalar fields, for log lines."""
        return {k: v for k, v in self.to_dict().items()
                if not isinstance(v, (list, dict))}


@dataclass
class MLPRunState(RunState):
    """The MLP baselines' loop: one update per online step, buffer saved in chunks."""

    pretrain_steps: int = 0
    updates: int = 0  # every update, offline and online (the resume tests' counter)
    updates_at_checkpoint: int = 0
    online_saved: int = 0  # online transitions (by arrival) the chunks on disk hold
    chunks: list[list[int]] = field(default_factory=list)  # [first, end) per chunk file


@dataclass
class PDTRunState(RunState):
    """PDT's loop: the online warm-up's own counter."""

    warmup_transitions: int = 0
