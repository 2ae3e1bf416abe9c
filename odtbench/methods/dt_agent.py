"""The Decision-Transformer agent behind every DT method (one agent; each method a preset).

Actor loss (paper Eq. 2):  L = sup_coeff * L_sup + rl_coeff * L_RL,  L_RL = -Q1(s_t, DT(context_t)).
Critic loss (paper Eq. 3): TD3 with a Polyak-averaged target DT giving the next action.
Those are rl_kind 'td3' and 'ddpg' (ODT is 'none'). The study's ablations (paper App. C)
swap the RL term and the critic, `_rl_term` and `_critic_loss` by rl_kind, with the
equations in `odtbench/methods/rl_losses.py` and on each method's page:
'sac' (SAC+ODT, SAC: twin soft critics), 'iql' (IQL+ODT: twin Q + expectile V), 'awac'
(twin Q), 'awr' and 'ppo' (a V critic on TD(lambda) targets).

Where this code follows the authors' code rather than the paper's text (section numbers refer
to docs/methods/dt-family.md; its §8 is the full ledger):
- Critic loss: mask-weighted squared error averaged over all B*K entries, so padded entries
  count in the denominator (§3); the paper writes a plain sum over t.
- Actor losses average over real (non-padded) positions only, not over T_train (§2, §4);
  the stochastic head's entropy term averages over all positions, padding included (§2).
- The target DT's next actions come from the segment shifted by one step with an all-ones
  padding mask (§3), not from a separately built "next-state context" z_t.
- Target actions are clamped to +-(1-1e-6) before and after the smoothing noise (§3).
- Actor optimiser: LAMB (weight decay on every tensor + trust ratio) with a 10k-step linear
  warm-up that continues across phases, grad-norm clip 0.25; critic: AdamW with weight decay
  0.01 (§3, §4); the paper names LAMB only and no critic optimiser.
- Both targets are Polyak-updated after every actor step (not every critic step), and are
  hard-reset at the offline->online switch via `reset_targets` (§4, §5).
- With the stochastic head, L_RL uses tanh(mu) and critic targets use a sample (§3, §4).
- DDPG+ODT is not in the authors' code; it is built as TD3 with a single
  critic, no target smoothing and actor update interval 1 (the interval is the loop's).
Two deliberate deviations that change nothing numerically:
- ODT (rl_kind "none") builds no critic; the authors train one that the actor never uses.
- `act` runs the given context unpadded; the authors left-pad to K, and a padded key gets
  logit -1e4, whose softmax weight is exactly 0 in float32 (checked by a test).

Speed (docs/performance.md): the losses are pure functions (`_critic_loss`, `_actor_loss`) so
that `SpeedOptions(compile=True)` can hand them to torch.compile; bf16 autocast and fused
optimisers are further opt-in options. With every option off (the default) the agent runs
the eager fp32 path, bit for bit the same numbers as before the options existed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import torch
from torch import Tensor

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters import RL_KINDS, STOCHASTIC_RL_KINDS
from odtbench.methods import rl_losses as L
from odtbench.methods.actor_parts import ActorOptimizer, EntropyTemperature, WithActorParts
from odtbench.nets import DecisionTransformer, QEnsemble, SquashedGaussian
from odtbench.optim import FlatParameters, polyak_

Q_KINDS = ("td3", "ddpg", "sac", "awac", "iql")  # a twin (or single) Q critic
V_KINDS = ("iql", "awr", "ppo")  # a state-value critic V(s)
ACTION_BOUND = 1.0 - 1e-6
HP_KEYS = (
    "embed_dim", "n_layer", "n_head", "dropout", "embed_dropout", "context_len", "stochastic", "entropy_reg",
    "init_temperature", "lr_actor", "weight_decay", "warmup_steps", "grad_clip",
    "critic_hidden", "critic_layernorm", "n_critics", "lr_critic", "critic_weight_decay",
    "gamma", "tau", "policy_noise", "noise_clip", "rl_kind", "actor_update_interval",
)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SPEED_ENV = "ODTBENCH_SPEED"  # the loop's default SpeedOptions, e.g. "bf16,fused_optim"


@dataclass(frozen=True)
class SpeedOptions:
    """How the agent executes, never what it computes. All off = the reference eager fp32 path.

    compile: torch.compile the two loss functions (forward and, through AOTAutograd, their
      backward); compile_mode "reduce-overhead" adds CUDA graphs on a GPU. Compiled kernels may
      reorder floating-point sums, and compiled dropout draws from its own random stream.
    bf16: bf16 autocast around the DT (trunk, embeddings, heads); the critic, the losses and
      every optimiser stay fp32.
    fused_optim: fused AdamW/Adam kernels for the critic and the temperature (LAMB is already
      multi-tensor `_foreach_*` code). Rounds differently from the unfused kernels.
    resident_sampling: (the loop's, on a GPU) draw batch indices with a generator on the
      device, so sampling never leaves it; a different random stream from the CPU one.
    """

    compile: bool = False
    compile_mode: str = "default"
    bf16: bool = False
    fused_optim: bool = False
    resident_sampling: bool = False

    def __post_init__(self) -> None:
        if self.compile_mode not in COMPILE_MODES:
            raise UnknownChoiceError("compile mode", self.compile_mode, COMPILE_MODES)

    @classmethod
    def parse(cls, text: str | None) -> SpeedOptions:
        """From a comma list such as "compile,bf16,fused_optim,compile_mode=reduce-overhead"
        (a CLI flag, $ODTBENCH_SPEED); "" or None gives the defaults."""
        names = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for item in filter(None, (t.strip() for t in (text or "").split(","))):
            key, _, value = item.partition("=")
            if key not in names:
                raise UnknownChoiceError("speed option", key, sorted(names))
            kw[key] = value if key == "compile_mode" else value.lower() not in ("0", "false", "no")
        return cls(**kw)

    @property
    def enabled(self) -> list[str]:
        """The options that differ from the defaults, for a run's record."""
        return [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                if getattr(self, f.name) != f.default]


_M = TypeVar("_M", bound=torch.nn.Module)


def _frozen_copy(module: _M) -> _M:
    target = copy.deepcopy(module).eval()  # targets never use dropout
    target.requires_grad_(False)
    return target


def _empty_ratio_acc() -> dict[str, Any]:
    return {"sum": 0.0, "max": 0.0, "log_max": 0.0, "n": 0}


def _kind_hyperparameters(kind: str, hp: Mapping[str, Any]) -> dict[str, float]:
    """The keys of an ablation kind's own schema (odtbench.hyperparameters), as floats;
    'lambda' is AWR's or PPO's TD(lambda)."""
    keys = {"iql": ("iql_expectile", "iql_temperature", "iql_max_weight"),
            "awac": ("awac_lambda", "awac_max_weight"),
            "awr": ("awr_beta", "awr_max_weight", "awr_lambda"),
            "ppo": ("ppo_clip", "ppo_lambda")}.get(kind, ())
    missing = [k for k in keys if k not in hp]
    if missing:
        raise OdtbenchError(f"rl_kind {kind!r} needs hyperparameters {', '.join(missing)}; "
                            "build them with odtbench.config.resolve")
    out = {k: float(hp[k]) for k in keys}
    for k in ("awr_lambda", "ppo_lambda"):
        if k in out:
            out["lambda"] = out[k]
    return out


def policy_delayed_unit(agent: Any, sample: Callable[[], Any], rl_coeff: float,
                        sup_coeff: float) -> dict[str, Tensor]:
    """TD3's policy delay for any agent with `critic_step`, `actor_step` and
    `actor_update_interval` (DTAgent, PackedDTAgent): d critic steps on fresh batches, the
    actor step on the first batch right after its critic step."""
    metrics: dict[str, Tensor] = {}
    for b in range(agent.actor_update_interval):
        batch = sample()
        metrics.update(agent.critic_step(batch))
        if b == 0:
            metrics.update(agent.actor_step(batch, rl_coeff=rl_coeff, sup_coeff=sup_coeff))
    return metrics


class DTAgent(WithActorParts):
    """DT actor (+ twin/single critic) with the study's supervised, TD3 and DDPG updates.

    Batches follow the segment-sampler contract (left padding): states, next_states (B,K,S);
    actions (B,K,A); rewards, dones, mask (B,K); rtg (B,K+1) already times reward_scale.
    """

    def __init__(self, hp: Mapping[str, Any], state_dim: int, act_dim: int,
                 device: str | torch.device = "cpu", speed: SpeedOptions | None = None):
        missing = [k for k in HP_KEYS if k not in hp]
        if missing:
            raise OdtbenchError(f"DTAgent hyperparameters lack {', '.join(missing)}; build them "
                                "with odtbench.config.resolve or pass every key")
        self.rl_kind = str(hp["rl_kind"])
        if self.rl_kind not in RL_KINDS:
            raise UnknownChoiceError("rl_kind", self.rl_kind, RL_KINDS)
        if self.rl_kind == "ddpg" and (int(hp["n_critics"]) != 1 or float(hp["policy_noise"]) != 0):
            raise OdtbenchError("rl_kind 'ddpg' needs n_critics=1 and policy_noise=0; use "
                                "rl_kind 'td3' for twin critics with target smoothing")
        if self.rl_kind in STOCHASTIC_RL_KINDS and not bool(hp["stochastic"]):
            raise OdtbenchError(f"rl_kind {self.rl_kind!r} needs log pi, i.e. the stochastic "
                                "head: set stochastic=true")
        self.device = torch.device(device)
        self.speed = speed or SpeedOptions()
        self.state_dim, self.act_dim = int(state_dim), int(act_dim)
        self.context_len = int(hp["context_len"])
        self.stochastic = bool(hp["stochastic"])
        self.entropy_reg = float(hp["entropy_reg"])
        self.gamma, self.tau = float(hp["gamma"]), float(hp["tau"])
        self.policy_noise, self.noise_clip = float(hp["policy_noise"]), float(hp["noise_clip"])
        self.grad_clip = float(hp["grad_clip"] or 0.0)
        self.actor_update_interval = int(hp["actor_update_interval"])  # TD3's policy delay d

        self.actor = DecisionTransformer(
            self.state_dim, self.act_dim, int(hp["embed_dim"]), int(hp["n_layer"]),
            int(hp["n_head"]), float(hp["dropout"]), self.stochastic,
            embed_dropout=float(hp["embed_dropout"]),
        ).to(self.device)
        self.actor_target = _frozen_copy(self.actor)
        # Each network's parameters live in one flat buffer (and its gradients in another):
        # optimiser, clipping and Polyak steps are then one op each, not one per tensor
        # (docs/performance.md). Gradients are zeroed in place to keep the views bound.
        self._actor_flat = FlatParameters(self.actor)
        self._actor_target_flat = FlatParameters(self.actor_target, with_grad=False)

        self.critic: QEnsemble | None = None
        self.critic_target: QEnsemble | None = None
        self.critic_opt: torch.optim.Optimizer | None = None
        if self.rl_kind in Q_KINDS:
            self.critic = QEnsemble(self.state_dim, self.act_dim, int(hp["n_critics"]),
                                    int(hp["critic_hidden"]), bool(hp["critic_layernorm"]),
                                    ).to(self.device)
            self.critic_target = _frozen_copy(self.critic)
            self._critic_flat = FlatParameters(self.critic)
            self._critic_target_flat = FlatParameters(self.critic_target, with_grad=False)
        # V(s): the critic's MLP with no action input (one member)
        self.value: QEnsemble | None = None
        self.value_target: QEnsemble | None = None
        self.value_opt: torch.optim.Optimizer | None = None
        if self.rl_kind in V_KINDS:
            self.value = QEnsemble(self.state_dim, 0, 1, int(hp["critic_hidden"]),
                                   bool(hp["critic_layernorm"])).to(self.device)
            self.value_target = _frozen_copy(self.value)
            self._value_flat = FlatParameters(self.value)
            self._value_target_flat = FlatParameters(self.value_target, with_grad=False)
        self._kind_hp = _kind_hyperparameters(self.rl_kind, hp)
        # PPO: pi_old, the actor as it was at the start of the update round (begin_update_round),
        # and the importance ratios of the actor steps since the last diagnostics row
        self.actor_old: DecisionTransformer | None = None
        self._ratio_acc: dict[str, Any] = _empty_ratio_acc()

        # foreach=True: multi-tensor kernels, bit-identical to torch's CPU default (a Python
        # loop over parameters); fused=True only as a speed option (it rounds differently).
        self._adam_kernel = "fused" if self.speed.fused_optim else "foreach"
        # ODT's temperature is a standalone scalar with its own Adam (docs/methods/dt-family.md §2).
        self.temperature = EntropyTemperature(float(hp["init_temperature"]), self.act_dim,
                                              self.device, adam_kernel=self._adam_kernel)
        self._opt_hp = {k: hp[k] for k in ("lr_actor", "weight_decay", "warmup_steps",
                                           "lr_critic", "critic_weight_decay")}
        self._opt_hp["actor_optimizer"] = hp.get("actor_optimizer", "lamb")
        self.reset_optimizers()
        # A constant RTG input for training batches instead of their hindsight RTG (None =
        # the data's): the toy's RL-only actor is pi(1), as the study's DDPG (docs/fidelity.md).
        constant = hp.get("train_rtg_constant")
        self.train_rtg_constant = None if constant is None else float(constant)

        self._critic_loss_fn: Callable[..., Any] = self._critic_loss
        self._actor_loss_fn: Callable[..., Any] = self._actor_loss
        if self.speed.compile:
            # dynamic=False: batch shapes are fixed within a phase; the actor loss is compiled
            # once per distinct (rl_coeff, sup_coeff), i.e. once per phase.
            mode = self.speed.compile_mode
            self._critic_loss_fn = torch.compile(self._critic_loss, mode=mode, dynamic=False)
            self._actor_loss_fn = torch.compile(self._actor_loss, mode=mode, dynamic=False)

    def reset_optimizers(self) -> None:
        """Fresh optimiser and warm-up states for actor, critic and temperature (also what
        __init__ builds). The study's toy starts its online phase with new Adams."""
        hp, kernel = self._opt_hp, self._adam_kernel
        # the study's toy uses Adam (App. F.2.1); the flat gradient's views stay bound (keep_grads)
        self.actor_optimizer = ActorOptimizer(
            [self._actor_flat.param], lr=float(hp["lr_actor"]),
            weight_decay=float(hp["weight_decay"]), warmup_steps=int(hp["warmup_steps"]),
            grad_clip=self.grad_clip, kind=str(hp["actor_optimizer"]),
            segments=self._actor_flat.sizes, adam_kernel=kernel, keep_grads=True,
            clip_foreach=True)
        adam_kw: dict[str, Any] = {kernel: True}  # the same kernel as the Adams
        if self.critic is not None:
            self.critic_opt = torch.optim.AdamW([self._critic_flat.param], lr=float(hp["lr_critic"]),
                                                weight_decay=float(hp["critic_weight_decay"]),
                                                **adam_kw)
        if self.value is not None:  # the critic's optimiser and settings
            self.value_opt = torch.optim.AdamW([self._value_flat.param], lr=float(hp["lr_critic"]),
                                               weight_decay=float(hp["critic_weight_decay"]),
                                               **adam_kw)
        self.temperature.reset_optimizer()

    @property
    def actor_opt(self) -> torch.optim.Optimizer:
        return self.actor_optimizer.opt

    def _rtg_input(self, rtg: Tensor) -> Tensor:
        """The RTG tokens a training batch feeds the DT (see train_rtg_constant)."""
        if self.train_rtg_constant is None:
            return rtg
        return torch.full_like(rtg, self.train_rtg_constant)

    def _dt(self, net: torch.nn.Module, *inputs: Tensor | None) -> Tensor | SquashedGaussian:
        """Run a DT (online or target), under bf16 autocast when asked; outputs are fp32."""
        if not self.speed.bf16:
            return net(*inputs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = net(*inputs)
        if isinstance(out, SquashedGaussian):
            return SquashedGaussian(out.mu.float(), out.log_std.float())
        return out.float()

    @property
    def uses_critic(self) -> bool:
        """False for rl_kind 'none' (ODT): `critic_step` is then a no-op the loop may skip."""
        return self.critic is not None or self.value is not None

    def _critic_parts(self) -> tuple[QEnsemble, QEnsemble, torch.optim.Optimizer] | None:
        """(critic, its target, its optimiser), or None without a critic (ODT)."""
        if self.critic is None or self.critic_target is None or self.critic_opt is None:
            return None
        return self.critic, self.critic_target, self.critic_opt

    def _require_critic(self, what: str) -> QEnsemble:
        if self.critic is None:
            raise OdtbenchError(f"{what} needs a Q critic but rl_kind is {self.rl_kind!r}; set "
                                f"rl_kind to one of {', '.join(Q_KINDS)}")
        return self.critic

    def _v(self, net: QEnsemble | None, states: Tensor) -> Tensor:
        """V(s) of the value net (or its target), shape (...)."""
        if net is None:
            raise OdtbenchError(f"rl_kind {self.rl_kind!r} has no value critic")
        return net(states, states[..., :0])[0]

    # ------------------------------------------------------------------ critic
    @torch.no_grad()
    def _target_next_actions(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """Target DT on the shifted window: s'_{1..K}, (a_2..a_K, 0), R_{2..K+1}, mask all ones;
        (next actions, their log pi under the target DT, or None for the deterministic head)."""
        actions = batch["actions"]
        shifted = torch.cat((actions[:, 1:], torch.zeros_like(actions[:, :1])), dim=1)
        out = self._dt(self.actor_target, batch["next_states"], shifted,
                       self._rtg_input(batch["rtg"][:, 1:]), None)
        log_prob = None
        if isinstance(out, SquashedGaussian):
            next_actions, log_prob = out.rsample_with_log_prob()
        else:
            next_actions = out
        return next_actions.clamp(-ACTION_BOUND, ACTION_BOUND), log_prob

    def _critic_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(L_Q, mean Q over real entries), paper Eq. 3 with the authors' quirks (docs/methods/dt-family.md §3).

        By rl_kind: td3/ddpg/awac y = r + gamma (1 - d) min_i Q_i'(s', a'); sac subtracts
        T log pi(a'); iql bootstraps V(s') and adds the expectile loss of V; awr/ppo train
        V alone on TD(lambda) targets (`_value_loss`; its "Q" is then V)."""
        if self.critic is None:
            if self.value is not None:
                return self._value_loss(batch)
            raise OdtbenchError("the critic loss needs a critic; ODT (rl_kind 'none') has none")
        parts, mask = self._critic_parts(), batch["mask"]
        assert parts is not None
        critic, critic_target, _ = parts
        with torch.no_grad():
            if self.rl_kind == "iql":  # y = r + gamma (1 - d) V(s'): in-sample, no next action
                q_next = self._v(self.value, batch["next_states"])
            else:
                next_actions, next_log_prob = self._target_next_actions(batch)
                if self.rl_kind == "td3" and self.policy_noise > 0:
                    noise = (torch.randn_like(next_actions) * self.policy_noise).clamp(
                        -self.noise_clip, self.noise_clip)
                    next_actions = (next_actions + noise).clamp(-ACTION_BOUND, ACTION_BOUND)
                # y = r + gamma (1 - d) min_i Q_i'(s', a')     (paper Eq. 3; padded d = 2 is masked)
                q_next = critic_target(batch["next_states"], next_actions).min(dim=0).values
            if self.rl_kind == "sac":
                assert next_log_prob is not None  # the stochastic head, checked in __init__
                y = L.soft_td_target(batch["rewards"], batch["dones"], q_next, next_log_prob,
                                     self.temperature.value(), self.gamma)
            else:
                y = batch["rewards"] + self.gamma * (1.0 - batch["dones"]) * q_next
        q = critic(batch["states"], batch["actions"])  # (n_critics, B, K)
        # L_Q = mean over all B*K of mask * sum_i (Q_i(s, a) - y)^2   (padding in denominator)
        loss = (mask * (q - y).pow(2).sum(dim=0)).mean()
        q_mean = (q.detach() * mask).sum() / (mask.sum() * q.shape[0])
        if self.rl_kind == "iql":
            # L_V = mean_real |tau - 1(u < 0)| u^2,  u = min_i Q_targ,i(s, a) - V(s)
            with torch.no_grad():
                q_data = critic_target(batch["states"], batch["actions"]).min(dim=0).values
            u = q_data - self._v(self.value, batch["states"])
            loss = loss + L.expectile_loss(u, self._kind_hp["iql_expectile"], mask)
        return loss, q_mean

    def _lambda_targets(self, batch: Mapping[str, Tensor]) -> Tensor:
        """TD(lambda) targets G_t of V inside the segment, bootstrapped by the target V."""
        with torch.no_grad():
            next_v = self._v(self.value_target, batch["next_states"])
            return L.lambda_returns(batch["rewards"], batch["dones"], next_v,
                                    self._kind_hp["lambda"], self.gamma)

    def _value_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(L_V = mean_real (V(s_t) - G_t)^2, mean V over real entries): AWR's and PPO's critic."""
        mask = batch["mask"]
        v = self._v(self.value, batch["states"])
        loss = L.mean_real((v - self._lambda_targets(batch)).pow(2), mask)
        return loss, L.mean_real(v.detach(), mask)

    def critic_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One TD3/DDPG critic update (docs/methods/dt-family.md §3); returns detached tensors.

        With rl_kind 'none' (ODT) there is no critic and this is a no-op returning {}."""
        opts = [o for o in (self.critic_opt, self.value_opt) if o is not None]
        if not opts:
            return {}
        loss, q_mean = self._critic_loss_fn(batch)
        for opt in opts:
            opt.zero_grad(set_to_none=False)  # in place: the gradient views stay bound
        loss.backward()
        for opt in opts:
            opt.step()
        return {"critic_loss": loss.detach(), "q_mean": q_mean}

    # ------------------------------------------------------------------- actor
    def _actor_terms(self, batch: Mapping[str, Tensor],
                     with_rl: bool) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """(L_sup, L_RL or None, stats) of paper Eq. 2 on one batch (docs/methods/dt-family.md §4)."""
        states, actions, mask = batch["states"], batch["actions"], batch["mask"]
        n_real = mask.sum()
        out = self._dt(self.actor, states, actions, self._rtg_input(batch["rtg"][:, :-1]), mask)
        stats: dict[str, Tensor] = {}
        if isinstance(out, SquashedGaussian):
            # L_sup = -(mean_real log pi(a_t | ctx_t) + lambda_H * T * mean_all H), T detached
            log_lik = (out.log_prob(actions) * mask).sum() / n_real
            entropy = out.entropy().mean()
            temperature = self.log_temperature.exp().detach()
            sup = -(log_lik + self.entropy_reg * temperature * entropy)
            policy_actions = out.mean  # tanh(mu) for the RL term
            stats.update(entropy=entropy.detach(), temperature=temperature)
        else:
            # L_sup = mean over real positions and action dims of (a_hat_t - a_t)^2
            sup = ((out - actions).pow(2).mean(dim=-1) * mask).sum() / n_real
            policy_actions = out  # unclamped tanh output, with gradient
        rl = None
        if with_rl and self.rl_kind in ("td3", "ddpg"):
            critic = self._require_critic("a non-zero rl_coeff")
            # L_RL = -mean_real Q1(s_t, a*_t): Q1 only, every real position (paper Eq. 2)
            q1 = critic.q1(states, policy_actions, detach_params=True)
            rl = -(q1 * mask).sum() / n_real
        elif with_rl:
            if not self.uses_critic:
                raise OdtbenchError("a non-zero rl_coeff needs a critic but rl_kind is 'none'")
            rl = self._rl_term(batch, out, stats)
        return sup, rl, stats

    def _rl_term(self, batch: Mapping[str, Tensor], out: Tensor | SquashedGaussian,
                 stats: dict[str, Tensor]) -> Tensor:
        """L_RL of the ablation kinds (paper App. C; docs/methods/<method>.md)."""
        states, actions, mask, kind = batch["states"], batch["actions"], batch["mask"], self.rl_kind
        hp = self._kind_hp
        if kind == "sac":  # mean_real(T log pi(a~) - min_i Q_i(s, a~)), a~ ~ pi reparameterised
            assert isinstance(out, SquashedGaussian)
            sampled, log_prob = out.rsample_with_log_prob()
            q_min = self._q_min(states, sampled)
            return L.sac_actor_loss(log_prob, q_min, self.temperature.value().detach(), mask)
        # log pi(a_data | ctx), or the deterministic head's surrogate -||a_hat - a||^2
        log_lik = (out.log_prob(actions) if isinstance(out, SquashedGaussian)
                   else -(out - actions).pow(2).sum(dim=-1))
        with torch.no_grad():
            if kind == "iql":  # A = min_i Q_targ,i(s, a) - V(s), w = min(exp(beta A), 100)
                assert self.critic_target is not None
                adv = (self.critic_target(states, actions).min(dim=0).values
                       - self._v(self.value, states))
                weights = L.exp_weights(adv, hp["iql_temperature"], hp["iql_max_weight"])
            elif kind == "awac":  # A = min Q(s, a) - min Q(s, a~), a~ ~ pi; w = exp(A / lambda)
                assert isinstance(out, SquashedGaussian)
                adv = self._q_min(states, actions) - self._q_min(states, out.rsample())
                weights = L.exp_weights(adv, 1.0 / hp["awac_lambda"], hp["awac_max_weight"])
            else:  # awr, ppo: A = G^lambda - V(s)
                adv = self._lambda_targets(batch) - self._v(self.value, states)
                if kind == "awr":
                    weights = L.exp_weights(adv, 1.0 / hp["awr_beta"], hp["awr_max_weight"])
        if kind != "ppo":
            return L.weighted_log_lik_loss(weights, log_lik, mask)
        old_log_prob = self._old_log_prob(batch, log_lik)
        rl, _ = L.ppo_clipped_loss(log_lik, old_log_prob, adv, hp["ppo_clip"], mask)
        # the recorded ratio in float64 from the log-ratio: a float32 ratio overflows at
        # exp(88), and the study's point (Fig. 10) is how large it gets
        log_ratio = (log_lik.detach() - old_log_prob).double().masked_fill(mask == 0, 0.0)
        ratio = log_ratio.exp()
        stats["ppo_ratio_mean"] = L.mean_real(ratio, mask.double())
        stats["ppo_ratio_max"] = ratio.masked_fill(mask == 0, 0.0).max()
        stats["ppo_log_ratio_max"] = log_ratio.masked_fill(mask == 0, -torch.inf).max()
        return rl

    def _q_min(self, states: Tensor, actions: Tensor) -> Tensor:
        """min_i Q_i(s, a) with the critic's parameters detached (gradients reach the actions)."""
        critic = self._require_critic("this rl_kind")
        return critic(states, actions, detach_params=True).min(dim=0).values

    @torch.no_grad()
    def _old_log_prob(self, batch: Mapping[str, Tensor], log_lik: Tensor) -> Tensor:
        """log pi_old(a | ctx) of the batch under the round's snapshot (eval mode); before the
        first round (pretraining diagnostics) pi itself, i.e. a ratio of 1."""
        if self.actor_old is None:
            return log_lik.detach()
        out = self._dt(self.actor_old, batch["states"], batch["actions"],
                       self._rtg_input(batch["rtg"][:, :-1]), batch["mask"])
        assert isinstance(out, SquashedGaussian)
        return out.log_prob(batch["actions"])

    def begin_update_round(self) -> None:
        """The loop calls this before each online iteration's updates: PPO's pi_old becomes
        the actor as it is now (a no-op for the other kinds)."""
        if self.rl_kind != "ppo":
            return
        if self.actor_old is None:
            self.actor_old = _frozen_copy(self.actor)
        else:
            self.actor_old.load_state_dict(self.actor.state_dict())

    def ratio_diagnostics(self) -> dict[str, float | None]:
        """PPO's pi/pi_old over the actor steps since the last call (diagnostics.csv): the mean
        of the per-update means, the max of the per-update maxima (float64; past 1e308 they
        are inf, written empty) and the max of log(pi/pi_old); {} for the other kinds. Resets."""
        if self.rl_kind != "ppo":
            return {}
        acc, self._ratio_acc = self._ratio_acc, _empty_ratio_acc()
        if not acc["n"]:
            return dict.fromkeys(("ppo_ratio_mean", "ppo_ratio_max", "ppo_log_ratio_max"))
        return {"ppo_ratio_mean": float(acc["sum"]) / acc["n"], "ppo_ratio_max": float(acc["max"]),
                "ppo_log_ratio_max": float(acc["log_max"])}

    def _actor_loss(self, batch: Mapping[str, Tensor], rl_coeff: float,
                    sup_coeff: float) -> tuple[Tensor, dict[str, Tensor]]:
        """L = sup_coeff * L_sup + rl_coeff * L_RL (paper Eq. 2, docs/methods/dt-family.md §4)."""
        sup, rl, stats = self._actor_terms(batch, with_rl=rl_coeff != 0)
        loss = sup_coeff * sup
        stats["sup_loss"] = sup.detach()
        if rl is not None:
            loss = loss + rl_coeff * rl
            stats["rl_loss"] = rl.detach()
        return loss, stats

    def actor_gradient_stats(self, batch: Mapping[str, Tensor], rl_coeff: float,
                             sup_coeff: float) -> dict[str, float | None]:
        """Norms of the actor's two gradient terms and their cosine, for diagnostics.csv.

        ||grad(sup_coeff * L_sup)||, ||grad(rl_coeff * L_RL)|| and cos(grad L_sup, grad L_RL)
        over all DT parameters, in training mode as an update sees them. It runs under a
        forked RNG and never touches the optimiser, so the run's numbers do not change."""
        from odtbench.diagnostics import gradient_stats

        params = [p for p in self.actor.parameters() if p.requires_grad]
        with_rl = self.uses_critic
        was_training = self.actor.training
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            self.actor.train()
            try:
                sup, rl, _ = self._actor_terms(batch, with_rl=with_rl)
                g_sup = torch.autograd.grad(sup, params, retain_graph=rl is not None,
                                            allow_unused=True)
                g_rl = (torch.autograd.grad(rl, params, allow_unused=True)
                        if rl is not None else None)
            finally:
                self.actor.train(was_training)

        def flat(gs: tuple[Tensor | None, ...]) -> Tensor:
            return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                              for g, p in zip(gs, params, strict=True)]).double()

        return gradient_stats(flat(g_sup), None if g_rl is None else flat(g_rl),
                              sup_coeff, rl_coeff)

    def actor_step(self, batch: Mapping[str, Tensor], rl_coeff: float,
                   sup_coeff: float) -> dict[str, Tensor]:
        """The actor loss; grad-norm clip; LAMB step; temperature; Polyak targets."""
        self.actor.train()
        loss, stats = self._actor_loss_fn(batch, rl_coeff, sup_coeff)
        # the clip's global norm over all DT parameters is the flat gradient's norm
        self.actor_optimizer.step(loss)
        # SAC's temperature also moves by ODT's rule (docs/methods/sac-odt.md)
        if self.stochastic and (self.entropy_reg or self.rl_kind == "sac"):
            self.temperature.step(stats["entropy"])
        if self.critic is not None:  # the target DT only serves critic targets
            polyak_([self._critic_target_flat.param], [self._critic_flat.param], self.tau)
            polyak_([self._actor_target_flat.param], [self._actor_flat.param], self.tau)
        if self.value is not None:
            polyak_([self._value_target_flat.param], [self._value_flat.param], self.tau)
        if "ppo_ratio_mean" in stats:
            # kept out of the update's metrics: an overflowing ratio is what PPO does here
            # (paper Fig. 10), not a reason to stop the run; device tensors, no host sync
            acc = self._ratio_acc
            mean, mx, log_mx = (stats.pop(k) for k in ("ppo_ratio_mean", "ppo_ratio_max",
                                                       "ppo_log_ratio_max"))
            acc["sum"] = acc["sum"] + mean
            first = acc["n"] == 0
            acc["max"] = mx if first else torch.maximum(acc["max"], mx)
            acc["log_max"] = log_mx if first else torch.maximum(acc["log_max"], log_mx)
            acc["n"] += 1
        stats["actor_loss"] = loss.detach()
        return stats

    def train_unit(self, sample: Callable[[], Mapping[str, Tensor]], rl_coeff: float,
                   sup_coeff: float) -> dict[str, Tensor]:
        """One actor update and its d = `actor_update_interval` critic updates (TD3's policy
        delay, docs/methods/dt-family.md §4): d fresh batches from `sample()`, a critic step
        on each, the actor step on the first right after its critic step."""
        return policy_delayed_unit(self, sample, rl_coeff, sup_coeff)

    def reset_targets(self) -> None:
        """Hard-copy online nets into the targets (the authors' new trainer per phase)."""
        self.actor_target.load_state_dict(self.actor.state_dict())
        parts = self._critic_parts()
        if parts is not None:
            parts[1].load_state_dict(parts[0].state_dict())
        if self.value is not None and self.value_target is not None:
            self.value_target.load_state_dict(self.value.state_dict())

    # --------------------------------------------------------------- inference
    def _tensor(self, x: Any) -> Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """The actor in eval mode (no dropout) for a block of `act` calls, restored after.
        Rollouts enter it once per episode batch: switching modes walks every submodule,
        which at the quick sizes cost ~12 % of a lockstep evaluation step when done per call."""
        if not self.actor.training:
            yield
            return
        self.actor.eval()
        try:
            yield
        finally:
            self.actor.train()

    @torch.no_grad()
    def act(self, states: Any, actions: Any, rtg: Any, deterministic: bool = True) -> Tensor:
        """Actions (N, A) for N contexts of T <= context_len steps (no padding), read at the
        last position. deterministic=False samples the stochastic head; the deterministic
        head always returns its (clamped) output, the loop adds exploration noise."""
        states, actions, rtg = self._tensor(states), self._tensor(actions), self._tensor(rtg)
        if states.dim() != 3 or states.shape[1] > self.context_len:
            raise OdtbenchError(f"act() takes (N, T, S) contexts with T <= context_len "
                                f"{self.context_len}; got shape {tuple(states.shape)}")
        with self.inference():
            out = self._dt(self.actor, states, actions, rtg, None)
        if isinstance(out, SquashedGaussian):
            last = SquashedGaussian(out.mu[:, -1], out.log_std[:, -1])
            action = last.mean if deterministic else last.rsample()
        else:
            action = out[:, -1]
        return action.clamp(-ACTION_BOUND, ACTION_BOUND)

    @torch.no_grad()
    def q_values(self, states: Any, actions: Any) -> Tensor:
        """Q1(s, a) for probes; inputs (..., S) and (..., A), output (...). AWR and PPO have
        no Q: their V(s) stands in (the diagnostics' q_s0 and q_mc_corr are then V's)."""
        if self.critic is None and self.value is not None:
            return self._v(self.value, self._tensor(states))
        critic = self._require_critic("q_values")
        return critic.q1(self._tensor(states), self._tensor(actions))

    # -------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (RNG states are the loop's)."""
        state = {
            "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "scheduler": self.scheduler.state_dict(),
            **self.temperature.state_dict(),  # log_temperature, temperature_opt
        }
        parts = self._critic_parts()
        if parts is not None:
            critic, critic_target, critic_opt = parts
            state.update(critic=critic.state_dict(), critic_target=critic_target.state_dict(),
                         critic_opt=critic_opt.state_dict())
        if self.value is not None and self.value_target is not None and self.value_opt is not None:
            state.update(value=self.value.state_dict(), value_target=self.value_target.state_dict(),
                         value_opt=self.value_opt.state_dict())
        if self.rl_kind == "ppo":  # pi_old is rebuilt at each round's start; the ratios are not
            state["ppo_ratio"] = dict(self._ratio_acc)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = set(self.state_dict())
        if set(state) != expected:
            raise OdtbenchError(f"agent checkpoint has keys {sorted(state)}, expected "
                                f"{sorted(expected)}; it was saved with other hyperparameters")
        self.actor.load_state_dict(state["actor"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.temperature.load_state_dict(state)
        parts = self._critic_parts()
        if parts is not None:
            critic, critic_target, critic_opt = parts
            critic.load_state_dict(state["critic"])
            critic_target.load_state_dict(state["critic_target"])
            critic_opt.load_state_dict(state["critic_opt"])
        if self.value is not None and self.value_target is not None and self.value_opt is not None:
            self.value.load_state_dict(state["value"])
            self.value_target.load_state_dict(state["value_target"])
            self.value_opt.load_state_dict(state["value_opt"])
        if self.rl_kind == "ppo":
            self._ratio_acc = dict(state["ppo_ratio"])
