"""One checkpoint format for every loop: run state, agent, RNG streams, and what the loop adds.

Written atomically (odtbench.runfiles.checkpoint.save_atomic), so a kill leaves the previous one intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from odtbench.agents.protocol import Learner
from odtbench.runcore.state import RunState
from odtbench.runfiles.checkpoint import load as load_checkpoint
from odtbench.runfiles.checkpoint import rng_state, save_atomic, set_rng_state

CKPT_NAME = "state.pt"


class Checkpointer:
    """Saves and restores <out>/checkpoint/state.pt."""

    def __init__(self, out: Path, generators: list[torch.Generator]):
        self.path = out / "checkpoint" / CKPT_NAME
        self.generators = generators  # every torch stream the run draws from, in a fixed order

    def save(self, state: RunState, agent: Learner, extras: dict[str, Any]) -> None:
        payload = {"state": state.to_dict(), "agent": agent.state_dict(),
                   "rng": rng_state(*self.generators), **extras}
        save_atomic(payload, self.path)

    def load(self, state_type: type[RunState], agent: Learner) -> tuple[RunState, dict[str, Any]] | None:
        """(state, payload) of the last checkpoint, with the agent and RNGs restored; None if
        there is none."""
        payload = load_checkpoint(self.path)
        if payload is None:
            return None
        state = state_type.from_dict(payload["state"], str(self.path))
        agent.load_state_dict(payload["agent"])
        set_rng_state(payload["rng"], *self.generators)
        return state, payload
