"""Which runs pack their seeds into one process (docs/performance.md, "Packed seeds").

Kept apart from the packed loop (which imports torch) so that the workflow can ask it while it
plans jobs: one packed job per (dataset, method) cell where `pack_seeds` is on.
"""

from __future__ import annotations

from collections.abc import Sequence

from odtbench.config import RunConfig
from odtbench.errors import OdtbenchError
from odtbench.methods.registry import get_method

# The RL kinds a packed update reproduces; the ablation kinds run one seed at a time.
PACKED_RL_KINDS = ("td3", "ddpg", "none")


def pack_refusal(cfg: RunConfig) -> str | None:
    """Why `cfg`'s seeds cannot be trained packed (one line with the fix), or None if they can."""
    if get_method(cfg.method).family != "dt":
        return (f"method {cfg.method!r} is not of the DT family; only ODT, TD3+ODT, DDPG+ODT "
                "and TD3 pack seeds: run its seeds with --seed")
    kind = cfg.hyperparameters.get("rl_kind")
    if kind is not None and kind not in PACKED_RL_KINDS:
        return (f"{cfg.method} (rl_kind {kind!r}) is not packed: packed seeds support rl_kind "
                f"{', '.join(PACKED_RL_KINDS)}; run its seeds one by one")
    if cfg.task_key.startswith("toy/") or cfg.hyperparameters.get("online_updates_mode") == "epoch":
        return ("the toy task is not packed (its probe and its epoch-sized online updates are "
                "per seed); run its seeds one by one")
    return None


def check_packable(cfgs: Sequence[RunConfig]) -> None:
    """One (task, method, scale, hyperparameters) and distinct seeds; a method that packs."""
    if not cfgs:
        raise OdtbenchError("no seeds to pack")
    c0 = cfgs[0]
    for c in cfgs[1:]:
        if (c.task_key, c.method, c.scale, c.hyperparameters) != (
                c0.task_key, c0.method, c0.scale, c0.hyperparameters):
            raise OdtbenchError("packed seeds must share task, method, scale and "
                                "hyperparameters; run the others separately")
    seeds = [c.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise OdtbenchError(f"seeds {seeds} repeat; list each seed once")
    refusal = pack_refusal(c0)
    if refusal:
        raise OdtbenchError(refusal)


def seeds_text(seeds: Sequence[int]) -> str:
    """A packed cell's seeds in its job's file names (`seeds0-1-2.log`)."""
    return "-".join(str(s) for s in seeds)


__all__ = ["PACKED_RL_KINDS", "pack_refusal", "check_packable", "seeds_text"]
