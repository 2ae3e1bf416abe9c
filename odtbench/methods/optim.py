"""LAMB (the timm/NVIDIA variant the authors use), linear warm-up, Polyak averaging, and
flat parameter buffers that make all of them a few whole-buffer operations.

torch ships no LAMB and timm would pull in torchvision, so LAMB is written here from
docs/methods/dt-family.md §4. Every per-parameter operation goes through `torch._foreach_*` (or, on a
flat buffer, one op on one tensor) and no value is read back to the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from odtbench.errors import OdtbenchError


class FlatParameters:
    """A module's parameters, and their gradients, as views into one contiguous buffer each.

    Why: with ~10-30 small tensors per network, every optimiser, clipping or Polyak step of a
    small DT cost one kernel per tensor (docs/performance.md, "One flat buffer"). On the flat
    buffer each is one op; the numbers are the same (element-wise maths) except where LAMB
    sums per-tensor norms in another order. `param` is the leaf to hand to an optimiser;
    `sizes` are the tensors' lengths in `module.parameters()` order (LAMB's trust-ratio
    segments). The gradient views stay bound only while nobody sets `.grad` to None: zero
    gradients with `zero_grad(set_to_none=False)`.
    """

    def __init__(self, module: nn.Module, with_grad: bool = True):
        params = list(module.parameters())
        if not params:
            raise OdtbenchError(f"{type(module).__name__} has no parameters to flatten")
        self.sizes = [p.numel() for p in params]
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
        self.param = nn.Parameter(flat, requires_grad=with_grad)
        flat_grad = torch.zeros_like(flat) if with_grad else None
        if flat_grad is not None:
            self.param.grad = flat_grad
        grads: list[Tensor | None] = (list(flat_grad.split(self.sizes)) if flat_grad is not None
                                      else [None] * len(params))
        for p, data, grad in zip(params, flat.split(self.sizes), grads, strict=True):
            p.data = data.view_as(p)
            if grad is not None:
                p.grad = grad.view_as(p)

    def is_bound(self, module: nn.Module) -> bool:
        """True while every parameter (and gradient) of `module` still views the buffers."""
        ptr = self.param.untyped_storage().data_ptr()
        grad = self.param.grad
        return all(p.untyped_storage().data_ptr() == ptr and (
            grad is None or (p.grad is not None
                             and p.grad.untyped_storage().data_ptr() == grad.untyped_storage().data_ptr()))
            for p in module.parameters())


class Lamb(torch.optim.Optimizer):
    """LAMB with bias correction, decoupled-in-update weight decay and per-tensor trust ratio.

    Per step (per parameter w with gradient g, after a global grad-norm clip to max_grad_norm):
        m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
        u = (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * w      (wd on every tensor)
        r = ||w|| / ||u||  if both norms > 0 else 1                    (only when wd != 0)
        w = w - lr * r * u
    `segments`: for one flat parameter (`FlatParameters.param`), the lengths of the tensors it
    holds; r is then taken per segment, exactly as if each tensor were its own parameter.
    """

    DEFAULT_MAX_GRAD_NORM = 1.0  # timm's default, which the authors keep (docs/methods/dt-family.md §4)

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 max_grad_norm: float | None = DEFAULT_MAX_GRAD_NORM,
                 segments: list[int] | None = None):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise OdtbenchError(f"invalid LAMB settings lr={lr} betas={betas} eps={eps} "
                                f"weight_decay={weight_decay}; use lr, eps, wd >= 0 and betas in [0, 1)")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, step=0)
        super().__init__(params, defaults)
        self.max_grad_norm = max_grad_norm
        self._segments: Tensor | None = None
        if segments is not None:
            flat = [p for g in self.param_groups for p in g["params"]]
            if len(flat) != 1 or sum(segments) != flat[0].numel():
                raise OdtbenchError(f"LAMB segments {sum(segments)} long need exactly one flat "
                                    f"parameter of that length; got {[p.numel() for p in flat]}")
            self._segments = torch.tensor(segments, device=flat[0].device)

    def _scale_by_trust_ratio_(self, params: list[Tensor], update: list[Tensor]) -> None:
        """update *= ||w|| / ||u|| (1 where either norm is 0), per tensor or per segment."""
        seg = self._segments
        if seg is None:
            w_norm = torch.stack(torch._foreach_norm(params))
            u_norm = torch.stack(torch._foreach_norm(update))
        else:
            w_norm = torch.segment_reduce(params[0].square(), "sum", lengths=seg).sqrt_()
            u_norm = torch.segment_reduce(update[0].square(), "sum", lengths=seg).sqrt_()
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        if seg is None:
            torch._foreach_mul_(update, list(ratio.unbind()))
        else:
            update[0].mul_(ratio.repeat_interleave(seg, output_size=params[0].numel()))

    def _global_clip_divisor(self) -> Tensor | None:
        """max(||g||_global / max_grad_norm, 1) over all groups, as a device tensor."""
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not self.max_grad_norm or not grads:
            return None
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        return torch.clamp(norm / self.max_grad_norm, min=1.0)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch.optim signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        divisor = self._global_clip_divisor()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if divisor is not None:
                grads = torch._foreach_div(grads, divisor)
            for p in params:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p)
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            beta1, beta2 = group["betas"]
            group["step"] += 1
            bc1 = 1.0 - beta1 ** group["step"]
            bc2 = 1.0 - beta2 ** group["step"]

            torch._foreach_lerp_(m, grads, 1.0 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(bc2))
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(m, denom)
            torch._foreach_div_(update, bc1)
            wd = group["weight_decay"]
            if wd != 0:
                torch._foreach_add_(update, params, alpha=wd)
                self._scale_by_trust_ratio_(params, update)
            torch._foreach_add_(params, update, alpha=-group["lr"])
        return loss


def linear_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int) -> LambdaLR:
    """LR factor min((step + 1) / warmup_steps, 1): linear warm-up, then constant, no decay."""
    if warmup_steps < 0:
        raise OdtbenchError(f"warmup_steps must be >= 0, got {warmup_steps}")
    warmup = max(int(warmup_steps), 1)
    return LambdaLR(optimizer, lambda step: min((step + 1) / warmup, 1.0))


@torch.no_grad()
def polyak_(target_params: Iterable[Tensor], online_params: Iterable[Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place."""
    target, online = list(target_params), list(online_params)
    if len(target) != len(online):
        raise OdtbenchError(f"polyak: {len(target)} target vs {len(online)} online tensors; "
                            "pass the parameters of two copies of the same network")
    torch._foreach_lerp_(target, online, tau)


def adam(params: Iterable[Tensor], lr: float, *, kernel: str = "default",
         **kwargs: Any) -> torch.optim.Adam:
    """The one Adam builder. `kernel`: "default" (torch's choice), "foreach" (multi-tensor,
    bit-identical to the CPU default) or "fused" (fastest; rounds differently; torch's
    default where the fused kernel is unavailable)."""
    params = list(params)
    if kernel == "fused":
        try:
            return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(params, lr=lr, **kwargs)
    if kernel == "foreach":
        return torch.optim.Adam(params, lr=lr, foreach=True, **kwargs)
    if kernel != "default":
        raise OdtbenchError(f"unknown Adam kernel {kernel!r}; use default, foreach or fused")
    return torch.optim.Adam(params, lr=lr, **kwargs)
