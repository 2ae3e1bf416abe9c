"""Speed "fast" (docs/performance.md): the DT agent's training unit as one compiled function.

Kept apart from the readable reference (`odtbench.methods.dt_agent`), whose loss methods it
runs: `FastUnit` adds only the compiled glue, the flat-buffer optimiser maths
(`flat_steps`) and the drawing of randomness outside the graph. It covers the study's DT
methods (rl_kind td3, ddpg, none: TD3+ODT, DDPG+ODT, TD3, ODT) with the LAMB actor
optimiser; any other agent keeps the reference path and says so in one log line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odtbench.fastpath.unit import FastUnit

# the host agent, a `odtbench.methods.dt_agent.DTAgent` (not imported: it imports this package)
DTAgent = Any

FAST_KINDS = ("td3", "ddpg", "none")

# Where speed "auto" (the default) takes the fast path: (device type, scale) pairs on which a
# whole run was measured faster with it, a cold compile included (docs/performance.md, "Whole
# runs": halfcheetah-random TD3+ODT on the CPU). Not at quick: there a cold compile ate the
# gain (wall 0.98x; warm 1.27x). Elsewhere not measured (a GPU, the paper size), or slower
# (smoke: the compile outweighs a run of seconds).
FAST_BY_DEFAULT = frozenset({("cpu", "standard")})


def auto_path(device: str, scale: str) -> str:
    """What speed "auto" means for a run on `device` at `scale`: "auto" (the agent takes the
    fast path if it has one) where it was measured faster, else "reference"."""
    import torch

    return "auto" if (torch.device(device).type, scale) in FAST_BY_DEFAULT else "reference"


def uncovered_reason(agent: DTAgent) -> str | None:
    """Why `agent` has no fast path (None: it has one)."""
    if agent.rl_kind not in FAST_KINDS:
        return f"rl_kind {agent.rl_kind!r} has none (it covers {', '.join(FAST_KINDS)})"
    if agent.actor_optimizer.kind != "lamb":
        return f"actor optimiser {agent.actor_optimizer.kind!r} has none (it covers LAMB)"
    if agent.speed.bf16 or agent.speed.fused_optim:
        return "the bf16 and fused_optim options have none"
    return None


def fast_unit_for(agent: DTAgent, quiet: bool = False) -> FastUnit | None:
    """The agent's compiled unit, or None where it has none (after one line on stderr, unless
    `quiet`: speed "auto" falls back without a word)."""
    why = uncovered_reason(agent)
    if why is not None:
        if quiet:
            return None
        print(f"odtbench: speed fast: {why}; running the reference path", file=sys.stderr,
              flush=True)
        return None
    from odtbench.fastpath.unit import FastUnit

    return FastUnit(agent)


__all__ = ["FAST_BY_DEFAULT", "FAST_KINDS", "auto_path", "fast_unit_for", "uncovered_reason"]
