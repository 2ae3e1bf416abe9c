"""Networks: GPT-2-style causal transformer, Decision-Transformer actor, batched twin-Q critic.

The networks of docs/methods/dt-family.md §1 (actor) and §3 (critic), as the authors' ODT-derived code builds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odtbench.errors import OdtbenchError

# The authors' GPT-2 (HF 4.11 style) masking value: causally masked logits are *replaced* by
# -1e4 and padded keys then get a further -1e4 added (docs/fidelity.md, "Padded attention").
# A real query row never sees padding or the future (exp(-1e4) is 0 in every float type), but
# a padded query row's own (padded) keys then score w - 1e4 against exactly -1e4 for the later
# real keys, so it attends mostly to those. ODT's entropy averages over padded rows too.
PAD_LOGIT = -1e4
EMBED_DROPOUT = 0.1  # the authors' embd_pdrop: never set, GPT2Config's default (docs/fidelity.md)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
# Dropout masks drawn before a forward, one per dropout layer in the order it draws them
# (None for a layer with p = 0, which draws nothing)
DropoutMasks = Sequence[Tensor | None]


def _init_gpt2(module: nn.Module) -> None:
    """GPT-2 init for transformer internals: N(0, 0.02) weights, zero biases, LN = identity."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Dropout(nn.Module):
    """nn.Dropout with cheaper masks on the CPU, where drawing them is a large share of a
    small DT's update: one 64-bit draw split into two 31-bit lanes instead of torch's one
    bernoulli draw per element (measured: docs/performance.md, "Cheap dropout masks").
    Keep probability 1 - round(p * 2^31) / 2^31: p to within 2^-32. Elsewhere (GPU, eval)
    it is exactly F.dropout."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise OdtbenchError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self._threshold = round(self.p * 2**31)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """`mask`: a `scaled_keep_mask` drawn beforehand (the fast path draws its masks
        outside the compiled update, in this forward's order), else one is drawn here."""
        if mask is not None:
            return x * mask
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training)
        return x * self.scaled_keep_mask(x)

    def scaled_keep_mask(self, x: Tensor) -> Tensor:
        """A mask like x with 1/(1-p) where kept and 0 where dropped (global torch RNG)."""
        n = x.numel()
        bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=x.device).random_()
        # random_() fills [0, 2^63): both 32-bit halves have 31 uniform low bits
        lanes = bits.view(torch.int32)[:n].bitwise_and_(0x7FFFFFFF)
        keep = (lanes >= self._threshold).view(x.shape)
        return keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.attn_pdrop = n_head, dropout
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.resid_drop = Dropout(dropout)
        self.attn_drop = Dropout(dropout)

    def forward(self, x: Tensor, pad_bias: Tensor | None,
                masks: DropoutMasks | None = None) -> Tensor:
        """pad_bias (B, 1, 1, L): -1e4 on padded keys, 0 elsewhere; None = no padding.
        masks: (attention, residual) masks drawn beforehand (see `DecisionTransformer`)."""
        attn_mask, resid_mask = masks if masks is not None else (None, None)
        b, n, d = x.shape
        q, k, v = (
            t.view(b, n, self.n_head, d // self.n_head).transpose(1, 2)
            for t in self.qkv(x).split(d, dim=-1)
        )
        cheap_dropout = attn_mask is not None or (
            self.training and self.attn_pdrop > 0 and x.device.type == "cpu")
        if pad_bias is None and not cheap_dropout:
            # No padding: SDPA's causal fast path gives the same numbers as the -1e4 rule
            # (a masked logit's softmax weight is exactly 0 either way). Scale 1/sqrt(head_dim).
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.attn_pdrop if self.training else 0.0,
            )
        else:
            # Written out: SDPA only takes an additive mask, and the authors' rule *replaces*
            # the causally masked logits (see PAD_LOGIT). Also the path of the cheap CPU
            # dropout masks (dropout after the softmax, as in SDPA).
            att = causal_attention_weights(q, k, pad_bias)
            if attn_mask is not None:
                att = att * attn_mask
            elif cheap_dropout:
                att = att * self.attn_drop.scaled_keep_mask(att)
            elif self.training and self.attn_pdrop > 0:
                att = F.dropout(att, self.attn_pdrop, True)
            y = att @ v
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, d)), resid_mask)


def causal_attention_weights(q: Tensor, k: Tensor, pad_bias: Tensor | None) -> Tensor:
    """softmax(masked_fill(q k^T / sqrt(d), future, -1e4) + pad_bias): the authors' GPT-2 rule.

    q, k (B, H, L, d); pad_bias broadcastable to (B, H, L, L) or None."""
    n = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(future, PAD_LOGIT)
    if pad_bias is not None:
        scores = scores + pad_bias
    return scores.softmax(dim=-1)


class _Block(nn.Module):
    """Pre-LN GPT-2 block: x + Attn(LN(x)), then x + MLP(LN(x)) with a ReLU MLP."""

    def __init__(self, embed_dim: int, n_head: int, dropout: float, n_inner: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim, eps=1e-5)
        self.attn = _SelfAttention(embed_dim, n_head, dropout)
        self.ln_2 = nn.LayerNorm(embed_dim, eps=1e-5)
        # In-place ReLU on the 2-D hidden activation (forward flattens tokens): Linear's
        # backward does not need its output, so this saves a copy. On a 3-D input the Linear
        # output would be a view, and an in-place op on a view makes autograd zero-fill and
        # copy the whole activation in backward instead (~7% of an embed-64 update).
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, n_inner), nn.ReLU(inplace=True), nn.Linear(n_inner, embed_dim),
            Dropout(dropout),
        )

    def forward(self, x: Tensor, pad_bias: Tensor | None,
                masks: DropoutMasks | None = None) -> Tensor:
        """masks: (attention, residual, MLP) masks drawn beforehand, or None."""
        x = x + self.attn(self.ln_1(x), pad_bias, None if masks is None else masks[:2])
        h = self.ln_2(x).flatten(0, -2)
        if masks is None:
            return x + self.mlp(h).view_as(x)
        *layers, drop = self.mlp
        for layer in layers:
            h = layer(h)
        return x + drop(h, masks[2]).view_as(x)


class CausalTransformer(nn.Module):
    """GPT-2 trunk without token or positional embeddings (the DT feeds its own embeddings)."""

    def __init__(self, embed_dim: int, n_layer: int, n_head: int, dropout: float,
                 n_inner: int | None = None, embed_dropout: float = EMBED_DROPOUT):
        super().__init__()
        if embed_dim % n_head:
            raise OdtbenchError(f"embed_dim {embed_dim} is not divisible by n_head {n_head}; "
                                "choose n_head dividing embed_dim")
        # embedding dropout is its own rate: the authors' embd_pdrop stays 0.1 whatever
        # `dropout` (resid/attn) is set to
        self.embed_drop = Dropout(embed_dropout)
        self.blocks = nn.ModuleList(
            _Block(embed_dim, n_head, dropout, n_inner or 4 * embed_dim) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(embed_dim, eps=1e-5)
        self.apply(_init_gpt2)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                masks: DropoutMasks | None = None) -> Tensor:
        """x (B, L, D); key_padding_mask (B, L), 1 = real, 0 = padding, or None (no padding).
        masks: every dropout mask of this forward in `dropout_mask_shapes` order, or None.

        Outputs at padded positions follow the authors' -1e4 rule (see PAD_LOGIT)."""
        pad_bias = None  # None -> SDPA's is_causal fast path
        if key_padding_mask is not None:
            pad_bias = ((1.0 - key_padding_mask.to(x.dtype)) * PAD_LOGIT)[:, None, None, :]
        x = self.embed_drop(x, None if masks is None else masks[0])
        for i, block in enumerate(self.blocks):
            x = block(x, pad_bias, None if masks is None else masks[1 + 3 * i: 4 + 3 * i])
        return self.ln_f(x)

    def dropout_mask_shapes(self, b: int, length: int) -> list[tuple[Dropout, tuple[int, ...]]]:
        """The dropout layers of a training forward on (b, length) tokens with the shapes of
        their masks, in the order the forward draws them: embeddings, then per block the
        attention weights, the attention output and the MLP output."""
        d = self.ln_f.normalized_shape[0]
        out: list[tuple[Dropout, tuple[int, ...]]] = [(self.embed_drop, (b, length, d))]
        for block in self.blocks:
            blk = cast(_Block, block)
            out += [(blk.attn.attn_drop, (b, blk.attn.n_head, length, length)),
                    (blk.attn.resid_drop, (b, length, d)),
                    (cast(Dropout, blk.mlp[-1]), (b * length, d))]
        return out


def _tanh_log_det_jacobian(u: Tensor) -> Tensor:
    """log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class SquashedGaussian:
    """tanh(N(mu, std^2)) per action dimension; log-probs are summed over the last dim."""

    def __init__(self, mu: Tensor, log_std: Tensor):
        self.mu, self.log_std = mu, log_std
        self.std = log_std.exp()

    @property
    def mean(self) -> Tensor:
        """The action used for evaluation: tanh(mu)."""
        return torch.tanh(self.mu)

    def _log_prob_u(self, u: Tensor) -> Tensor:
        z = (u - self.mu) / self.std
        log_normal = -0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2.0 * math.pi)
        return (log_normal - _tanh_log_det_jacobian(u)).sum(-1)

    def log_prob(self, action: Tensor) -> Tensor:
        """log pi(a) for actions in (-1, 1) (callers clamp them to +-(1-1e-6))."""
        return self._log_prob_u(torch.atanh(action))

    def rsample_with_log_prob(self, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """eps: the standard-normal draw (the fast path draws it beforehand), else drawn here."""
        u = self.mu + self.std * (torch.randn_like(self.mu) if eps is None else eps)
        return torch.tanh(u), self._log_prob_u(u)  # log-prob from u avoids atanh(tanh(u))

    def rsample(self) -> Tensor:
        return self.rsample_with_log_prob()[0]

    def entropy(self, eps: Tensor | None = None) -> Tensor:
        """One-sample Monte-Carlo entropy estimate, -log pi(a~), a~ reparameterised."""
        return -self.rsample_with_log_prob(eps)[1]


class GaussianHead(nn.Module):
    """ODT's action head: a tanh-squashed Gaussian with a linear mean and a linear log-std
    squashed into [LOG_STD_MIN, LOG_STD_MAX]. Public: PDT builds its policy and latent heads
    on it (odtbench_baselines.pdt)."""

    def __init__(self, embed_dim: int, act_dim: int):
        super().__init__()
        self.mu = nn.Linear(embed_dim, act_dim)
        self.log_std = nn.Linear(embed_dim, act_dim)
        for layer in (self.mu, self.log_std):
            nn.init.orthogonal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: Tensor) -> SquashedGaussian:
        raw = torch.tanh(self.log_std(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw + 1.0)
        return SquashedGaussian(self.mu(h), log_std)


class _TanhHead(nn.Module):
    def __init__(self, embed_dim: int, act_dim: int):
        super().__init__()
        self.linear = nn.Linear(embed_dim, act_dim)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.linear(h))


class DecisionTransformer(nn.Module):
    """DT actor over interleaved (R_t, s_t, a_t) tokens; the action is read at the state token.

    forward(...) returns, per position, a (B, T, A) action (deterministic head) or a
    `SquashedGaussian` over (B, T, A) (stochastic head).
    """

    def __init__(self, state_dim: int, act_dim: int, embed_dim: int, n_layer: int,
                 n_head: int, dropout: float, stochastic: bool,
                 embed_dropout: float = EMBED_DROPOUT):
        super().__init__()
        self.state_dim, self.act_dim, self.stochastic = state_dim, act_dim, stochastic
        # Embeddings and heads keep PyTorch's default init; only the trunk is GPT-2-initialised.
        self.embed_return = nn.Linear(1, embed_dim)
        self.embed_state = nn.Linear(state_dim, embed_dim)
        self.embed_action = nn.Linear(act_dim, embed_dim)
        self.embed_ln = nn.LayerNorm(embed_dim)
        self.transformer = CausalTransformer(embed_dim, n_layer, n_head, dropout,
                                             embed_dropout=embed_dropout)
        self.head = (GaussianHead if stochastic else _TanhHead)(embed_dim, act_dim)

    def forward(self, states: Tensor, actions: Tensor, rtg: Tensor, mask: Tensor | None = None,
                masks: DropoutMasks | None = None) -> Tensor | SquashedGaussian:
        """masks: the trunk's dropout masks drawn beforehand (`dropout_mask_shapes` with
        length 3T), or None to draw them here."""
        b, t, _ = states.shape
        if rtg.dim() == 2:
            rtg = rtg.unsqueeze(-1)
        tokens = torch.stack(
            (self.embed_return(rtg), self.embed_state(states), self.embed_action(actions)), dim=2
        ).reshape(b, 3 * t, -1)
        key_mask = None if mask is None else mask.repeat_interleave(3, dim=1)
        h = self.transformer(self.embed_ln(tokens), key_mask, masks)
        return self.head(h.reshape(b, t, 3, -1)[:, :, 1])


class QEnsemble(nn.Module):
    """n independent Markovian MLP critics Q_i(s, a), evaluated together with batched matmuls.

    Each critic: Linear(S+A, H) - [LN] - ReLU - Linear(H, H) - [LN] - ReLU - Linear(H, 1), where
    LN is parameter-free layer normalisation (docs/methods/dt-family.md §3). Weights are stacked as
    (n, in, out) so all critics run in one torch.baddbmm per layer.
    """

    def __init__(self, state_dim: int, act_dim: int, n_critics: int = 2, hidden: int = 256,
                 layernorm: bool = False):
        super().__init__()
        if n_critics < 1:
            raise OdtbenchError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics, self.layernorm = n_critics, layernorm
        sizes = [(state_dim + act_dim, hidden), (hidden, hidden), (hidden, 1)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in sizes:
            # PyTorch's default nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both.
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n_critics, fan_in, fan_out)
                                             .uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_critics, 1, fan_out)
                                            .uniform_(-bound, bound)))

    def _mlp(self, x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
        """x (n, N, in) -> (n, N)."""
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < len(weights) - 1:
                if self.layernorm:
                    x = F.layer_norm(x, x.shape[-1:])
                x = F.relu(x, inplace=True)  # x is a fresh baddbmm / layer_norm output
        return x.squeeze(-1)

    def forward(self, states: Tensor, actions: Tensor, detach_params: bool = False) -> Tensor:
        """states (..., S), actions (..., A) -> Q values (n_critics, ...). detach_params: as q1.
        With act_dim 0 (an empty action) this is a state-value net V(s)."""
        x = torch.cat((states, actions), dim=-1)
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1]).expand(self.n_critics, -1, -1)
        ws, bs = list(self.weights), list(self.biases)
        if detach_params:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
        return self._mlp(x, ws, bs).reshape(self.n_critics, *lead)

    def q1(self, states: Tensor, actions: Tensor, detach_params: bool = False) -> Tensor:
        """Q1 only, shape (...). detach_params: gradients flow to the inputs, not the critic."""
        x = torch.cat((states, actions), dim=-1)
        lead = x.shape[:-1]
        ws = [w[:1] for w in self.weights]
        bs = [b[:1] for b in self.biases]
        if detach_params:
            ws, bs = [w.detach() for w in ws], [b.detach() for b in bs]
        return self._mlp(x.reshape(1, -1, x.shape[-1]), ws, bs).reshape(lead)
