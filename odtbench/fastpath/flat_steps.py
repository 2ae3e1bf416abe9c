"""The optimiser, gradient-clip and Polyak steps of the DT agent as pure tensor maths on flat
buffers, for the compiled training unit (odtbench.fastpath.unit).

Each function returns new tensors and mutates nothing; it is the formula of the eager step it
stands for (named in its docstring), op for op where the eager step is `_foreach_*` code, so
that the compiled unit equals the reference to float32 rounding. Per-step scalars (learning
rate, bias corrections) come in as float32 tensors computed on the host the way the eager
optimisers compute them: a compiled graph then serves every step without recompiling.
"""

from __future__ import annotations

import torch
from torch import Tensor

CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def clip_grad_norm(grad: Tensor, max_norm: float) -> Tensor:
    """`clip_grad_norm_` on one flat gradient: g * min(max_norm / (||g|| + 1e-6), 1)."""
    coef = max_norm / (torch.linalg.vector_norm(grad) + CLIP_EPS)
    return grad * coef.clamp(max=1.0)


def lamb_scalars(lr: float, step: int, betas: tuple[float, float]) -> list[float]:
    """[lr, 1 - b1^t, sqrt(1 - b2^t)] of LAMB's step t (odtbench.methods.optim.Lamb.step)."""
    return [lr, 1.0 - betas[0] ** step, (1.0 - betas[1] ** step) ** 0.5]


def lamb(w: Tensor, g: Tensor, m: Tensor, v: Tensor, scalars: Tensor, *,
         betas: tuple[float, float], eps: float, weight_decay: float,
         segments: Tensor | None, max_grad_norm: float | None,
         ) -> tuple[Tensor, Tensor, Tensor]:
    """`odtbench.methods.optim.Lamb.step` on one flat parameter with its per-tensor `segments`:
    (w, m, v) after the step. scalars: `lamb_scalars` as a float32 tensor."""
    lr, bc1, bc2_sqrt = scalars[0], scalars[1], scalars[2]
    if max_grad_norm:
        g = g / (torch.linalg.vector_norm(g) / max_grad_norm).clamp(min=1.0)
    beta1, beta2 = betas
    m = torch.lerp(m, g, 1.0 - beta1)
    v = torch.addcmul(v * beta2, g, g, value=1.0 - beta2)
    update = m / (v.sqrt() / bc2_sqrt + eps) / bc1
    if weight_decay != 0:
        update = update + weight_decay * w
        if segments is None:
            w_norm, u_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(update)
        else:
            w_norm = torch.segment_reduce(w.square(), "sum", lengths=segments).sqrt()
            u_norm = torch.segment_reduce(update.square(), "sum", lengths=segments).sqrt()
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm,
                            torch.ones_like(w_norm))
        if segments is not None:
            ratio = ratio.repeat_interleave(segments, output_size=w.numel())
        update = update * ratio
    return w - lr * update, m, v


def adamw_scalars(lr: float, weight_decay: float, step: int,
                  betas: tuple[float, float]) -> list[float]:
    """[1 - lr wd, sqrt(1 - b2^t), -lr / (1 - b1^t)] as torch's foreach AdamW computes them."""
    return [1 - lr * weight_decay, (1 - betas[1] ** step) ** 0.5, (lr / (1 - betas[0] ** step)) * -1]


def adamw(w: Tensor, g: Tensor, m: Tensor, v: Tensor, scalars: Tensor, *,
          betas: tuple[float, float], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """torch.optim.AdamW(foreach=True) on one flat parameter: (w, m, v) after the step.
    scalars: `adamw_scalars` as a float32 tensor."""
    beta1, beta2 = betas
    w = w * scalars[0]
    m = torch.lerp(m, g, 1.0 - beta1)
    v = torch.addcmul(v * beta2, g, g, value=1.0 - beta2)
    # addcdiv_(w, m, denom, value=step_size): w + step_size * (m / denom)
    return w + scalars[2] * (m / (v.sqrt() / scalars[1] + eps)), m, v


def polyak(target: Tensor, online: Tensor, tau: float) -> Tensor:
    """`odtbench.methods.optim.polyak_`: (1 - tau) target + tau online."""
    return torch.lerp(target, online, tau)


__all__ = ["adamw", "adamw_scalars", "clip_grad_norm", "lamb", "lamb_scalars", "polyak"]
