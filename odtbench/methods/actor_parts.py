"""The parts of a DT actor's update that ODT's agents share: the actor optimiser and the
entropy temperature (docs/methods/dt-family.md §2, §4). `DTAgent` (ODT, TD3+ODT, DDPG+ODT,
TD3) and `PDTAgent` (docs/methods/pdt.md) both build theirs from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from odtbench.errors import UnknownChoiceError
from odtbench.methods.nets import DropoutMasks
from odtbench.methods.optim import Lamb, adam, linear_warmup

ACTOR_OPTIMIZERS = ("lamb", "adam")
TEMPERATURE_LR = 1e-4  # Adam, betas (0.9, 0.999): fixed in the authors' code
# (docs/methods/dt-family.md §2)


class ActorOptimizer:
    """LAMB (weight decay on every tensor, per-tensor trust ratio) or Adam (the study's toy),
    a linear LR warm-up that continues across phases, and a global grad-norm clip before
    each step (docs/methods/dt-family.md §4).

    `segments`: the tensor lengths of a flat parameter (`FlatParameters.sizes`), so LAMB's
    trust ratio stays per tensor. `keep_grads`: zero gradients in place instead of setting
    them to None (a flat buffer's gradient views must stay bound); with None, a parameter
    that got no gradient this step is skipped by the optimiser. `clip_foreach`: torch's
    `clip_grad_norm_` kernel choice (None = torch's default for the device).
    """

    def __init__(self, params: Iterable[Tensor], *, lr: float, weight_decay: float,
                 warmup_steps: int, grad_clip: float | None, kind: str = "lamb",
                 segments: list[int] | None = None, adam_kernel: str = "default",
                 keep_grads: bool = False, clip_foreach: bool | None = None):
        self.params = list(params)
        self.kind = kind
        self.grad_clip = float(grad_clip or 0.0)
        self.keep_grads, self.clip_foreach = keep_grads, clip_foreach
        self.opt: torch.optim.Optimizer
        if kind == "adam":
            self.opt = adam(self.params, float(lr), kernel=adam_kernel,
                            weight_decay=float(weight_decay))
        elif kind == "lamb":
            # LAMB's own global clip at 1.0 is a no-op after a grad-norm clip at <= 1.0 (the
            # divisor is exactly 1; docs/methods/dt-family.md §4), so it is skipped.
            redundant = 0 < self.grad_clip <= Lamb.DEFAULT_MAX_GRAD_NORM
            self.opt = Lamb(self.params, lr=float(lr), weight_decay=float(weight_decay),
                            max_grad_norm=None if redundant else Lamb.DEFAULT_MAX_GRAD_NORM,
                            segments=segments)
        else:
            raise UnknownChoiceError("actor_optimizer", kind, ACTOR_OPTIMIZERS)
        self.scheduler: LambdaLR = linear_warmup(self.opt, int(warmup_steps))

    def step(self, loss: Tensor) -> None:
        """Gradients of loss, clipped; one optimiser step; one warm-up step."""
        self.opt.zero_grad(set_to_none=not self.keep_grads)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=self.clip_foreach)
        self.opt.step()
        self.scheduler.step()


class EntropyTemperature:
    """ODT's entropy temperature T = exp(log T): a standalone scalar with its own Adam, moved
    by loss_T = T * sg(H - H_target) with H_target = -act_dim, which lowers T while the
    policy's entropy H exceeds the target (docs/methods/dt-family.md §2)."""

    def __init__(self, init_temperature: float, act_dim: int,
                 device: str | torch.device = "cpu", adam_kernel: str = "default"):
        self.log_temperature = torch.tensor(math.log(float(init_temperature)),
                                            device=device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.adam_kernel = adam_kernel
        self.reset_optimizer()

    def reset_optimizer(self) -> None:
        """A fresh Adam (T itself is kept)."""
        self.opt = adam([self.log_temperature], TEMPERATURE_LR, kernel=self.adam_kernel,
                        betas=(0.9, 0.999))

    def value(self) -> Tensor:
        """T, attached to log T's graph (detach it inside actor losses)."""
        return self.log_temperature.exp()

    def step(self, entropy: Tensor) -> None:
        """One Adam step on loss_T for the entropy estimate of the actor's batch."""
        loss = self.log_temperature.exp() * (entropy.detach() - self.target_entropy)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"log_temperature": self.log_temperature.detach().clone(),
                "temperature_opt": self.opt.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.opt.load_state_dict(state["temperature_opt"])


class WithActorParts:
    """An agent built from an `ActorOptimizer` and an `EntropyTemperature`: their pieces under
    the names tests, probes and checkpoints read."""

    actor_optimizer: ActorOptimizer
    temperature: EntropyTemperature

    @property
    def scheduler(self) -> LambdaLR:
        return self.actor_optimizer.scheduler

    @property
    def log_temperature(self) -> Tensor:
        return self.temperature.log_temperature

    @property
    def target_entropy(self) -> float:
        return self.temperature.target_entropy


__all__ = ["ACTOR_OPTIMIZERS", "TEMPERATURE_LR", "ActorOptimizer", "EntropyTemperature",
           "WithActorParts"]


@dataclass(frozen=True)
class ActorNoise:
    """The randomness of one actor forward, drawn before it: the DT's dropout masks (in
    `DecisionTransformer.dropout_mask_shapes` order) and the stochastic head's entropy eps."""

    masks: DropoutMasks
    eps: Tensor | None = None
