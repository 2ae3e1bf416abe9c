"""The Decision-Transformer agent behind every DT method (one agent; each method a preset).

Actor loss (paper Eq. 2):  L = sup_coeff * L_sup + rl_coeff * L_RL,  L_RL = -Q1(s_t, DT(context_t)).
Critic loss (paper Eq. 3): TD3 with a Polyak-averaged target DT giving the next action.
Those are rl_kind 'td3' and 'ddpg' (ODT is 'none'). The RL term and the critics are the
kind's (`odtbench.methods.rl_kinds`: one module per kind, registered by name); this agent
holds what every kind shares (the DT, its target, optimiser and warm-up, the temperature,
Polyak steps, `act`, the policy delay) and calls its kind. The study's ablations (paper
App. C) are the kinds 'sac' (SAC+ODT, SAC: twin soft critics), 'iql' (IQL+ODT: twin Q +
expectile V), 'awac' (twin Q), 'awr' and 'ppo' (a V critic on TD(lambda) targets).

Where this code follows the authors' code rather than the paper's text (each "dt-family §N"
is a section of docs/methods/dt-family.md; its §8 is the full ledger):
- Critic loss: mask-weighted squared error averaged over all B*K entries, so padded entries
  count in the denominator (dt-family §3); the paper writes a plain sum over t.
- Actor losses average over real (non-padded) positions only, not over T_train (dt-family §2,
  §4); the stochastic head's entropy term averages over all positions, padding included
  (dt-family §2).
- The target DT's next actions come from the segment shifted by one step with an all-ones
  padding mask (dt-family §3), not from a separately built "next-state context" z_t.
- Target actions are clamped to +-(1-1e-6) before and after the smoothing noise (dt-family §3).
- Actor optimiser: LAMB (weight decay on every tensor + trust ratio) with a 10k-step linear
  warm-up that continues across phases, grad-norm clip 0.25; critic: AdamW with weight decay
  0.01 (dt-family §3, §4); the paper names LAMB only and no critic optimiser.
- Both targets are Polyak-updated after every actor step (not every critic step), and are
  hard-reset at the offline->online switch via `reset_targets` (dt-family §4, §5).
- With the stochastic head, L_RL uses tanh(mu) and critic targets use a sample (dt-family §3,
  §4).
- DDPG+ODT is not in the authors' code; it is built as TD3 with a single
  critic, no target smoothing and actor update interval 1 (the interval is the loop's).
Two deliberate deviations that change nothing numerically:
- ODT (rl_kind "none") builds no critic; the authors train one that the actor never uses.
- `act` runs the given context unpadded; the authors left-pad to K, and a padded key gets
  logit -1e4, whose softmax weight is exactly 0 in float32 (checked by a test).

Speed (docs/performance.md): the losses are pure functions of the batch (`critic_loss`,
`actor_loss`, the kind's); speed "fast" (`odtbench.fastpath`) runs this same maths with the
optimisers, clip and Polyak steps as one compiled function per training unit. bf16 autocast
and fused optimisers are further opt-in options. With every option off (the default) the
agent runs the eager fp32 path, bit for bit the same numbers as before the options existed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

import torch
from torch import Tensor

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.schemas import DTHyperparameters, as_schema
from odtbench.methods.actor_parts import (
    ActorNoise,
    ActorOptimizer,
    EntropyTemperature,
    WithActorParts,
)
from odtbench.methods.nets import DecisionTransformer, DropoutMasks, QEnsemble, SquashedGaussian
from odtbench.methods.optim import FlatParameters, polyak_
from odtbench.methods.rl_kinds import kind_entry, load_kind
from odtbench.methods.rl_kinds.base import ACTION_BOUND, Critic, RLKind, frozen_copy

SPEED_ENV = "ODTBENCH_SPEED"  # the loop's default SpeedOptions, e.g. "bf16,fused_optim"
SPEED_PATHS = ("reference", "fast", "auto")  # a run's `speed` (docs/performance.md)


@dataclass(frozen=True)
class SpeedOptions:
    """How the agent executes, never what it computes. All off = the reference eager fp32 path.

    path: "reference" (this module's eager update, readable and the equivalence tests'
      yardstick) or "fast" (`odtbench.fastpath`: each training unit one compiled function,
      equal to the reference to float32 rounding; the DT methods with rl_kind td3, ddpg or
      none, the others keep the reference path and say so), or "auto" (fast where the agent
      has it, else reference without a word; the CLI passes it where the fast path was
      measured faster per whole run, `odtbench.fastpath.auto_path`). config.json records the
      path that ran as `speed`.
    bf16: bf16 autocast around the DT (trunk, embeddings, heads); the critic, the losses and
      every optimiser stay fp32.
    fused_optim: fused AdamW/Adam kernels for the critic and the temperature (LAMB is already
      multi-tensor `_foreach_*` code). Rounds differently from the unfused kernels.
    resident_sampling: (the loop's, on a GPU) draw batch indices with a generator on the
      device, so sampling never leaves it; a different random stream from the CPU one.
    """

    path: str = "reference"
    bf16: bool = False
    fused_optim: bool = False
    resident_sampling: bool = False

    def __post_init__(self) -> None:
        if self.path not in SPEED_PATHS:
            raise UnknownChoiceError("speed", self.path, SPEED_PATHS)

    @classmethod
    def parse(cls, text: str | None) -> SpeedOptions:
        """From a comma list such as "bf16,fused_optim,path=fast" (a CLI flag,
        $ODTBENCH_SPEED); "" or None gives the defaults."""
        names = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for item in filter(None, (t.strip() for t in (text or "").split(","))):
            key, _, value = item.partition("=")
            if key not in names:
                raise UnknownChoiceError("speed option", key, sorted(names))
            kw[key] = value if key == "path" else value.lower() not in ("0", "false", "no")
        return cls(**kw)

    @property
    def enabled(self) -> list[str]:
        """The options beyond `path` that differ from the defaults, for a run's record."""
        return [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                if f.name != "path" and getattr(self, f.name) != f.default]


def policy_delayed_unit(agent: DTAgent, sample: Callable[[], Mapping[str, Tensor]],
                        rl_coeff: float, sup_coeff: float) -> dict[str, Tensor]:
    """TD3's policy delay: d = `actor_update_interval` critic steps on fresh batches, the
    actor step on the first batch right after its critic step."""
    metrics: dict[str, Tensor] = {}
    for b in range(agent.actor_update_interval):
        batch = sample()
        metrics.update(agent.critic_step(batch))
        if b == 0:
            metrics.update(agent.actor_step(batch, rl_coeff=rl_coeff, sup_coeff=sup_coeff))
    return metrics


class DTAgent(WithActorParts):
    """DT actor with the study's supervised update plus its RL kind's critics and term.

    Batches follow the segment-sampler contract (left padding): states, next_states (B,K,S);
    actions (B,K,A); rewards, dones, mask (B,K); rtg (B,K+1) already times reward_scale.
    """

    def __init__(self, hp: DTHyperparameters | Mapping[str, Any], state_dim: int, act_dim: int,
                 device: str | torch.device = "cpu", speed: SpeedOptions | None = None):
        # `hp`: a run's typed hyperparameters (RunConfig.typed_as), or a complete record of
        # them (a resolved run's `hyperparameters`: tests, benchmarks), typed here by the
        # kind's schema; the kind reads its own keys from the same object
        self.rl_kind = str(hp["rl_kind"] if isinstance(hp, Mapping) else hp.rl_kind)
        kind_cls = cast("type[RLKind]", load_kind(self.rl_kind))
        self.hp = a = as_schema(hp, kind_cls.schema, f"DTAgent (rl_kind {self.rl_kind!r})")
        kind_cls.check(self.rl_kind, a)
        if kind_entry(self.rl_kind).needs_log_pi and not a.stochastic:
            raise OdtbenchError(f"rl_kind {self.rl_kind!r} needs log pi, i.e. the stochastic "
                                "head: set stochastic=true")
        self.device = torch.device(device)
        self.speed = speed or SpeedOptions()
        self.state_dim, self.act_dim = int(state_dim), int(act_dim)
        self.context_len = int(a.context_len)
        self.stochastic = bool(a.stochastic)
        self.entropy_reg = float(a.entropy_reg)
        self.gamma, self.tau = float(a.gamma), float(a.tau)
        self.policy_noise, self.noise_clip = float(a.policy_noise), float(a.noise_clip)
        self.grad_clip = float(a.grad_clip or 0.0)
        self.actor_update_interval = int(a.actor_update_interval)  # TD3's policy delay d

        self.actor = DecisionTransformer(
            self.state_dim, self.act_dim, int(a.embed_dim), int(a.n_layer),
            int(a.n_head), float(a.dropout), self.stochastic,
            embed_dropout=float(a.embed_dropout),
        ).to(self.device)
        self.actor_target = frozen_copy(self.actor)
        # Each network's parameters live in one flat buffer (and its gradients in another):
        # optimiser, clipping and Polyak steps are then one op each, not one per tensor
        # (docs/performance.md). Gradients are zeroed in place to keep the views bound.
        self.actor_flat = FlatParameters(self.actor)
        self._actor_target_flat = FlatParameters(self.actor_target, with_grad=False)

        # the kind builds its critics after the actor: their initial weights draw from the
        # global generator after the DT's
        self.kind: RLKind = kind_cls(self.rl_kind, self, a)
        self.critics: dict[str, Critic] = self.kind.critics

        # foreach=True: multi-tensor kernels, bit-identical to torch's CPU default (a Python
        # loop over parameters); fused=True only as a speed option (it rounds differently).
        self._adam_kernel = "fused" if self.speed.fused_optim else "foreach"
        # ODT's temperature is a standalone scalar with its own Adam (docs/methods/dt-family.md §2).
        self.temperature = EntropyTemperature(float(a.init_temperature), self.act_dim,
                                              self.device, adam_kernel=self._adam_kernel)
        self.reset_optimizers()
        # A constant RTG input for training batches instead of their hindsight RTG (None =
        # the data's): the toy's RL-only actor is pi(1), as the study's DDPG (docs/fidelity.md).
        constant = a.train_rtg_constant
        self.train_rtg_constant = None if constant is None else float(constant)

        # speed "fast" / "auto": the compiled units of odtbench.fastpath (None where the kind
        # or the options have none; the reference path then runs, under "fast" with a line
        # saying so)
        self.fast: Any = None
        if self.speed.path in ("fast", "auto"):
            from odtbench.fastpath import fast_unit_for

            self.fast = fast_unit_for(self, quiet=self.speed.path == "auto")

    def reset_optimizers(self) -> None:
        """Fresh optimiser and warm-up states for actor, critic and temperature (also what
        __init__ builds). The study's toy starts its online phase with new Adams."""
        hp, kernel = self.hp, self._adam_kernel
        # the study's toy uses Adam (App. F.2.1); the flat gradient's views stay bound (keep_grads)
        self.actor_optimizer = ActorOptimizer(
            [self.actor_flat.param], lr=float(hp.lr_actor),
            weight_decay=float(hp.weight_decay), warmup_steps=int(hp.warmup_steps),
            grad_clip=self.grad_clip, kind=str(hp.actor_optimizer),
            segments=self.actor_flat.sizes, adam_kernel=kernel, keep_grads=True,
            clip_foreach=True)
        for critic in self.critics.values():  # AdamW, the same kernel as the Adams
            critic.reset_optimizer(float(hp.lr_critic), float(hp.critic_weight_decay), kernel)
        self.temperature.reset_optimizer()

    @property
    def actor_opt(self) -> torch.optim.Optimizer:
        return self.actor_optimizer.opt

    def rtg_input(self, rtg: Tensor) -> Tensor:
        """The RTG tokens a training batch feeds the DT (see train_rtg_constant)."""
        if self.train_rtg_constant is None:
            return rtg
        return torch.full_like(rtg, self.train_rtg_constant)

    def dt_forward(self, net: torch.nn.Module, *inputs: Tensor | None,
            masks: DropoutMasks | None = None) -> Tensor | SquashedGaussian:
        """Run a DT (online or target), under bf16 autocast when asked; outputs are fp32.
        masks: its dropout masks drawn beforehand (the fast path), else drawn by the DT."""
        if masks is not None:
            return net(*inputs, masks=masks)
        if not self.speed.bf16:
            return net(*inputs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = net(*inputs)
        if isinstance(out, SquashedGaussian):
            return SquashedGaussian(out.mu.float(), out.log_std.float())
        return out.float()

    @property
    def uses_critic(self) -> bool:
        """False without critics (rl_kind 'none', ODT): `critic_step` is then a no-op the
        loop may skip."""
        return bool(self.critics)

    # the kind's critics under the names tests, probes and checkpoints read ("critic": the
    # Q ensemble, "value": V(s)); None where the kind has no such critic
    def _part(self, name: str, part: str) -> Any:
        critic = self.critics.get(name)
        return None if critic is None else getattr(critic, part)

    @property
    def critic(self) -> QEnsemble | None:
        return self._part("critic", "net")

    @property
    def critic_target(self) -> QEnsemble | None:
        return self._part("critic", "target")

    @property
    def critic_opt(self) -> torch.optim.Optimizer | None:
        return self._part("critic", "opt")

    @property
    def _critic_flat(self) -> FlatParameters | None:
        return self._part("critic", "flat")

    @property
    def value(self) -> QEnsemble | None:
        return self._part("value", "net")

    @property
    def value_target(self) -> QEnsemble | None:
        return self._part("value", "target")

    # ------------------------------------------------------------------ critic
    @torch.no_grad()
    def target_next_actions(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """Target DT on the shifted window: s'_{1..K}, (a_2..a_K, 0), R_{2..K+1}, mask all ones;
        (next actions, their log pi under the target DT, or None for the deterministic head)."""
        actions = batch["actions"]
        shifted = torch.cat((actions[:, 1:], torch.zeros_like(actions[:, :1])), dim=1)
        out = self.dt_forward(self.actor_target, batch["next_states"], shifted,
                       self.rtg_input(batch["rtg"][:, 1:]), None)
        log_prob = None
        if isinstance(out, SquashedGaussian):  # (the fast path draws its eps beforehand)
            next_actions, log_prob = out.rsample_with_log_prob(batch.get("target_eps"))
        else:
            next_actions = out
        return next_actions.clamp(-ACTION_BOUND, ACTION_BOUND), log_prob

    def critic_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(L of the kind's critics, mean Q (or V) over real entries), paper Eq. 3 for TD3
        with the authors' quirks (docs/methods/dt-family.md §3); the kind's module for the others."""
        return self.kind.critic_loss(batch)

    def critic_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One update of the kind's critics (docs/methods/dt-family.md §3); returns detached
        tensors. Without critics (rl_kind 'none', ODT) a no-op returning {}."""
        opts = [c.opt for c in self.critics.values()]
        if not opts:
            return {}
        loss, q_mean = self.critic_loss(batch)
        for opt in opts:
            opt.zero_grad(set_to_none=False)  # in place: the gradient views stay bound
        loss.backward()
        for opt in opts:
            opt.step()
        return {"critic_loss": loss.detach(), "q_mean": q_mean}

    # ------------------------------------------------------------------- actor
    def _actor_terms(self, batch: Mapping[str, Tensor], with_rl: bool,
                     noise: ActorNoise | None = None,
                     ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """(L_sup, L_RL or None, stats) of paper Eq. 2 on one batch (docs/methods/dt-family.md §4).
        noise: the forward's randomness drawn beforehand (the fast path), else drawn here."""
        states, actions, mask = batch["states"], batch["actions"], batch["mask"]
        n_real = mask.sum()
        out = self.dt_forward(self.actor, states, actions, self.rtg_input(batch["rtg"][:, :-1]),
                              mask, masks=None if noise is None else noise.masks)
        stats: dict[str, Tensor] = {}
        if isinstance(out, SquashedGaussian):
            # L_sup = -(mean_real log pi(a_t | ctx_t) + lambda_H * T * mean_all H), T detached
            log_lik = (out.log_prob(actions) * mask).sum() / n_real
            entropy = out.entropy(None if noise is None else noise.eps).mean()
            temperature = self.log_temperature.exp().detach()
            sup = -(log_lik + self.entropy_reg * temperature * entropy)
            stats.update(entropy=entropy.detach(), temperature=temperature)
        else:
            # L_sup = mean over real positions and action dims of (a_hat_t - a_t)^2
            sup = ((out - actions).pow(2).mean(dim=-1) * mask).sum() / n_real
        # L_RL: the kind's (td3/ddpg: -mean_real Q1(s_t, a*_t), paper Eq. 2)
        rl = self.kind.rl_term(batch, out, stats) if with_rl else None
        return sup, rl, stats

    def begin_update_round(self) -> None:
        """The loop calls this before each online iteration's updates: the kind's round hook
        (PPO's pi_old becomes the actor as it is now)."""
        self.kind.begin_round()

    def kind_diagnostics(self) -> dict[str, float | None]:
        """The kind's diagnostics.csv columns since the last call (PPO's pi/pi_old; {} for
        the kinds without any). Resets."""
        return self.kind.diagnostics()

    ratio_diagnostics = kind_diagnostics  # the name PPO's tests use

    def actor_loss(self, batch: Mapping[str, Tensor], rl_coeff: float, sup_coeff: float,
                    noise: ActorNoise | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """L = sup_coeff * L_sup + rl_coeff * L_RL (paper Eq. 2, docs/methods/dt-family.md §4)."""
        sup, rl, stats = self._actor_terms(batch, with_rl=rl_coeff != 0, noise=noise)
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
        from odtbench.runfiles.diagnostics import gradient_stats

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
        loss, stats = self.actor_loss(batch, rl_coeff, sup_coeff)
        # the clip's global norm over all DT parameters is the flat gradient's norm
        self.actor_optimizer.step(loss)
        # SAC's temperature also moves by ODT's rule (docs/methods/sac-odt.md)
        if self.stochastic and (self.entropy_reg or self.kind.moves_temperature):
            self.temperature.step(stats["entropy"])
        for critic in self.critics.values():
            critic.polyak(self.tau)
        if self.kind.target_actor:  # the target DT only serves critic targets
            polyak_([self._actor_target_flat.param], [self.actor_flat.param], self.tau)
        self.kind.after_actor_step(stats)
        stats["actor_loss"] = loss.detach()
        return stats

    def train_unit(self, sample: Callable[[], Mapping[str, Tensor]], rl_coeff: float,
                   sup_coeff: float) -> dict[str, Tensor]:
        """One actor update and its d = `actor_update_interval` critic updates (TD3's policy
        delay, docs/methods/dt-family.md §4): d fresh batches from `sample()`, a critic step
        on each, the actor step on the first right after its critic step. Speed "fast": the
        same unit as one compiled function (odtbench.fastpath)."""
        if self.fast is not None:
            return self.fast(sample, rl_coeff, sup_coeff)
        return policy_delayed_unit(self, sample, rl_coeff, sup_coeff)

    def reset_targets(self) -> None:
        """Hard-copy online nets into the targets (the authors' new trainer per phase)."""
        self.actor_target.load_state_dict(self.actor.state_dict())
        for critic in self.critics.values():
            critic.reset_target()

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
            out = self.dt_forward(self.actor, states, actions, rtg, None)
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
        if "critic" in self.critics:
            return self.critics["critic"].net.q1(self._tensor(states), self._tensor(actions))
        if "value" in self.critics:
            return RLKind.v(self.critics["value"].net, self._tensor(states))
        raise OdtbenchError(f"q_values needs a Q critic but rl_kind is {self.rl_kind!r}; use a "
                            "method with an RL gradient")

    # -------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (RNG states are the loop's)."""
        state = {
            "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "scheduler": self.scheduler.state_dict(),
            **self.temperature.state_dict(),  # log_temperature, temperature_opt
        }
        for name, critic in self.critics.items():  # critic*, value*: by the kind's critics
            state.update(critic.state_dict(name))
        state.update(self.kind.state_dict())
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
        for name, critic in self.critics.items():
            critic.load_state_dict(name, state)
        self.kind.load_state_dict(state)
