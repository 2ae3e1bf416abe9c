"""The study's baselines (TD3+BC, IQL, PDT) and the floor (TD3-scratch) as method specs, a
plug-in of the suite.

`BASELINES` is this distribution's "odtbench.methods" entry point (pyproject.toml); the
registry loads it on its first lookup, so TD3+BC, IQL and PDT are found like the DT methods (`odtbench list methods`, the workflow's config, the
reports). This module holds only the specs and their hyperparameters (no torch import, so
listing methods stays fast); the code is in `td3bc`, `iql`, `mlp_loop`, `pdt`, `pdt_loop`,
`td3_scratch`.

Every key below is the method's own (prefixed `mlp_`, `td3bc_`, `iql_`, `pdt_`) except the
protocol keys every method shares with the DT family: `online_budget`, `eval_episodes`,
`max_episode_len`, `divergence_q_bound` (and, for PDT, which is a DT, the transformer,
optimiser and iteration keys). Values are paper scale; the scale presets change sizes and
budgets only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.schemas import (
    BATCH,
    COUNT,
    COUNT0,
    DEPTH,
    HALF_OPEN_UNIT,
    LOG_STD,
    LR,
    NONNEG,
    OPEN_UNIT,
    POSITIVE,
    REPLAY,
    UNIT,
    WIDTH,
    Choices,
    Protocol,
    TrajectoryTransformer,
)
from odtbench.methods.registry import MethodSpec

# --- typed schemas: the keys each baseline reads (odtbench.hyperparameters.schemas) --------------
# IQL's actor learning-rate schedules (odtbench_baselines.iql implements each)
IQL_SCHEDULES = ("cosine", "cosine_pretrain", "constant")


@dataclass(frozen=True, kw_only=True)
class MLPOnlineHyperparameters(Protocol):
    """The MLP protocol's online part: all TD3-scratch has (docs/methods/mlp-protocol.md)."""

    mlp_hidden: Annotated[int, WIDTH]
    mlp_layers: Annotated[int, DEPTH]
    # transitions; None: never evicts (docs/fidelity.md)
    mlp_replay_size: Annotated[int | None, REPLAY]
    mlp_batch_size: Annotated[int, BATCH]
    mlp_discount: Annotated[float, UNIT]
    mlp_tau: Annotated[float, UNIT]
    mlp_eval_every: Annotated[int, COUNT]
    mlp_checkpoint_every: Annotated[int, COUNT]

    memory_keys: ClassVar[tuple[str, ...]] = ("mlp_batch_size", "mlp_hidden", "mlp_layers")

    def memory_bytes(self) -> int:
        # actor, twin critics and their targets: mlp_layers hidden^2 weights each, and the
        # hidden units of every batch entry
        nets = 3 * self.mlp_layers * (self.mlp_hidden ** 2 + self.mlp_batch_size * self.mlp_hidden)
        return 4 * nets


@dataclass(frozen=True, kw_only=True)
class MLPHyperparameters(MLPOnlineHyperparameters):
    """The MLP protocol of TD3+BC and IQL (docs/methods/mlp-protocol.md)."""

    mlp_pretrain_steps: Annotated[int, COUNT0]
    mlp_pretrain_eval_every: Annotated[int, COUNT]


@dataclass(frozen=True, kw_only=True)
class TD3BCHyperparameters(MLPHyperparameters):
    """TD3+BC (docs/methods/td3-bc.md)."""

    td3bc_alpha: Annotated[float, NONNEG]
    td3bc_normalize_states: bool
    td3bc_actor_lr: Annotated[float, LR]
    td3bc_critic_lr: Annotated[float, LR]
    td3bc_policy_noise: Annotated[float, NONNEG]
    td3bc_noise_clip: Annotated[float, NONNEG]
    td3bc_policy_freq: Annotated[int, COUNT]
    td3bc_expl_noise: Annotated[float, NONNEG]


@dataclass(frozen=True, kw_only=True)
class TD3ScratchHyperparameters(MLPOnlineHyperparameters):
    """TD3 online only, the floor (docs/methods/td3-scratch.md)."""

    td3_actor_lr: Annotated[float, LR]
    td3_critic_lr: Annotated[float, LR]
    td3_policy_noise: Annotated[float, NONNEG]
    td3_noise_clip: Annotated[float, NONNEG]
    td3_policy_freq: Annotated[int, COUNT]
    td3_expl_noise: Annotated[float, NONNEG]
    td3_start_steps: Annotated[int, COUNT0]  # uniform-random actions before the first update, at most...
    td3_start_share: Annotated[float, HALF_OPEN_UNIT]  # ... this share of online_budget


@dataclass(frozen=True, kw_only=True)
class IQLHyperparameters(MLPHyperparameters):
    """IQL (docs/methods/iql.md)."""

    iql_expectile: Annotated[float, OPEN_UNIT]
    iql_temperature: Annotated[float, POSITIVE]
    iql_dropout: Annotated[float, HALF_OPEN_UNIT]  # Adroit actor dropout (docs/fidelity.md)
    iql_actor_lr: Annotated[float, LR]
    iql_critic_lr: Annotated[float, LR]
    iql_value_lr: Annotated[float, LR]
    iql_actor_schedule: Annotated[str, Choices(IQL_SCHEDULES)]
    iql_max_weight: Annotated[float, POSITIVE]
    iql_log_std_min: Annotated[float, LOG_STD]
    iql_log_std_max: Annotated[float, LOG_STD]
    iql_normalize_rewards: bool
    iql_scale_online_rewards: bool

    def __post_init__(self) -> None:
        if self.iql_log_std_min >= self.iql_log_std_max:
            raise OdtbenchError(f"iql_log_std_min {self.iql_log_std_min} must be below "
                                f"iql_log_std_max {self.iql_log_std_max}")


@dataclass(frozen=True, kw_only=True)
class PDTHyperparameters(TrajectoryTransformer):
    """PDT (docs/methods/pdt.md): the transformer and iteration keys, and its own."""

    pdt_z_dim: Annotated[int, WIDTH]
    pdt_kl_weight: Annotated[float, NONNEG]
    pdt_prior_weight: Annotated[float, NONNEG]
    pdt_return_weight: Annotated[float, NONNEG]
    pdt_warmup_samples: Annotated[int, COUNT0]
    pdt_warmup_envs: Annotated[int, COUNT]
    pdt_return_warmup_iters: Annotated[int, COUNT]
    pdt_return_warmup_batches: Annotated[int, COUNT]
    pdt_return_warmup_lr: Annotated[float, LR]
    pdt_prior_samples: Annotated[int, BATCH]
    pdt_sample_topk: Annotated[int, BATCH]


# --- TD3+BC and IQL: the shared MLP protocol (baselines/mlp_loop.py) ---------------------
MLP_COMMON: dict[str, Any] = {
    "mlp_hidden": 256, "mlp_layers": 2,  # both codebases: 2 x 256 ReLU
    "mlp_batch_size": 256, "mlp_discount": 0.99, "mlp_tau": 0.005,  # both codebases
    # the study's "Baseline settings": pretrained 1M steps, the codebases' default
    "mlp_pretrain_steps": 1_000_000, "mlp_pretrain_eval_every": 100_000,
    # online evaluation every 10k transitions: the DT family evaluates every 10 iterations
    # of >= 1 episode (<= 1000 steps) or >= 1000 steps (random datasets)
    "mlp_eval_every": 10_000,
    "mlp_checkpoint_every": 50_000,  # updates; checkpoints fall between episodes
    # replay FIFO size in transitions; None = offline + online budget (nothing evicted)
    "mlp_replay_size": None,
}
MLP_SCALES: dict[str, dict[str, Any]] = {
    "paper": {},
    # one CPU core: ~3x cheaper updates (128 wide, batch 128), 25K offline steps; online
    # still one update per step, evaluated about as often as the DT family's quick runs
    "quick": {"mlp_hidden": 128, "mlp_batch_size": 128, "mlp_pretrain_steps": 25_000,
              "mlp_pretrain_eval_every": 25_000, "mlp_eval_every": 5_000,
              "mlp_checkpoint_every": 10_000},
    "smoke": {"mlp_hidden": 16, "mlp_batch_size": 8, "mlp_pretrain_steps": 20,
              "mlp_pretrain_eval_every": 10, "mlp_eval_every": 40, "mlp_checkpoint_every": 10},
}

# TD3+BC: Fujimoto & Gu 2021, official code defaults (docs/methods/td3-bc.md)
TD3BC_PRESET: dict[str, Any] = {
    **MLP_COMMON,
    "td3bc_alpha": 2.5, "td3bc_normalize_states": True,
    "td3bc_actor_lr": 3e-4, "td3bc_critic_lr": 3e-4,
    "td3bc_policy_noise": 0.2, "td3bc_noise_clip": 0.5, "td3bc_policy_freq": 2,
    "td3bc_expl_noise": 0.1,  # online only: TD3's (Fujimoto et al. 2018) exploration default
}

# IQL: Kostrikov et al. 2022, hyperparameter table + official configs (docs/methods/iql.md)
IQL_PRESET: dict[str, Any] = {
    **MLP_COMMON,
    "iql_expectile": 0.7, "iql_temperature": 3.0,  # MuJoCo
    "iql_actor_lr": 3e-4, "iql_critic_lr": 3e-4, "iql_value_lr": 3e-4,
    # "cosine": decay over pretraining + online budget; "cosine_pretrain": over the pretraining
    # updates only (the official 1M-step horizon: the actor is frozen online); "constant"
    # (docs/fidelity.md)
    "iql_actor_schedule": "cosine", "iql_max_weight": 100.0,
    "iql_dropout": 0.0,  # actor MLP dropout (official: none on MuJoCo and AntMaze)
    "mlp_replay_size": 1_000_000,  # official finetuning: a 1M-transition FIFO (docs/fidelity.md)
    "iql_log_std_min": -5.0, "iql_log_std_max": 2.0,
    "iql_normalize_rewards": True, "iql_scale_online_rewards": False,
}
IQL_SUITES: dict[str, dict[str, Any]] = {
    # official AntMaze finetuning config: tau 0.9, beta 10, no learning-rate decay (docs/methods/iql.md)
    "antmaze": {"iql_expectile": 0.9, "iql_temperature": 10.0, "iql_actor_schedule": "constant"},
    # paper: kitchen/adroit row; the official Adroit/kitchen config's actor dropout 0.1
    "adroit": {"iql_expectile": 0.7, "iql_temperature": 0.5, "iql_dropout": 0.1},
}

# TD3-scratch: Fujimoto et al. 2018, the published code's defaults (docs/methods/td3-scratch.md);
# the mlp_* sizes are the MLP protocol's, without its pretraining keys
TD3_CODE = "TD3 published code (Fujimoto et al. 2018; docs/methods/td3-scratch.md)"
_OFFLINE_ONLY = ("mlp_pretrain_steps", "mlp_pretrain_eval_every")
TD3_SCRATCH_PRESET: dict[str, Any] = {
    **{k: v for k, v in MLP_COMMON.items() if k not in _OFFLINE_ONLY},
    "td3_actor_lr": 3e-4, "td3_critic_lr": 3e-4,
    "td3_policy_noise": 0.2, "td3_noise_clip": 0.5, "td3_policy_freq": 2,
    "td3_expl_noise": 0.1,
    # start_timesteps 25e3 of its 1M steps; a budget B starts with min(25K, 5 % of B): 25K is
    # 5 % of the study's 500K, so the paper scale runs the code's value
    "td3_start_steps": 25_000, "td3_start_share": 0.05,
}
TD3_SCRATCH_SOURCES = {
    **{k: TD3_CODE for k in ("td3_actor_lr", "td3_critic_lr", "td3_policy_noise",
                             "td3_noise_clip", "td3_policy_freq", "td3_expl_noise",
                             "td3_start_steps")},
    "mlp_hidden": TD3_CODE + ": 256-256", "mlp_batch_size": TD3_CODE,
    "mlp_discount": TD3_CODE, "mlp_tau": TD3_CODE,
    "td3_start_share": "the share 25K is of the study's 500K budget (docs/methods/td3-scratch.md)",
    "mlp_replay_size": "never evicts: the published code's 1M buffer holds any budget up to 1M",
}
TD3_SCRATCH_SCALES: dict[str, dict[str, Any]] = {
    s: {k: v for k, v in layer.items() if k not in _OFFLINE_ONLY} for s, layer in MLP_SCALES.items()}

# --- PDT: Xie et al. 2023, official code defaults (docs/methods/pdt.md §4) -----------------
PDT_PRESET: dict[str, Any] = {
    # the DT keys, reset to PDT's defaults (the domain rows of Tab. 9 are TD3+ODT's)
    "embed_dim": 512, "n_layer": 4, "n_head": 4, "dropout": 0.1, "embed_dropout": 0.1,
    "context_len": 20, "eval_context_len": 5, "batch_size": 256,
    "lr_actor": 1e-4, "weight_decay": 5e-4, "warmup_steps": 10_000, "grad_clip": 0.25,
    # the tanh-Gaussian head with ODT's entropy term and no RL term are PDT's model itself
    "init_temperature": 0.1, "reward_scale": 0.001, "drop_lowest_return": True,
    # the study: 40K pretraining steps = 40 iterations x 1000 updates (README cadence)
    "pretrain_iters": 40, "pretrain_updates": 1000,
    "online_updates_per_iter": 300, "replay_size": 1000, "eval_interval": 10,
    # one episode per online iteration on every dataset (docs/methods/pdt.md §5), not the ODT
    # family's >= 1000 transitions on random data: the study ran PDT with its defaults
    "min_transitions_per_iter": 0,
    "pdt_z_dim": 16, "pdt_kl_weight": 1.0, "pdt_prior_weight": 1.0, "pdt_return_weight": 1.0,
    "pdt_warmup_samples": 10_000, "pdt_warmup_envs": 10,
    "pdt_return_warmup_iters": 5, "pdt_return_warmup_batches": 300, "pdt_return_warmup_lr": 1e-3,
    "pdt_prior_samples": 256, "pdt_sample_topk": 1,
}
PDT_SUITES: dict[str, dict[str, Any]] = {"antmaze": {"reward_scale": 1.0}}
PDT_SCALES: dict[str, dict[str, Any]] = {
    "paper": {},
    # the generic quick/smoke DT sizes apply; these shrink PDT's own budgets to match
    "quick": {"pretrain_iters": 4, "pdt_warmup_samples": 2_000, "pdt_warmup_envs": 5,
              "pdt_return_warmup_batches": 50},
    # (smoke's generic >= 40 transitions per iteration would change the algorithm: reset)
    "smoke": {"min_transitions_per_iter": 0, "pretrain_iters": 2, "pdt_warmup_samples": 40,
              "pdt_warmup_envs": 2,
              "pdt_return_warmup_iters": 2, "pdt_return_warmup_batches": 3,
              "pdt_prior_samples": 8},
}

BASELINES = (
    MethodSpec(
        name="TD3+BC", family="mlp", role="study",
        paper_name="TD3+BC", runner="odtbench_baselines.td3bc:run",
        hyperparameters=TD3BCHyperparameters,
        preset=TD3BC_PRESET, scale_presets=MLP_SCALES,
        description="TD3 + behaviour cloning (Fujimoto & Gu 2021), alpha 2.5, normalised "
                    "states; 1M offline steps, then one update per online step",
    ),
    MethodSpec(
        name="IQL", family="mlp", role="study",
        paper_name="IQL", runner="odtbench_baselines.iql:run",
        hyperparameters=IQLHyperparameters,
        preset=IQL_PRESET, suite_presets=IQL_SUITES, scale_presets=MLP_SCALES,
        description="Implicit Q-learning (Kostrikov et al. 2022): expectile V, AWR policy; "
                    "1M offline steps, then one update per online step",
    ),
    MethodSpec(
        name="PDT", family="pdt", role="study",
        paper_name="PDT", runner="odtbench_baselines.pdt_loop:run",
        description="Pretrained Decision Transformer (Xie et al. 2023): reward-free "
                    "future-conditioned pretraining, return-guided latent online",
        hyperparameters=PDTHyperparameters,
        preset=PDT_PRESET, suite_presets=PDT_SUITES, scale_presets=PDT_SCALES,
    ),
    MethodSpec(
        name="TD3-scratch", family="mlp", role="floor", floor_suites=("mujoco",),
        runner="odtbench_baselines.td3_scratch:run",
        hyperparameters=TD3ScratchHyperparameters, preset=TD3_SCRATCH_PRESET,
        preset_sources=TD3_SCRATCH_SOURCES, scale_presets=TD3_SCRATCH_SCALES,
        description="the floor: TD3 (Fujimoto et al. 2018) online only, from an empty buffer, "
                    "raw states; uniform-random start steps, then one update per step",
    ),
)


def external_runner(cfg: Any, out_dir: Any, **_: Any) -> dict:
    """Runner of methods declared in the workflow's `external_methods` (they run through
    workflows/rules/external.smk, never through `odtbench run`)."""
    raise OdtbenchError(f"method {cfg.method!r} is an external command; run it through the "
                        "workflow (docs/adding-a-baseline.md), not `odtbench run`")
