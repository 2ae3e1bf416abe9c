"""PDT — Pretrained Decision Transformer (Xie et al., ICML 2023), after its official code.

docs/methods/pdt.md gives the model, losses, protocol, hyperparameters and deviations. A DT whose
return-to-go token is replaced by a latent "future" z:

- actor: tokens (s_t, z_t, a_t) per step through the suite's GPT-2 trunk
  (`odtbench.methods.nets.CausalTransformer`, no positional embedding); the action is read at the
  z_t token, through ODT's tanh-Gaussian head (log sigma in [-5, 2]);
- future encoder G: a second trunk over the k steps after the context as (s, a) tokens; the
  hidden state at each action token gives q_j = N(mu_j, diag sigma_j^2) over R^d_z (causal,
  so slot j summarises future steps 0..j);
- prior P(z | s_t): mu, log sigma = Linear(ReLU(W_s s_t)), W_s the actor's state embedding;
- return predictor F(R | s_t, z_t): a scalar Gaussian of ReLU([W_s s_t ; W_z z_t]), W_s and
  W_z the actor's embeddings. Latent and return log sigma are clamped to [-10, 2].

Losses, with KL-bar = closed-form diagonal-Gaussian KL averaged over the valid
context positions V and over the latent dimensions:

    L_pre = -mean_V log pi(a_t | s, z, a_<t) - sg(alpha) H + beta KL-bar(q || N(0, I))
            + KL-bar(sg(q) || P(. | s_t))
    L_ft  = L_pre + mean_V -log F(c_r RTG_t | s_t, z_t)

z_j is a reparameterised sample of q_j times the context mask m_j (slot j of the context
gets the latent of the first j+1 steps *after the whole context*: the official code's alignment).
H is a one-sample entropy estimate averaged over all B x K positions, padding included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from odtbench.data.trajectories import Trajectory
from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.schemas import as_schema
from odtbench.methods.actor_parts import ActorOptimizer, EntropyTemperature, WithActorParts
from odtbench.methods.nets import EMBED_DROPOUT, CausalTransformer, GaussianHead, SquashedGaussian
from odtbench.methods.optim import adam
from odtbench_baselines import PDTHyperparameters

LATENT_LOG_STD = (-10.0, 2.0)
ACTION_BOUND = 1.0 - 1e-6
WEIGHTINGS = ("length", "return")
MODES = ("prior", "guided")


# ----------------------------------------------------------------------------- maths

def gaussian_kl(mu_q: Tensor, log_std_q: Tensor, mu_p: Tensor, log_std_p: Tensor) -> Tensor:
    """KL(N(mu_q, sq^2) || N(mu_p, sp^2)) per dimension (no reduction)."""
    var_q, var_p = (2 * log_std_q).exp(), (2 * log_std_p).exp()
    return log_std_p - log_std_q + (var_q + (mu_q - mu_p).pow(2)) / (2 * var_p) - 0.5


def gaussian_nll(y: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """-log N(y; mu, sigma^2), elementwise."""
    return 0.5 * ((y - mu) / log_std.exp()).pow(2) + log_std + 0.5 * math.log(2 * math.pi)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the positions where mask is 1."""
    return (x * mask).sum() / mask.sum()


def pdt_loss(log_prob: Tensor, entropy: Tensor, q_mu: Tensor, q_log_std: Tensor,
             p_mu: Tensor, p_log_std: Tensor, mask: Tensor, temperature: Tensor,
             kl_weight: float = 1.0, prior_weight: float = 1.0,
             return_nll: Tensor | None = None, return_weight: float = 1.0) -> dict[str, Tensor]:
    """L_pre (and L_ft when `return_nll` (B, K) is given) from the model's outputs.

    log_prob, entropy, mask: (B, K); q_*, p_*: (B, K, d_z). The prior term sees the posterior
    detached, so it trains only the prior (and the shared W_s).
    """
    nll = -masked_mean(log_prob, mask)
    ent = entropy.mean()  # every position, padding included (inherited from ODT)
    kl_std = masked_mean(gaussian_kl(q_mu, q_log_std, torch.zeros_like(q_mu),
                                     torch.zeros_like(q_log_std)).mean(-1), mask)
    kl_prior = masked_mean(gaussian_kl(q_mu.detach(), q_log_std.detach(), p_mu, p_log_std)
                           .mean(-1), mask)
    loss = nll - temperature.detach() * ent + kl_weight * kl_std + prior_weight * kl_prior
    out = {"action_nll": nll, "entropy": ent, "kl_std": kl_std, "kl_prior": kl_prior}
    if return_nll is not None:
        out["return_nll"] = masked_mean(return_nll, mask)
        loss = loss + return_weight * out["return_nll"]
    out["loss"] = loss
    return out


# ----------------------------------------------------------------------------- model

class DiagGaussianHead(GaussianHead):
    """Linear mean and clamped Linear log sigma: the actor head's layers and initialisation
    (orthogonal weights, zero biases), read as a plain diagonal Gaussian."""

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self.mu(h), self.log_std(h).clamp(*LATENT_LOG_STD)


class PDTModel(nn.Module):
    """Actor, future encoder, prior and return predictor; unused heads are dropped."""

    def __init__(self, state_dim: int, act_dim: int, embed_dim: int, n_layer: int, n_head: int,
                 dropout: float, z_dim: int = 16, embed_dropout: float = EMBED_DROPOUT):
        super().__init__()
        H = embed_dim
        self.z_dim = z_dim
        # actor; W_s is shared with the prior and F, W_z with F
        self.embed_state = nn.Linear(state_dim, H)
        self.embed_z = nn.Linear(z_dim, H)
        self.embed_action = nn.Linear(act_dim, H)
        self.embed_ln = nn.LayerNorm(H)
        self.transformer = CausalTransformer(H, n_layer, n_head, dropout,
                                             embed_dropout=embed_dropout)
        self.policy_head = GaussianHead(H, act_dim)  # ODT's tanh-Gaussian head
        # future encoder: its own embeddings, LayerNorm and trunk of the same size
        self.enc_embed_state = nn.Linear(state_dim, H)
        self.enc_embed_action = nn.Linear(act_dim, H)
        self.enc_ln = nn.LayerNorm(H)
        self.encoder = CausalTransformer(H, n_layer, n_head, dropout, embed_dropout=embed_dropout)
        self.enc_head = DiagGaussianHead(H, z_dim)
        self.prior_head = DiagGaussianHead(H, z_dim)
        self.return_head = DiagGaussianHead(2 * H, 1)

    def encode(self, fut_states: Tensor, fut_actions: Tensor,
               fut_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """q_j for each future slot j: (mu, log sigma), each (B, k, d_z)."""
        b, k, _ = fut_states.shape
        tokens = torch.stack((self.enc_embed_state(fut_states),
                              self.enc_embed_action(fut_actions)), dim=2).reshape(b, 2 * k, -1)
        key_mask = None if fut_mask is None else fut_mask.repeat_interleave(2, dim=1)
        h = self.encoder(self.enc_ln(tokens), key_mask)
        return self.enc_head(h.reshape(b, k, 2, -1)[:, :, 1])  # the action tokens

    def prior(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """P(z | s_t) from the current state only."""
        return self.prior_head(torch.relu(self.embed_state(states)))

    def return_features(self, states: Tensor, z: Tensor) -> Tensor:
        return torch.relu(torch.cat((self.embed_state(states), self.embed_z(z)), dim=-1))

    def predict_return(self, states: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """F(R | s_t, z_t): (mean, log sigma) of the scaled return-to-go, shape (...)."""
        mu, log_std = self.return_head(self.return_features(states, z))
        return mu.squeeze(-1), log_std.squeeze(-1)

    def policy(self, states: Tensor, z: Tensor, actions: Tensor,
               mask: Tensor | None) -> SquashedGaussian:
        """pi(a_t | s_<=t, z_<=t, a_<t) at every position: tokens (s, z, a), read at z."""
        b, t, _ = states.shape
        tokens = torch.stack((self.embed_state(states), self.embed_z(z),
                              self.embed_action(actions)), dim=2).reshape(b, 3 * t, -1)
        key_mask = None if mask is None else mask.repeat_interleave(3, dim=1)
        h = self.transformer(self.embed_ln(tokens), key_mask)
        return self.policy_head(h.reshape(b, t, 3, -1)[:, :, 1])


def posterior_latents(model: PDTModel, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(q_mu, q_log_std, z): z_j ~ q_j reparameterised, times the context mask."""
    q_mu, q_log_std = model.encode(batch["future_states"], batch["future_actions"],
                                   batch["future_mask"])
    z = (q_mu + q_log_std.exp() * torch.randn_like(q_mu)) * batch["mask"].unsqueeze(-1)
    return q_mu, q_log_std, z


def compute_losses(model: PDTModel, batch: Mapping[str, Tensor], temperature: Tensor,
                   hp: PDTHyperparameters | Mapping[str, Any],
                   with_return: bool) -> dict[str, Tensor]:
    """L_pre, or L_ft with the return NLL, on one batch of `FutureSampler`."""
    w = as_schema(hp, PDTHyperparameters, "PDT")
    mask, states, actions = batch["mask"], batch["states"], batch["actions"]
    q_mu, q_log_std, z = posterior_latents(model, batch)
    dist = model.policy(states, z, actions, mask)
    p_mu, p_log_std = model.prior(states)
    ret_nll = gaussian_nll(batch["rtg"], *model.predict_return(states, z)) if with_return else None
    return pdt_loss(dist.log_prob(actions), dist.entropy(), q_mu, q_log_std, p_mu, p_log_std,
                    mask, temperature, float(w.pdt_kl_weight), float(w.pdt_prior_weight),
                    ret_nll, float(w.pdt_return_weight))


# ----------------------------------------------------------------------------- batches

class FutureSampler:
    """PDT's sub-trajectory batches from a list of trajectories.

    Per element: a trajectory (probability proportional to its length, or to
    R_i - min_j R_j + 1e-6 with weighting "return"), an end e ~ U{1..T}; the context is steps
    [e-K, e), the future [e, e+K), both left-padded to K. States are normalised with the
    offline statistics after zero padding (so pads read -mean/std); actions are clamped to
    +-(1 - 1e-6); rtg is the undiscounted return-to-go to the episode's end times c_r.
    """

    def __init__(self, trajs: list[Trajectory], state_mean: np.ndarray, state_std: np.ndarray,
                 context_len: int, reward_scale: float, weighting: str = "length",
                 device: str | torch.device = "cpu"):
        if weighting not in WEIGHTINGS:
            raise UnknownChoiceError("trajectory weighting", weighting, WEIGHTINGS)
        if not trajs:
            raise OdtbenchError("PDT sampler got no trajectories; collect data first")
        self.K, self.device = int(context_len), torch.device(device)
        lens = np.array([len(t) for t in trajs], dtype=np.int64)
        self.lens = torch.as_tensor(lens)
        self.offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(lens)[:-1]]))
        if weighting == "length":
            w = lens.astype(np.float64)
        else:
            rets = np.array([t.ret for t in trajs], dtype=np.float64)
            w = rets - rets.min() + 1e-6
        self.probs = torch.as_tensor(w / w.sum())
        mean, std = state_mean.astype(np.float32), state_std.astype(np.float32)
        obs = np.concatenate([t.observations for t in trajs]).astype(np.float32)
        act = np.clip(np.concatenate([t.actions for t in trajs]), -ACTION_BOUND, ACTION_BOUND)
        rtg = np.concatenate([t.returns_to_go()[:-1] for t in trajs]) * reward_scale
        dev = self.device
        self.obs = torch.as_tensor((obs - mean) / std, device=dev)
        self.actions = torch.as_tensor(act.astype(np.float32), device=dev)
        self.rtg = torch.as_tensor(rtg.astype(np.float32), device=dev)
        self.state_pad = torch.as_tensor(-mean / std, device=dev)

    def draw_trajectories(self, batch_size: int, generator: torch.Generator) -> Tensor:
        return torch.multinomial(self.probs, batch_size, replacement=True, generator=generator)

    def sample(self, batch_size: int, generator: torch.Generator,
               traj: Tensor | None = None) -> dict[str, Tensor]:
        """One batch; `traj` fixes the trajectory of each element (the return warm-up)."""
        K, dev = self.K, self.device
        if traj is None:
            traj = self.draw_trajectories(batch_size, generator)
        L = self.lens[traj]
        e = 1 + (torch.rand(len(traj), generator=generator, dtype=torch.float64) * L).long()
        pos = torch.arange(K)
        ctx = e[:, None] - K + pos[None, :]  # steps e-K .. e-1; < 0 on padding
        m = ctx >= 0
        n_fut = torch.minimum(L - e, torch.tensor(K))  # real future length (may be 0)
        fut = e[:, None] + pos[None, :] - (K - n_fut)[:, None]
        mf = pos[None, :] >= (K - n_fut)[:, None]
        base = self.offsets[traj][:, None]
        hi = (L - 1)[:, None]
        cidx = (base + torch.minimum(ctx.clamp(min=0), hi)).to(dev)
        fidx = (base + torch.minimum(fut.clamp(min=0), hi)).to(dev)
        m, mf = m.to(dev), mf.to(dev)
        return {
            "states": torch.where(m[..., None], self.obs[cidx], self.state_pad),
            "actions": torch.where(m[..., None], self.actions[cidx], 0.0),
            "rtg": torch.where(m, self.rtg[cidx], 0.0),
            "mask": m.float(),
            "future_states": torch.where(mf[..., None], self.obs[fidx], self.state_pad),
            "future_actions": torch.where(mf[..., None], self.actions[fidx], 0.0),
            "future_mask": mf.float(),
        }


# ----------------------------------------------------------------------------- agent

class PDTAgent(WithActorParts):
    """PDT's model, optimisers and acting; `act` follows the rollout interface of
    `odtbench.runcore.evaluation.rollout` with `mode` "prior" (z ~ P) or "guided" (argmax F)."""

    stochastic = True  # the tanh-Gaussian head: online actions are sampled, never noised

    def __init__(self, hp: PDTHyperparameters | Mapping[str, Any], state_dim: int, act_dim: int,
                 device: str | torch.device = "cpu"):
        # `hp`: the run's typed hyperparameters, or a complete record of them (tests)
        self.hp = a = as_schema(hp, PDTHyperparameters, "PDT")
        if int(a.pdt_sample_topk) < 1 or int(a.pdt_sample_topk) > int(a.pdt_prior_samples):
            raise OdtbenchError("pdt_sample_topk must lie in 1..pdt_prior_samples; fix the override")
        self.device = torch.device(device)
        self.model = PDTModel(state_dim, act_dim, int(a.embed_dim), int(a.n_layer),
                              int(a.n_head), float(a.dropout), int(a.pdt_z_dim),
                              float(a.embed_dropout)
                              ).to(self.device)
        # one LAMB over every parameter, ODT's warm-up, grad clip 0.25; gradients are set to
        # None before each step, so a parameter the loss does not reach is left alone
        self.actor_optimizer = ActorOptimizer(
            self.model.parameters(), lr=float(a.lr_actor),
            weight_decay=float(a.weight_decay), warmup_steps=int(a.warmup_steps),
            grad_clip=a.grad_clip)
        self.temperature = EntropyTemperature(float(a.init_temperature), act_dim, self.device)
        # return warm-up: a separate Adam over F's two output layers only
        self.return_opt = adam(self.model.return_head.parameters(), float(a.pdt_return_warmup_lr))
        self.mode = "prior"
        self._latents: dict[bytes, Tensor] = {}

    # ------------------------------------------------------------------ training
    def update(self, batch: Mapping[str, Tensor], with_return: bool) -> dict[str, Tensor]:
        """One step of L_pre (pretraining) or L_ft (online), then the temperature."""
        self.model.train()
        out = compute_losses(self.model, batch, self.temperature.value(), self.hp, with_return)
        self.actor_optimizer.step(out["loss"])
        # alpha <- argmin alpha * sg(H - H_target), on the entropy of this batch
        self.temperature.step(out["entropy"])
        return {k: v.detach() for k, v in out.items()}

    def return_warmup_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """mean_V -log F(c_r RTG | s, z ~ q), stepping only F's output layers; dropout off."""
        self.model.eval()
        with torch.no_grad():
            _, _, z = posterior_latents(self.model, batch)
            u = self.model.return_features(batch["states"], z)
        mu, log_std = self.model.return_head(u)
        loss = masked_mean(gaussian_nll(batch["rtg"], mu.squeeze(-1), log_std.squeeze(-1)),
                           batch["mask"])
        self.return_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.return_opt.step()
        return {"return_nll": loss.detach()}

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def choose_latents(self, states: Tensor) -> Tensor:
        """z_t for each state (N, S): one prior sample ("prior"), or the best of
        `pdt_prior_samples` prior samples by F's mean ("guided"; top-k picks the k-th best)."""
        mu, log_std = self.model.prior(states)
        if self.mode == "prior":
            return mu + log_std.exp() * torch.randn_like(mu)
        n, k = int(self.hp.pdt_prior_samples), int(self.hp.pdt_sample_topk)
        z = mu[:, None] + log_std.exp()[:, None] * torch.randn(
            mu.shape[0], n, mu.shape[1], device=mu.device)
        score, _ = self.model.predict_return(states[:, None].expand(-1, n, -1), z)
        best = score.topk(k, dim=1).indices[:, k - 1]
        return z[torch.arange(len(z), device=z.device), best]

    @torch.no_grad()
    def act(self, states: Any, actions: Any, rtg: Any, deterministic: bool = True) -> Tensor:
        """Actions (N, A) for N unpadded contexts (the last `eval_context_len` steps).

        z is re-chosen at every step and each earlier slot keeps the z chosen at its own step
        (docs/methods/pdt.md §3). The rollout passes no episode ids, so the chosen z are remembered by the exact
        bytes of the (normalised, continuous) state they were chosen for; a context of one
        step starts a new rollout. `rtg` is ignored (PDT has no return token).
        """
        if self.mode not in MODES:
            raise UnknownChoiceError("PDT acting mode", self.mode, MODES)
        states = torch.as_tensor(states, dtype=torch.float32).cpu()
        n, T, _ = states.shape
        if T == 1:
            self._latents.clear()
        keys = [[states[i, j].numpy().tobytes() for j in range(T)] for i in range(n)]
        z = torch.zeros(n, T, self.model.z_dim)
        for i in range(n):
            for j in range(T - 1):
                try:
                    z[i, j] = self._latents[keys[i][j]]
                except KeyError:
                    raise OdtbenchError("PDT act() got a context whose earlier steps it never "
                                        "acted on; start each rollout with a 1-step context") from None
        was_training = self.model.training
        self.model.eval()
        try:
            dev = self.device
            z_new = self.choose_latents(states[:, -1].to(dev)).cpu()
            for i in range(n):
                self._latents[keys[i][-1]] = z_new[i]
            z[:, -1] = z_new
            dist = self.model.policy(states.to(dev), z.to(dev),
                                     torch.as_tensor(actions, dtype=torch.float32).to(dev), None)
        finally:
            self.model.train(was_training)
        last = SquashedGaussian(dist.mu[:, -1], dist.log_std[:, -1])
        action = last.mean if deterministic else last.rsample()
        return action.clamp(-ACTION_BOUND, ACTION_BOUND).cpu()

    # ------------------------------------------------------------------ checkpoint
    @property
    def opt(self) -> torch.optim.Optimizer:
        return self.actor_optimizer.opt

    _STATEFUL = ("model", "opt", "scheduler", "return_opt")

    def state_dict(self) -> dict[str, Any]:
        return {**self.temperature.state_dict(),  # log_temperature, temperature_opt
                **{k: getattr(self, k).state_dict() for k in self._STATEFUL}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in self._STATEFUL:
            getattr(self, k).load_state_dict(state[k])
        self.temperature.load_state_dict(state)
