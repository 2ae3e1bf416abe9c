"""The agent as the run core sees it: typing protocols, no behaviour.

Two sides (docs/architecture.md, "The run loops"): the policy the rollout acts with
(`odtbench.runcore.evaluation.rollout`: evaluation episodes and online collection) and the learner
whose state the checkpoint holds. Every method's agent is both (`Agent`): the DT family's
`DTAgent`, the MLP baselines' and PDT's agents. The updates themselves are the loops' own
business, so they are not part of it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor


class Policy(Protocol):
    """Actions (N, A) for N contexts of T steps (N, T, S / A / 1; a Markov policy reads the
    last state only); `deterministic=False` samples a stochastic head."""

    def act(self, states: Tensor, actions: Tensor, rtg: Tensor,
            deterministic: bool = True) -> Tensor: ...


class CollectingPolicy(Policy, Protocol):
    """A trajectory loop's policy online: sampled actions for a stochastic head, else the
    deterministic ones plus exploration noise (`runcore.evaluator.Collector`)."""

    @property
    def stochastic(self) -> bool: ...


class Learner(Protocol):
    """What a checkpoint saves and restores (`runcore.checkpointer.Checkpointer`)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Agent(Policy, Learner, Protocol):
    """The policy and the learner of one run: what `RunCore` holds."""


@runtime_checkable
class CriticProbe(Protocol):
    """An agent whose critic the diagnostics compare with the episodes' returns (q_s0,
    q_mc_corr); agents without one (or with `uses_critic` False) skip those columns."""

    @property
    def uses_critic(self) -> bool: ...

    def q_values(self, states: Any, actions: Any) -> Tensor: ...


__all__ = ["Agent", "CollectingPolicy", "CriticProbe", "Learner", "Policy"]
