"""What an RL kind is (`RLKind`) and the parts kinds share: a critic with its target and
optimiser (`Critic`), the target DT's next actions, min-Q, V(s), the twin-Q TD loss and
TD(lambda) value targets. The equations are pure functions in `odtbench.methods.rl_losses`.

A kind is built by `DTAgent` after its actor (so its critics' initial weights draw from the
global generator after the actor's, as they always have) and reads the agent's shared parts
(the DT and its target, the temperature, gamma, the TD3 smoothing settings) through `agent`,
typed by `KindHost`: the agent's public surface a kind may use, so no kind reaches into its
internals (and this module needs no import of the agent's).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.schemas import DTHyperparameters, as_schema
from odtbench.methods import rl_losses as L
from odtbench.methods.actor_parts import EntropyTemperature
from odtbench.methods.nets import DecisionTransformer, QEnsemble, SquashedGaussian
from odtbench.methods.optim import FlatParameters, polyak_

ACTION_BOUND = 1.0 - 1e-6
Batch = Mapping[str, Tensor]
_M = TypeVar("_M", bound=torch.nn.Module)


class KindHost(Protocol):
    """What a kind reads of the agent that hosts it (`odtbench.methods.dt_agent.DTAgent`)."""

    state_dim: int
    act_dim: int
    device: torch.device
    gamma: float
    policy_noise: float
    noise_clip: float
    actor: DecisionTransformer
    temperature: EntropyTemperature

    def rtg_input(self, rtg: Tensor) -> Tensor: ...

    def dt_forward(self, net: torch.nn.Module, *inputs: Tensor | None) -> Tensor | SquashedGaussian: ...

    def target_next_actions(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]: ...


def frozen_copy(module: _M) -> _M:
    """A target network: a copy in eval mode (targets never use dropout), no gradients."""
    target = copy.deepcopy(module).eval()
    target.requires_grad_(False)
    return target


class Critic:
    """A critic network (a Q ensemble, or V(s) as a one-member ensemble with no action
    input), its Polyak target and its AdamW. Parameters live in one flat buffer each
    (`FlatParameters`): the optimiser and Polyak steps are one op each."""

    def __init__(self, net: QEnsemble):
        self.net = net
        self.target = frozen_copy(net)
        self.flat = FlatParameters(net)
        self.target_flat = FlatParameters(self.target, with_grad=False)
        self.opt: torch.optim.Optimizer

    def reset_optimizer(self, lr: float, weight_decay: float, kernel: str) -> None:
        kernel_kw: dict[str, Any] = {kernel: True}  # "foreach" or "fused", as the agent's Adams
        self.opt = torch.optim.AdamW([self.flat.param], lr=lr, weight_decay=weight_decay,
                                     **kernel_kw)

    def polyak(self, tau: float) -> None:
        polyak_([self.target_flat.param], [self.flat.param], tau)

    def reset_target(self) -> None:
        self.target.load_state_dict(self.net.state_dict())

    def state_dict(self, name: str) -> dict[str, Any]:
        """`name`, `name_target`, `name_opt`: the agent checkpoint's entries of this critic."""
        return {name: self.net.state_dict(), f"{name}_target": self.target.state_dict(),
                f"{name}_opt": self.opt.state_dict()}

    def load_state_dict(self, name: str, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state[name])
        self.target.load_state_dict(state[f"{name}_target"])
        self.opt.load_state_dict(state[f"{name}_opt"])


class RLKind:
    """One RL objective of the DT agent (`rl_kind`), in the manner of a loss module: it
    builds the critics it needs, computes their loss and the actor's RL term, and may keep
    state of its own.

    Class attributes: `schema`, the typed hyperparameters of its methods
    (`odtbench.hyperparameters.schemas`; the fields beyond `DTHyperparameters` are its own keys;
    `self.hp` is the run's object of that schema, so a kind reads `self.hp.<key>`, typed);
    `target_actor`, whether the agent Polyak-averages its
    target DT after each actor step; `moves_temperature`, whether the entropy temperature
    steps even where ODT's entropy term is off (SAC).

    Critics are named by their checkpoint entries: "critic" (a Q ensemble) and "value"
    (V(s)); `critics` keeps their order (updates, Polyak steps, checkpoint).
    """

    is_rl_kind: ClassVar[bool] = True  # what the registry's load_kind checks
    schema: ClassVar[type[DTHyperparameters]] = DTHyperparameters
    hp: DTHyperparameters  # an instance of `schema` (a kind narrows the annotation to it)
    target_actor: ClassVar[bool] = False
    moves_temperature: ClassVar[bool] = False

    def __init__(self, name: str, agent: KindHost,
                 hp: DTHyperparameters | Mapping[str, Any]):
        """`hp`: the run's typed hyperparameters (an instance of `schema`), or a complete
        record of them (tests, benchmarks)."""
        self.name, self.agent = name, agent
        self.hp = as_schema(hp, self.schema, f"rl_kind {name!r}")
        self.critics: dict[str, Critic] = self.build_critics(self.hp)

    @classmethod
    def check(cls, name: str, hp: DTHyperparameters) -> None:
        """Refuse settings the kind cannot run (one line with the fix), before any network."""

    # ------------------------------------------------------------------ to override
    def build_critics(self, hp: DTHyperparameters) -> dict[str, Critic]:
        return {}

    def critic_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(loss of every critic, mean Q (or V) over real entries) on one batch."""
        raise OdtbenchError(f"the critic loss needs a critic; rl_kind {self.name!r} has none")

    def rl_term(self, batch: Batch, out: Tensor | SquashedGaussian,
                stats: dict[str, Tensor]) -> Tensor:
        """L_RL of paper Eq. 2 from the DT's output `out` on the batch (with gradient);
        extra statistics go into `stats`."""
        raise OdtbenchError(f"a non-zero rl_coeff needs a critic but rl_kind is {self.name!r}")

    def begin_round(self) -> None:
        """Called before each online iteration's updates (the loop's one round hook)."""

    def after_actor_step(self, stats: dict[str, Tensor]) -> None:
        """Called after each actor step with its statistics (the kind may take some out)."""

    def diagnostics(self) -> dict[str, float | None]:
        """The kind's columns of the next diagnostics.csv row (and reset what they sum)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries of the kind's own state beyond its critics."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved (`state` is the agent's whole checkpoint entry)."""

    # ------------------------------------------------------------------ shared parts
    def q_critic(self, hp: DTHyperparameters) -> Critic:
        """The twin (or single, n_critics) Q critic of docs/methods/dt-family.md §3."""
        a = self.agent
        return Critic(QEnsemble(a.state_dim, a.act_dim, int(hp.n_critics),
                                int(hp.critic_hidden), bool(hp.critic_layernorm)).to(a.device))

    def v_critic(self, hp: DTHyperparameters) -> Critic:
        """V(s): the critic's MLP with no action input, one member."""
        a = self.agent
        return Critic(QEnsemble(a.state_dim, 0, 1, int(hp.critic_hidden),
                                bool(hp.critic_layernorm)).to(a.device))

    @staticmethod
    def v(net: QEnsemble, states: Tensor) -> Tensor:
        """V(s) of a value net (or its target), shape (...)."""
        return net(states, states[..., :0])[0]

    def q_min(self, states: Tensor, actions: Tensor) -> Tensor:
        """min_i Q_i(s, a) with the critic's parameters detached (gradients reach the actions)."""
        return self.critics["critic"].net(states, actions, detach_params=True).min(dim=0).values

    def next_actions(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """The target DT's next actions and their log pi (None: deterministic head)."""
        return self.agent.target_next_actions(batch)

    def q_td_loss(self, batch: Batch, y: Tensor) -> tuple[Tensor, Tensor]:
        """L_Q = mean over all B*K of mask * sum_i (Q_i(s, a) - y)^2 (padding in the
        denominator, docs/methods/dt-family.md §3), and mean Q over real entries."""
        mask = batch["mask"]
        q = self.critics["critic"].net(batch["states"], batch["actions"])  # (n_critics, B, K)
        loss = (mask * (q - y).pow(2).sum(dim=0)).mean()
        return loss, (q.detach() * mask).sum() / (mask.sum() * q.shape[0])

    def bootstrap(self, batch: Batch, q_next: Tensor) -> Tensor:
        """y = r + gamma (1 - d) q_next (paper Eq. 3; a padded d = 2 is masked later)."""
        return batch["rewards"] + self.agent.gamma * (1.0 - batch["dones"]) * q_next

    @staticmethod
    def log_likelihood(out: Tensor | SquashedGaussian, actions: Tensor) -> Tensor:
        """log pi(a_data | ctx), or the deterministic head's surrogate -||a_hat - a||^2."""
        if isinstance(out, SquashedGaussian):
            return out.log_prob(actions)
        return -(out - actions).pow(2).sum(dim=-1)

    def lambda_targets(self, batch: Batch, lam: float) -> Tensor:
        """TD(lambda) targets G_t of V inside the segment, bootstrapped by the target V."""
        with torch.no_grad():
            next_v = self.v(self.critics["value"].target, batch["next_states"])
            return L.lambda_returns(batch["rewards"], batch["dones"], next_v, lam,
                                    self.agent.gamma)

    def lambda_value_loss(self, batch: Batch, lam: float) -> tuple[Tensor, Tensor]:
        """(L_V = mean_real (V(s_t) - G_t)^2, mean V over real entries): AWR's and PPO's critic."""
        mask = batch["mask"]
        v = self.v(self.critics["value"].net, batch["states"])
        loss = L.mean_real((v - self.lambda_targets(batch, lam)).pow(2), mask)
        return loss, L.mean_real(v.detach(), mask)


__all__ = ["ACTION_BOUND", "Batch", "Critic", "RLKind", "frozen_copy"]
