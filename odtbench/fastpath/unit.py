"""The DT agent's training unit as one compiled function (speed "fast", docs/performance.md).

One unit is what `odtbench.methods.dt_agent.policy_delayed_unit` does: d fresh batches, a
critic step on each, the actor step (loss, grad-norm clip, LAMB with its warm-up) right after
the first critic step, then the Polyak steps. Here all of it is one `torch.compile(fullgraph=
True)` function of flat buffers: gradients by `torch.func.grad_and_value` of the reference
agent's own public loss methods (`DTAgent.critic_loss`, `DTAgent.actor_loss`; one copy of the
maths) run through `torch.func.functional_call` on views of the flat buffers, and the
optimiser steps from `odtbench.fastpath.flat_steps`.

Randomness is drawn outside the graph, in the reference's order (batch, target eps and
smoothing noise of each critic step, then the actor's dropout masks and entropy eps) from the
same generators, and passed in: the fast path's numbers equal the reference's to float32
rounding (tests/test_fastpath.py). The optimisers' state stays in the reference's
`torch.optim` objects (moments updated in place, step counters and the warm-up schedule on the
host), so a checkpoint has one format for both paths and a run may resume on either.
ODT's temperature step (a scalar Adam) stays eager, after the graph. Step counters stay on
the host and come in as float32 scalars: torch 2.13 drops in-place updates of 0-dim float64
inputs inside a compiled graph. Not yet run on a GPU: there the buffers may need
`torch._dynamo.mark_static_address` for CUDA graphs to take the in-place updates (the GPU
check, benchmarks/gpu_check.sh, will say).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value

from odtbench.fastpath import flat_steps as fs
from odtbench.methods.actor_parts import ActorNoise
from odtbench.methods.optim import FlatParameters

# the host agent, a `odtbench.methods.dt_agent.DTAgent` (not imported: it imports this package)
DTAgent = Any
Batch = Mapping[str, Tensor]


class _Nets(nn.Module):
    """The agent's networks under one root, for `functional_call`: forward(fn, *args) runs
    fn(*args) while the networks hold the tensors functional_call swapped in."""

    def __init__(self, nets: Mapping[str, nn.Module]):
        super().__init__()
        for name, net in nets.items():
            self.add_module(name, net)

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


class _Layout:
    """Names and shapes of a network's parameters inside its flat buffer."""

    def __init__(self, prefix: str, module: nn.Module):
        named = list(module.named_parameters())
        self.names = [f"{prefix}.{n}" for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.sizes), self.shapes,
                                                  strict=True)}


def _adam_state(opt: torch.optim.Optimizer, param: Tensor) -> dict[str, Tensor]:
    """The optimiser's state of `param`, created as its first step would (same checkpoint)."""
    state = opt.state[param]
    if not state:
        if isinstance(opt, torch.optim.Adam):  # AdamW too
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


class FastUnit:
    """`DTAgent.train_unit` for rl_kind td3, ddpg and none as one compiled function per
    (rl_coeff, sup_coeff) pair, i.e. one per phase."""

    def __init__(self, agent: DTAgent):
        self.agent = a = agent
        critic = a.critics.get("critic")
        nets: dict[str, nn.Module] = {"actor": a.actor, "actor_target": a.actor_target}
        self.critic_flat: FlatParameters | None = None
        if critic is not None:
            nets.update(critic=critic.net, critic_target=critic.target)
            self.critic_flat, self.critic_target_flat = critic.flat, critic.target_flat
        self.critic = critic  # its optimiser is read per call: reset_optimizers replaces it
        self.nets = _Nets(nets)
        self.layout = {name: _Layout(name, net) for name, net in nets.items()}
        opt = a.actor_opt
        group = opt.param_groups[0]
        self._lamb_kw: dict[str, Any] = dict(
            betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"],
            segments=torch.tensor(a.actor_flat.sizes, device=a.device),
            max_grad_norm=getattr(opt, "max_grad_norm", None))
        self._compiled: dict[tuple[float, float], Callable[..., Any]] = {}

    # ------------------------------------------------------------------ the graph
    def _unit_fn(self, rl_coeff: float, sup_coeff: float) -> Callable[..., Any]:
        a, layout, nets = self.agent, self.layout, self.nets
        target_actor = a.kind.target_actor
        tau, grad_clip, lamb_kw = a.tau, a.grad_clip, self._lamb_kw
        adam_kw: dict[str, Any] = {}
        if self.critic is not None:
            g = self.critic.opt.param_groups[0]
            adam_kw = dict(betas=g["betas"], eps=g["eps"])

        def critic_loss(cw: Tensor, ctw: Tensor, atw: Tensor, batch: Batch) -> Any:
            params = {**layout["critic"].views(cw), **layout["critic_target"].views(ctw),
                      **layout["actor_target"].views(atw)}
            loss, q_mean = functional_call(nets, params, (a.critic_loss, batch))
            return loss, q_mean

        def actor_loss(aw: Tensor, cw: Tensor | None, batch: Batch, masks: list[Tensor | None],
                       eps: Tensor | None) -> Any:
            params = layout["actor"].views(aw)
            if cw is not None:
                params.update(layout["critic"].views(cw))
            noise = ActorNoise(masks, eps)

            def loss_fn(b: Batch) -> Any:
                return a.actor_loss(b, rl_coeff, sup_coeff, noise)

            return functional_call(nets, params, (loss_fn, batch))

        def unit(aw0: Tensor, am0: Tensor, av0: Tensor, atw0: Tensor,
                 critic_bufs: tuple[Tensor, Tensor, Tensor, Tensor] | None,
                 batches: list[Batch], masks: list[Tensor | None], eps: Tensor | None,
                 a_sc: Tensor, c_sc: Tensor | None) -> dict[str, Tensor]:
            aw, am, av, atw = aw0, am0, av0, atw0
            cw = cm = cv = ctw = None
            if critic_bufs is not None:
                cw, cm, cv, ctw = critic_bufs
            metrics: dict[str, Tensor] = {}
            for b, batch in enumerate(batches):
                if cw is not None and cm is not None and cv is not None and ctw is not None \
                        and c_sc is not None:
                    grad, (loss, q_mean) = grad_and_value(critic_loss, has_aux=True)(
                        cw, ctw, atw, batch)
                    cw, cm, cv = fs.adamw(cw, grad, cm, cv, c_sc[b], **adam_kw)
                    metrics["critic_loss"], metrics["q_mean"] = loss.detach(), q_mean
                if b == 0:
                    grad, (loss, stats) = grad_and_value(actor_loss, has_aux=True)(
                        aw, cw, batch, masks, eps)
                    if grad_clip > 0:
                        grad = fs.clip_grad_norm(grad, grad_clip)
                    aw, am, av = fs.lamb(aw, grad, am, av, a_sc, **lamb_kw)
                    if cw is not None and ctw is not None:
                        ctw = fs.polyak(ctw, cw, tau)
                    if target_actor:
                        atw = fs.polyak(atw, aw, tau)
                    metrics.update(stats)
                    metrics["actor_loss"] = loss.detach()
            # the buffers are the reference's own (module views, optimiser state): in place
            for dst, src in ((aw0, aw), (am0, am), (av0, av), (atw0, atw)):
                dst.copy_(src)
            if critic_bufs is not None:
                for dst, new in zip(critic_bufs, (cw, cm, cv, ctw), strict=True):
                    assert new is not None
                    dst.copy_(new)
            return metrics

        return unit

    def _compiled_unit(self, rl_coeff: float, sup_coeff: float) -> Callable[..., Any]:
        key = (float(rl_coeff), float(sup_coeff))
        if key not in self._compiled:
            # CUDA graphs on a GPU (docs/performance.md); a CPU graph is plain inductor code
            mode = "reduce-overhead" if self.agent.device.type == "cuda" else "default"
            self._compiled[key] = torch.compile(self._unit_fn(*key), fullgraph=True,
                                                dynamic=False, mode=mode)
        return self._compiled[key]

    # ------------------------------------------------------------------ the host's part
    def _actor_noise(self, b: int, k: int) -> tuple[list[Tensor | None], Tensor | None]:
        """The actor forward's dropout masks and entropy eps, drawn as the reference draws
        them (odtbench.methods.nets.Dropout.scaled_keep_mask, then randn for the entropy)."""
        a = self.agent
        masks: list[Tensor | None] = []
        for layer, shape in a.actor.transformer.dropout_mask_shapes(b, 3 * k):
            like = torch.empty(shape, device=a.device)
            masks.append(layer.scaled_keep_mask(like) if layer.p > 0 else None)
        eps = torch.randn(b, k, a.act_dim, device=a.device) if a.stochastic else None
        return masks, eps

    def __call__(self, sample: Callable[[], Batch], rl_coeff: float,
                 sup_coeff: float) -> dict[str, Tensor]:
        a = self.agent
        has_critic = self.critic_flat is not None
        batches: list[Batch] = []
        masks: list[Tensor | None] = []
        eps: Tensor | None = None
        for i in range(a.actor_update_interval):  # the reference unit's order of draws
            batch = dict(sample())
            b, k = batch["states"].shape[:2]
            if has_critic:
                if a.stochastic:
                    batch["target_eps"] = torch.randn(b, k, a.act_dim, device=a.device)
                if a.policy_noise > 0:
                    batch["smoothing_noise"] = torch.randn(b, k, a.act_dim, device=a.device)
                batches.append(batch)
            elif i == 0:  # ODT samples d batches and trains on the first (as the reference)
                batches.append(batch)
            if i == 0:
                masks, eps = self._actor_noise(b, k)

        opt, dev = a.actor_opt, a.device
        group = opt.param_groups[0]
        w = a.actor_flat.param
        lamb_state = _adam_state(opt, w)
        step = group["step"] + 1
        a_sc = torch.tensor(fs.lamb_scalars(group["lr"], step, group["betas"]),
                            dtype=torch.float32, device=dev)
        critic_bufs, c_sc = None, None
        if self.critic_flat is not None and self.critic is not None:
            cp = self.critic_flat.param
            c_state = _adam_state(self.critic.opt, cp)
            cg = self.critic.opt.param_groups[0]
            t0 = int(c_state["step"].item())
            c_sc = torch.tensor([fs.adamw_scalars(cg["lr"], cg["weight_decay"], t0 + j + 1,
                                                  cg["betas"]) for j in range(len(batches))],
                                dtype=torch.float32, device=dev)
            critic_bufs = (cp.detach(), c_state["exp_avg"], c_state["exp_avg_sq"],
                           self.critic_target_flat.param.detach())

        a.actor.train()
        metrics = self._compiled_unit(rl_coeff, sup_coeff)(
            w.detach(), lamb_state["exp_avg"], lamb_state["exp_avg_sq"],
            a._actor_target_flat.param.detach(), critic_bufs, batches, masks, eps, a_sc, c_sc)

        group["step"] = step
        opt._opt_called = True  # the step ran, in the graph
        a.scheduler.step()
        if critic_bufs is not None:
            c_state["step"] += len(batches)
        if a.stochastic and (a.entropy_reg or a.kind.moves_temperature):
            a.temperature.step(metrics["entropy"])
        a.kind.after_actor_step(metrics)
        return metrics


__all__ = ["FastUnit"]
