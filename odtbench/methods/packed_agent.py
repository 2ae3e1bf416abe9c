"""S seeds' DT agents as one batched agent: the same updates as S `DTAgent`s, in one set of ops.

Why (docs/performance.md, "Packed seeds"): at the study's small sizes an update costs its
launches and Python, not its arithmetic, so S seeds in one call cost little more than one.

Every network holds its S copies as stacked weights with a leading seed dimension, in one
flat buffer per network (`PackedFlat`, laid out parameter by parameter, each (S, *shape)
block contiguous); the layers are written out as batched matmuls (`torch.baddbmm`) over that
dimension. What stays per seed, exactly as in S separate agents:
- the losses: each seed's loss is its own mean; the summed loss backpropagates to each seed
  its own gradient;
- the optimisers: AdamW, Adam and LAMB's moments are element-wise; LAMB's trust ratio is one
  segment per (seed, tensor); the actor's grad-norm clip takes each seed's own norm;
- the random streams: dropout masks, target smoothing noise and the stochastic head's samples
  come from one generator per seed (`gens`), which stands in for that seed's global torch
  stream: the same draws, in the same order, as the unpacked agent of that seed;
- the batches: one per seed, stacked along the leading dimension.
A seed's checkpoint (`seed_state_dict`) is a `DTAgent.state_dict()`, so a seed packed or not
resumes from the same files. The speed options (compile, bf16, fused) are not packed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odtbench.errors import OdtbenchError
from odtbench.methods.actor_parts import TEMPERATURE_LR
from odtbench.methods.dt_agent import ACTION_BOUND, DTAgent, policy_delayed_unit
from odtbench.nets import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    PAD_LOGIT,
    SquashedGaussian,
    causal_attention_weights,
)
from odtbench.optim import Lamb, adam, linear_warmup, polyak_
from odtbench.packing import PACKED_RL_KINDS

Batch = Mapping[str, Tensor]  # every tensor with a leading seed dimension


class PackedFlat:
    """S modules' parameters (and gradients) as (S, *shape) views into one buffer each.

    The buffer is parameter-major: parameter k's S copies form one contiguous block, so every
    layer reads its (S, ...) weight without a copy. `index[s]` lists, in the unpacked
    `FlatParameters` order (parameters in turn, each flattened), where seed s's elements sit;
    `segments` are the (parameter, seed) block lengths in buffer order (LAMB's trust ratio)."""

    def __init__(self, modules: Sequence[nn.Module], with_grad: bool = True):
        self.S = len(modules)
        named = [dict(m.named_parameters()) for m in modules]
        self.names = list(named[0])
        self.shapes = {n: tuple(named[0][n].shape) for n in self.names}
        sizes = [named[0][n].numel() for n in self.names]
        with torch.no_grad():
            flat = torch.cat([torch.stack([d[n].detach().reshape(-1) for d in named]).reshape(-1)
                              for n in self.names])
        self.param = nn.Parameter(flat, requires_grad=with_grad)
        # the gradient buffer (empty without gradients); `param.grad` is this tensor
        self.grad = torch.zeros_like(flat) if with_grad else flat.new_empty(0)
        if with_grad:
            self.param.grad = self.grad
        self.tensors: dict[str, Tensor] = {}
        offsets: list[int] = []
        off = 0
        for n, size in zip(self.names, sizes, strict=True):
            block = slice(off, off + self.S * size)
            t = nn.Parameter(torch.empty(0, dtype=flat.dtype), requires_grad=with_grad)
            t.data = flat[block].view(self.S, *self.shapes[n])
            if with_grad:
                t.grad = self.grad[block].view(self.S, *self.shapes[n])
            self.tensors[n] = t
            offsets.append(off)
            off += self.S * size
        seeds = torch.arange(self.S, device=flat.device)
        self.index = torch.cat([o + seeds[:, None] * size + torch.arange(size, device=flat.device)
                                for o, size in zip(offsets, sizes, strict=True)], dim=1)
        self.segments = torch.tensor([size for size in sizes for _ in range(self.S)],
                                     device=flat.device)
        self.seed_of = torch.cat([seeds.repeat_interleave(size) for size in sizes])

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def to_seed(self, flat: Tensor, s: int) -> Tensor:
        """Seed s's part of a buffer laid out like `param`, in the unpacked flat order."""
        return flat[self.index[s]]

    def from_seeds(self, rows: Sequence[Tensor]) -> Tensor:
        """The buffer laid out like `param` from S unpacked-order flat vectors."""
        out = torch.empty_like(self.param.detach())
        out[self.index.reshape(-1)] = torch.stack([r.reshape(-1) for r in rows]).reshape(-1).to(out)
        return out

    def module_state(self, s: int) -> dict[str, Tensor]:
        return {n: self.tensors[n].detach()[s].clone() for n in self.names}

    def load_module_states(self, states: Sequence[Mapping[str, Tensor]]) -> None:
        with torch.no_grad():
            for n in self.names:
                self.tensors[n].copy_(torch.stack([st[n] for st in states]))

    def per_seed_norms(self, flat: Tensor) -> Tensor:
        """The L2 norm of each seed's part of `flat`, shape (S,)."""
        sq = torch.segment_reduce(flat.square(), "sum", lengths=self.segments)
        return sq.view(-1, self.S).sum(0).sqrt_()


# ---------------------------------------------------------------------------- layers

def _linear(p: PackedFlat, name: str, x: Tensor) -> Tensor:
    """x (S, ..., in) @ W_s^T + b_s for each seed s."""
    w, b = p[f"{name}.weight"], p[f"{name}.bias"]
    lead = x.shape[1:-1]
    y = torch.baddbmm(b.unsqueeze(1), x.reshape(x.shape[0], -1, x.shape[-1]), w.transpose(1, 2))
    # a 3-D input keeps baddbmm's own output, not a view of it: an in-place ReLU on a view
    # makes autograd zero-fill and copy the whole activation in backward (nets._Block)
    return y if len(lead) == 1 else y.view(x.shape[0], *lead, w.shape[1])


def _layer_norm(p: PackedFlat, name: str, x: Tensor) -> Tensor:
    w, b = p[f"{name}.weight"], p[f"{name}.bias"]
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(b.view(shape), F.layer_norm(x, x.shape[-1:], eps=1e-5), w.view(shape))


def _keep_mask(x: Tensor, p: float, gens: Sequence[torch.Generator]) -> Tensor:
    """`nets.Dropout.scaled_keep_mask` per seed: seed s's mask from gens[s], the same draws."""
    S, n = x.shape[0], x[0].numel()
    bits = torch.empty(S, (n + 1) // 2, dtype=torch.int64, device=x.device)
    for s, g in enumerate(gens):
        bits[s].random_(generator=g)
    lanes = bits.view(torch.int32)[:, :n].bitwise_and(0x7FFFFFFF)
    keep = (lanes >= round(p * 2**31)).view(x.shape)
    return keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def _dropout(x: Tensor, p: float, gens: Sequence[torch.Generator] | None) -> Tensor:
    if gens is None or p == 0.0:
        return x
    return x * _keep_mask(x, p, gens)


def _randn(like: Tensor, gens: Sequence[torch.Generator]) -> Tensor:
    """torch.randn_like(like[s]) from gens[s], stacked."""
    return torch.stack([torch.randn(like.shape[1:], generator=g, dtype=like.dtype,
                                    device=like.device) for g in gens])


def _rsample_with_log_prob(dist: SquashedGaussian,
                           gens: Sequence[torch.Generator]) -> tuple[Tensor, Tensor]:
    u = dist.mu + dist.std * _randn(dist.mu, gens)
    return torch.tanh(u), dist._log_prob_u(u)


class PackedDT:
    """S Decision Transformers (odtbench.nets.DecisionTransformer) as one batched forward."""

    def __init__(self, flat: PackedFlat, n_layer: int, n_head: int, dropout: float,
                 embed_dropout: float, stochastic: bool):
        self.p, self.n_layer, self.n_head = flat, n_layer, n_head
        self.dropout, self.embed_dropout, self.stochastic = dropout, embed_dropout, stochastic

    def _attention(self, i: int, x: Tensor, pad_bias: Tensor | None,
                   gens: Sequence[torch.Generator] | None) -> Tensor:
        S, b, n, d = x.shape
        pre = f"transformer.blocks.{i}.attn"
        q, k, v = (t.reshape(S, b, n, self.n_head, d // self.n_head).transpose(2, 3)
                   for t in _linear(self.p, f"{pre}.qkv", x).split(d, dim=-1))
        drop = gens if self.dropout > 0 else None
        if pad_bias is None and drop is None:  # the unpacked agent's SDPA fast path
            y = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1),
                                               is_causal=True).view(S, b, self.n_head, n, -1)
        else:
            att = causal_attention_weights(q, k, pad_bias)
            if drop is not None:
                att = att * _keep_mask(att, self.dropout, drop)
            y = att @ v
        y = _linear(self.p, f"{pre}.proj", y.transpose(2, 3).reshape(S, b, n, d))
        return _dropout(y, self.dropout, gens)

    def __call__(self, states: Tensor, actions: Tensor, rtg: Tensor, mask: Tensor | None,
                 gens: Sequence[torch.Generator] | None) -> Tensor | SquashedGaussian:
        """Inputs (S, B, T, ·), rtg (S, B, T); gens None = eval mode (no dropout)."""
        p = self.p
        S, b, t, _ = states.shape
        tokens = torch.stack((_linear(p, "embed_return", rtg.unsqueeze(-1)),
                              _linear(p, "embed_state", states),
                              _linear(p, "embed_action", actions)), dim=3).reshape(S, b, 3 * t, -1)
        pad_bias = None
        if mask is not None:
            key_mask = mask.repeat_interleave(3, dim=-1)
            pad_bias = ((1.0 - key_mask.to(tokens.dtype)) * PAD_LOGIT)[:, :, None, None, :]
        x = _dropout(_layer_norm(p, "embed_ln", tokens), self.embed_dropout, gens)
        for i in range(self.n_layer):
            pre = f"transformer.blocks.{i}"
            x = x + self._attention(i, _layer_norm(p, f"{pre}.ln_1", x), pad_bias, gens)
            h = _linear(p, f"{pre}.mlp.0", _layer_norm(p, f"{pre}.ln_2", x).reshape(S, -1, x.shape[-1]))
            h = _linear(p, f"{pre}.mlp.2", F.relu(h, inplace=True))
            x = x + _dropout(h, self.dropout, gens).view_as(x)
        h = _layer_norm(p, "transformer.ln_f", x).reshape(S, b, t, 3, -1)[:, :, :, 1]
        if not self.stochastic:
            return torch.tanh(_linear(p, "head.linear", h))
        raw = torch.tanh(_linear(p, "head.log_std", h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw + 1.0)
        return SquashedGaussian(_linear(p, "head.mu", h), log_std)


class PackedQ:
    """S critics ensembles (odtbench.nets.QEnsemble): weights (S, n, in, out)."""

    def __init__(self, flat: PackedFlat, n_critics: int, layernorm: bool):
        self.p, self.n, self.layernorm = flat, n_critics, layernorm

    def _mlp(self, x: Tensor, ws: list[Tensor], bs: list[Tensor]) -> Tensor:
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < len(ws) - 1:
                if self.layernorm:
                    x = F.layer_norm(x, x.shape[-1:])
                x = F.relu(x, inplace=True)
        return x.squeeze(-1)

    def __call__(self, states: Tensor, actions: Tensor) -> Tensor:
        """(S, ..., ·) inputs -> (S, n_critics, ...)."""
        x = torch.cat((states, actions), dim=-1)
        S, lead = x.shape[0], x.shape[1:-1]
        x = x.reshape(S, 1, -1, x.shape[-1]).expand(S, self.n, -1, -1).reshape(S * self.n, -1, x.shape[-1])
        ws = [self.p[f"weights.{i}"].flatten(0, 1) for i in range(3)]
        bs = [self.p[f"biases.{i}"].flatten(0, 1) for i in range(3)]
        return self._mlp(x, ws, bs).view(S, self.n, *lead)

    def q1(self, states: Tensor, actions: Tensor, detach_params: bool = False) -> Tensor:
        """Q1 of each seed, shape (S, ...)."""
        x = torch.cat((states, actions), dim=-1)
        S, lead = x.shape[0], x.shape[1:-1]
        ws = [self.p[f"weights.{i}"][:, 0] for i in range(3)]
        bs = [self.p[f"biases.{i}"][:, 0] for i in range(3)]
        if detach_params:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
        return self._mlp(x.reshape(S, -1, x.shape[-1]), ws, bs).view(S, *lead)


class _PackedCritic:
    """The S seeds' critics, their targets and their AdamW (absent for ODT)."""

    def __init__(self, agents: Sequence[DTAgent], hp: Mapping[str, Any]):
        nets = [a.critic for a in agents]
        targets = [a.critic_target for a in agents]
        if any(n is None for n in nets) or any(t is None for t in targets):
            raise OdtbenchError("every packed seed needs its critic (rl_kind is not 'none')")
        n, ln = int(hp["n_critics"]), bool(hp["critic_layernorm"])
        self.flat = PackedFlat([q for q in nets if q is not None])
        self.target_flat = PackedFlat([q for q in targets if q is not None], with_grad=False)
        self.net, self.target = PackedQ(self.flat, n, ln), PackedQ(self.target_flat, n, ln)
        self.lr, self.wd = float(hp["lr_critic"]), float(hp["critic_weight_decay"])
        self.opt: torch.optim.Optimizer = self.new_optimizer()

    def new_optimizer(self) -> torch.optim.Optimizer:
        """`DTAgent`'s critic AdamW (foreach kernels) over the packed buffer."""
        return torch.optim.AdamW([self.flat.param], lr=self.lr, weight_decay=self.wd, foreach=True)


def _dims(t: Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


class PackedDTAgent:
    """S `DTAgent`s (one per seed, each built as its unpacked run builds it) trained as one.

    `gens[s]` is seed s's stand-in for the global torch stream of its unpacked run (dropout,
    target noise, stochastic samples); batch sampling and exploration noise stay the loop's."""

    def __init__(self, hp: Mapping[str, Any], agents: Sequence[DTAgent],
                 gens: Sequence[torch.Generator]):
        if len(agents) != len(gens) or not agents:
            raise OdtbenchError(f"a packed agent needs one generator per seed; got "
                                f"{len(agents)} agents and {len(gens)} generators")
        a0 = agents[0]
        if a0.rl_kind not in PACKED_RL_KINDS:
            raise OdtbenchError(f"packed seeds support rl_kind {', '.join(PACKED_RL_KINDS)}, not "
                                f"{a0.rl_kind!r}; run the seeds one by one (odtbench run)")
        if a0.speed.enabled:
            raise OdtbenchError(f"speed options {a0.speed.enabled} are not packed; run the "
                                "seeds one by one to use them")
        self.S, self.hp, self.gens = len(agents), dict(hp), list(gens)
        self.device = a0.device
        self.state_dim, self.act_dim, self.context_len = a0.state_dim, a0.act_dim, a0.context_len
        self.stochastic, self.rl_kind = a0.stochastic, a0.rl_kind
        self.entropy_reg, self.gamma, self.tau = a0.entropy_reg, a0.gamma, a0.tau
        self.policy_noise, self.noise_clip = a0.policy_noise, a0.noise_clip
        self.grad_clip, self.actor_update_interval = a0.grad_clip, a0.actor_update_interval
        self.target_entropy, self.train_rtg_constant = a0.target_entropy, a0.train_rtg_constant
        self._shell = a0  # seed views for diagnostics load one seed's weights into it
        self.actor_flat = PackedFlat([a.actor for a in agents])
        self.actor_target_flat = PackedFlat([a.actor_target for a in agents], with_grad=False)
        self.actor, self.actor_target = (
            PackedDT(flat, int(hp["n_layer"]), int(hp["n_head"]), float(hp["dropout"]),
                     float(hp["embed_dropout"]), self.stochastic)
            for flat in (self.actor_flat, self.actor_target_flat))
        self.critic = _PackedCritic(agents, hp) if a0.critic is not None else None
        self.log_temperature = torch.stack([a.log_temperature.detach() for a in agents]).requires_grad_(True)
        self.reset_optimizers()
        self.load_seed_states([a.state_dict() for a in agents])

    @property
    def uses_critic(self) -> bool:
        return self.critic is not None

    def reset_optimizers(self) -> None:
        """Fresh optimisers as `DTAgent.reset_optimizers` builds them, over the packed buffers."""
        hp = self.hp
        self.actor_opt: torch.optim.Optimizer
        if hp.get("actor_optimizer", "lamb") == "adam":
            self.actor_opt = adam([self.actor_flat.param], float(hp["lr_actor"]), kernel="foreach",
                                  weight_decay=float(hp["weight_decay"]))
        else:
            # one trust-ratio segment per (tensor, seed); each seed's clip is done before the
            # step (`_clip_per_seed_`), so LAMB's own global clip is off
            self.actor_opt = Lamb([self.actor_flat.param], lr=float(hp["lr_actor"]),
                                  weight_decay=float(hp["weight_decay"]), max_grad_norm=None,
                                  segments=self.actor_flat.segments.tolist())
        self.scheduler = linear_warmup(self.actor_opt, int(hp["warmup_steps"]))
        if self.critic is not None:
            self.critic.opt = self.critic.new_optimizer()
        self.temperature_opt = adam([self.log_temperature], TEMPERATURE_LR, kernel="foreach",
                                    betas=(0.9, 0.999))

    def _lamb_own_clip(self) -> float | None:
        """LAMB's global clip (1.0) where `DTAgent` keeps it: not after a clip at <= 1.0."""
        if self.hp.get("actor_optimizer", "lamb") == "adam":
            return None
        redundant = 0 < self.grad_clip <= Lamb.DEFAULT_MAX_GRAD_NORM
        return None if redundant else Lamb.DEFAULT_MAX_GRAD_NORM

    @torch.no_grad()
    def _clip_per_seed_(self) -> None:
        """The actor's grad-norm clip (torch's clip_grad_norm_ formula) and LAMB's global
        clip, each over one seed's gradient."""
        flat, grad = self.actor_flat, self.actor_flat.grad
        if self.grad_clip > 0:
            coef = (self.grad_clip / (flat.per_seed_norms(grad) + 1e-6)).clamp_(max=1.0)
            grad.mul_(coef[flat.seed_of])
        lamb_clip = self._lamb_own_clip()
        if lamb_clip:
            divisor = (flat.per_seed_norms(grad) / lamb_clip).clamp_(min=1.0)
            grad.div_(divisor[flat.seed_of])

    def _rtg_input(self, rtg: Tensor) -> Tensor:
        return rtg if self.train_rtg_constant is None else torch.full_like(rtg, self.train_rtg_constant)

    # ------------------------------------------------------------------ updates
    @torch.no_grad()
    def _target_next_actions(self, batch: Batch) -> Tensor:
        actions = batch["actions"]
        shifted = torch.cat((actions[:, :, 1:], torch.zeros_like(actions[:, :, :1])), dim=2)
        out = self.actor_target(batch["next_states"], shifted,
                                self._rtg_input(batch["rtg"][:, :, 1:]), None, None)
        nxt = _rsample_with_log_prob(out, self.gens)[0] if isinstance(out, SquashedGaussian) else out
        return nxt.clamp(-ACTION_BOUND, ACTION_BOUND)

    def critic_step(self, batch: Batch) -> dict[str, Tensor]:
        """`DTAgent.critic_step` for every seed; metrics (S,)."""
        c = self.critic
        if c is None:
            return {}
        mask = batch["mask"]
        with torch.no_grad():
            next_actions = self._target_next_actions(batch)
            if self.rl_kind == "td3" and self.policy_noise > 0:
                noise = (_randn(next_actions, self.gens) * self.policy_noise).clamp(
                    -self.noise_clip, self.noise_clip)
                next_actions = (next_actions + noise).clamp(-ACTION_BOUND, ACTION_BOUND)
            q_next = c.target(batch["next_states"], next_actions).min(dim=1).values
            y = batch["rewards"] + self.gamma * (1.0 - batch["dones"]) * q_next
        q = c.net(batch["states"], batch["actions"])  # (S, n, B, K)
        loss = (mask * (q - y.unsqueeze(1)).pow(2).sum(dim=1)).mean(dim=_dims(mask))
        q_mean = (q.detach() * mask.unsqueeze(1)).sum(dim=_dims(q)) / (mask.sum(dim=_dims(mask)) * q.shape[1])
        c.flat.grad.zero_()
        loss.sum().backward()
        c.opt.step()
        return {"critic_loss": loss.detach(), "q_mean": q_mean}

    def _actor_loss(self, batch: Batch, rl_coeff: float,
                    sup_coeff: float) -> tuple[Tensor, dict[str, Tensor]]:
        states, actions, mask = batch["states"], batch["actions"], batch["mask"]
        dims = _dims(mask)
        n_real = mask.sum(dim=dims)
        out = self.actor(states, actions, self._rtg_input(batch["rtg"][:, :, :-1]), mask, self.gens)
        stats: dict[str, Tensor] = {}
        if isinstance(out, SquashedGaussian):
            log_lik = (out.log_prob(actions) * mask).sum(dim=dims) / n_real
            entropy = (-_rsample_with_log_prob(out, self.gens)[1]).mean(dim=dims)
            temperature = self.log_temperature.exp().detach()
            sup = -(log_lik + self.entropy_reg * temperature * entropy)
            policy_actions = out.mean
            stats.update(entropy=entropy.detach(), temperature=temperature)
        else:
            sup = ((out - actions).pow(2).mean(dim=-1) * mask).sum(dim=dims) / n_real
            policy_actions = out
        loss = sup_coeff * sup
        stats["sup_loss"] = sup.detach()
        if rl_coeff != 0:
            if self.critic is None:
                raise OdtbenchError("a non-zero rl_coeff needs a critic but rl_kind is 'none'; "
                                    "set rl_kind to 'td3' or 'ddpg'")
            q1 = self.critic.net.q1(states, policy_actions, detach_params=True)
            rl = -(q1 * mask).sum(dim=dims) / n_real
            loss = loss + rl_coeff * rl
            stats["rl_loss"] = rl.detach()
        return loss, stats

    def actor_step(self, batch: Batch, rl_coeff: float, sup_coeff: float) -> dict[str, Tensor]:
        """`DTAgent.actor_step` for every seed; metrics (S,)."""
        loss, stats = self._actor_loss(batch, rl_coeff, sup_coeff)
        self.actor_flat.grad.zero_()
        loss.sum().backward()
        self._clip_per_seed_()
        self.actor_opt.step()
        self.scheduler.step()
        if self.stochastic and self.entropy_reg:
            t_loss = (self.log_temperature.exp() * (stats["entropy"] - self.target_entropy)).sum()
            self.temperature_opt.zero_grad(set_to_none=True)
            t_loss.backward()
            self.temperature_opt.step()
        if self.critic is not None:
            polyak_([self.critic.target_flat.param], [self.critic.flat.param], self.tau)
            polyak_([self.actor_target_flat.param], [self.actor_flat.param], self.tau)
        stats["actor_loss"] = loss.detach()
        return stats

    def train_unit(self, sample: Callable[[], Batch], rl_coeff: float,
                   sup_coeff: float) -> dict[str, Tensor]:
        """`DTAgent.train_unit` for every seed: `sample()` gives one stacked batch."""
        return policy_delayed_unit(self, sample, rl_coeff, sup_coeff)

    def reset_targets(self) -> None:
        with torch.no_grad():
            self.actor_target_flat.param.copy_(self.actor_flat.param)
            if self.critic is not None:
                self.critic.target_flat.param.copy_(self.critic.flat.param)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def act(self, states: Tensor, actions: Tensor, rtg: Tensor, mask: Tensor | None = None,
            deterministic: bool = True, sample_seeds: Sequence[int] | None = None) -> Tensor:
        """Actions (S, N, A) for (S, N, T, ·) contexts read at the last position (eval mode);
        mask (S, N, T) for left-padded contexts, None for none. deterministic=False samples
        the stochastic head of the seeds in `sample_seeds` (default all) from their `gens`
        (the others' streams do not advance; they get tanh(mu))."""
        out = self.actor(states, actions, rtg, mask, None)
        if isinstance(out, SquashedGaussian):
            last = SquashedGaussian(out.mu[:, :, -1], out.log_std[:, :, -1])
            action = last.mean
            if not deterministic:
                seeds = range(self.S) if sample_seeds is None else sample_seeds
                action = action.clone()
                for s in seeds:  # SquashedGaussian.rsample of seed s's rows
                    eps = torch.randn(last.mu.shape[1:], generator=self.gens[s],
                                      dtype=last.mu.dtype, device=last.mu.device)
                    action[s] = torch.tanh(last.mu[s] + last.std[s] * eps)
        else:
            action = out[:, :, -1]
        return action.clamp(-ACTION_BOUND, ACTION_BOUND)

    @torch.no_grad()
    def q_values(self, s: int, states: Tensor, actions: Tensor) -> Tensor:
        """Seed s's Q1(s, a), as `DTAgent.q_values`."""
        c = self.critic
        if c is None:
            raise OdtbenchError("q_values needs a critic but rl_kind is 'none'")
        st = torch.as_tensor(states, dtype=self.actor_flat.param.dtype, device=self.device)
        ac = torch.as_tensor(actions, dtype=st.dtype, device=self.device)
        x = torch.cat((st, ac), dim=-1)
        lead = x.shape[:-1]
        ws = [c.flat[f"weights.{i}"][s, :1] for i in range(3)]
        bs = [c.flat[f"biases.{i}"][s, :1] for i in range(3)]
        return c.net._mlp(x.reshape(1, -1, x.shape[-1]), ws, bs).reshape(lead)

    def seed_agent(self, s: int) -> DTAgent:
        """The shell `DTAgent` holding seed s's networks (optimisers not loaded): for the
        diagnostics that the unpacked agent computes."""
        shell = self._shell
        shell.actor.load_state_dict(self.actor_flat.module_state(s))
        if self.critic is not None and shell.critic is not None:
            shell.critic.load_state_dict(self.critic.flat.module_state(s))
        with torch.no_grad():
            shell.log_temperature.copy_(self.log_temperature[s])
        return shell

    # ------------------------------------------------------------------ checkpoints
    def _opt_to_seed(self, opt: torch.optim.Optimizer, s: int, flat: PackedFlat | None) -> dict[str, Any]:
        sd = opt.state_dict()
        state = {i: {k: (v if k == "step" else (v[s].clone() if flat is None else flat.to_seed(v, s)))
                     for k, v in st.items()} for i, st in sd["state"].items()}
        return {"state": state, "param_groups": sd["param_groups"]}

    @staticmethod
    def _opt_from_seeds(opt: torch.optim.Optimizer, sds: Sequence[Mapping[str, Any]],
                        flat: PackedFlat | None) -> None:
        first = sds[0]
        state: dict[Any, dict[str, Any]] = {}
        for i, st in first["state"].items():
            state[i] = {}
            for k, v in st.items():
                vs = [sd["state"][i][k] for sd in sds]
                if k == "step":
                    if any(not torch.equal(torch.as_tensor(x), torch.as_tensor(v)) for x in vs):
                        raise OdtbenchError("packed seeds must be at the same optimiser step; "
                                            "resume them separately")
                    state[i][k] = v
                else:
                    state[i][k] = torch.stack(vs) if flat is None else flat.from_seeds(vs)
        groups = [dict(g) for g in first["param_groups"]]
        if any(sd["param_groups"] != first["param_groups"] for sd in sds[1:]):
            raise OdtbenchError("packed seeds must share their optimiser settings and step")
        opt.load_state_dict({"state": state, "param_groups": groups})

    def seed_state_dict(self, s: int) -> dict[str, Any]:
        """Seed s's part as a `DTAgent.state_dict()`."""
        state = {"actor": self.actor_flat.module_state(s),
                 "actor_target": self.actor_target_flat.module_state(s),
                 "actor_opt": self._opt_to_seed(self.actor_opt, s, self.actor_flat),
                 "scheduler": self.scheduler.state_dict(),
                 "log_temperature": self.log_temperature.detach()[s].clone(),
                 "temperature_opt": self._opt_to_seed(self.temperature_opt, s, None)}
        c = self.critic
        if c is not None:
            state.update(critic=c.flat.module_state(s), critic_target=c.target_flat.module_state(s),
                         critic_opt=self._opt_to_seed(c.opt, s, c.flat))
        return state

    def load_seed_states(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Every seed's `DTAgent.state_dict()`, in seed order."""
        if len(states) != self.S:
            raise OdtbenchError(f"{len(states)} seed states for {self.S} packed seeds")
        expected = set(self.seed_state_dict(0))
        for st in states:
            if set(st) != expected:
                raise OdtbenchError(f"agent checkpoint has keys {sorted(st)}, expected "
                                    f"{sorted(expected)}; it was saved with other hyperparameters")
        self.actor_flat.load_module_states([st["actor"] for st in states])
        self.actor_target_flat.load_module_states([st["actor_target"] for st in states])
        self._opt_from_seeds(self.actor_opt, [st["actor_opt"] for st in states], self.actor_flat)
        if any(st["scheduler"] != states[0]["scheduler"] for st in states[1:]):
            raise OdtbenchError("packed seeds must be at the same warm-up step")
        self.scheduler.load_state_dict(states[0]["scheduler"])
        with torch.no_grad():
            self.log_temperature.copy_(torch.stack([st["log_temperature"] for st in states]))
        self._opt_from_seeds(self.temperature_opt, [st["temperature_opt"] for st in states], None)
        c = self.critic
        if c is not None:
            c.flat.load_module_states([st["critic"] for st in states])
            c.target_flat.load_module_states([st["critic_target"] for st in states])
            self._opt_from_seeds(c.opt, [st["critic_opt"] for st in states], c.flat)


def stack_batches(batches: Sequence[Batch]) -> dict[str, Tensor]:
    """S per-seed batches (the segment sampler's) as one with a leading seed dimension."""
    return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}


__all__ = ["PackedDTAgent", "PackedFlat", "PackedDT", "PackedQ", "stack_batches"]
