"""Checks of hyperparameter values, per key: type, range, choices; and of the torch device.

Called by `odtbench.config.resolve` (so `odtbench run`, the workflow's config check and every
caller get them) before anything is written: a bad `--set` or a bad value in the workflow's
`hyperparameters:` stops with one line naming the key, the value and what is valid.

Types come from the value the key had before the user's override (a key that defaults to an
integer takes an integer); ranges and choices are listed here by key. A key that is not listed
is checked for its type only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from odtbench.errors import OdtbenchError

INF = math.inf
# key -> (low, high, low_inclusive, high_inclusive)
_POS = (0, INF, False, True)      # > 0
_NONNEG = (0, INF, True, True)    # >= 0
_UNIT = (0, 1, True, True)        # [0, 1]
_OPEN_UNIT = (0, 1, False, False)  # (0, 1)
_HALF_OPEN_UNIT = (0, 1, True, False)  # [0, 1)
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    **dict.fromkeys((
        "embed_dim", "n_layer", "n_head", "context_len", "eval_context_len", "batch_size",
        "critic_hidden", "n_critics", "actor_update_interval", "pretrain_iters",
        "online_updates_per_iter", "max_online_iters", "online_budget", "replay_size",
        "eval_interval", "eval_episodes", "max_episode_len", "checkpoint_every_updates",
        "lr_actor", "lr_critic", "divergence_q_bound", "init_temperature", "reward_scale",
        "mlp_hidden", "mlp_layers", "mlp_batch_size", "mlp_pretrain_eval_every",
        "mlp_eval_every", "mlp_checkpoint_every", "td3bc_actor_lr", "td3bc_critic_lr",
        "td3bc_policy_freq", "iql_actor_lr", "iql_critic_lr", "iql_value_lr",
        "iql_temperature", "iql_max_weight", "pdt_z_dim", "pdt_warmup_envs",
        "pdt_return_warmup_iters", "pdt_return_warmup_batches", "pdt_return_warmup_lr",
        "pdt_prior_samples", "pdt_sample_topk", "awac_lambda", "awac_max_weight", "awr_beta",
        "awr_max_weight", "ppo_clip", "td3_actor_lr", "td3_critic_lr", "td3_policy_freq"),
        _POS),
    **dict.fromkeys((
        "pretrain_updates", "warmup_steps", "min_transitions_per_iter", "weight_decay",
        "critic_weight_decay", "grad_clip", "policy_noise", "noise_clip", "expl_noise",
        "rl_coeff", "sup_coeff", "mlp_pretrain_steps", "td3bc_alpha", "td3bc_policy_noise",
        "td3bc_noise_clip", "td3bc_expl_noise", "pdt_kl_weight", "pdt_prior_weight",
        "pdt_return_weight", "pdt_warmup_samples", "td3_policy_noise", "td3_noise_clip",
        "td3_expl_noise", "td3_start_steps"), _NONNEG),
    **dict.fromkeys(("gamma", "tau", "mlp_discount", "mlp_tau", "awr_lambda", "ppo_lambda"),
                    _UNIT),
    "dropout": _HALF_OPEN_UNIT,
    "td3_start_share": _HALF_OPEN_UNIT,
    "iql_expectile": _OPEN_UNIT,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "actor_optimizer": ("lamb", "adam"),
    "online_updates_mode": ("fixed", "epoch"),
    "iql_actor_schedule": ("cosine", "constant"),
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


_WANT = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string"}


def _bad(key: str, value: Any, want: str) -> OdtbenchError:
    return OdtbenchError(f"hyperparameter {key}={value!r} is invalid: must be {want}; fix the "
                         "--set override or the workflow config's hyperparameters")


def _range_text(lo: float, hi: float, lo_in: bool, hi_in: bool) -> str:
    if hi == INF:
        return f"{'>=' if lo_in else '>'} {lo:g}"
    return f"in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _choices(key: str) -> tuple[str, ...] | None:
    """The allowed values of a string key, or None; rl_kind's are the registered kinds
    (odtbench.methods.rl_kinds, torch-free), plug-ins included."""
    if key == "rl_kind":
        from odtbench.methods.rl_kinds import kind_names

        return kind_names()
    return CHOICES.get(key)


def check_value(key: str, value: Any, default: Any = None) -> None:
    """One key's value; `default` is the value before the override (it gives the type)."""
    want = _kind(default) if default is not None else None
    got = _kind(value)
    if want == "int" and got != "int":
        raise _bad(key, value, "an integer" + (
            f" {_range_text(*RANGES[key])}" if key in RANGES else ""))
    if want == "float" and got not in ("int", "float"):
        raise _bad(key, value, "a number" + (
            f" {_range_text(*RANGES[key])}" if key in RANGES else ""))
    choices = _choices(key)
    if want in ("bool", "str") and got != want:
        raise _bad(key, value, _WANT[want] if choices is None else f"one of {', '.join(choices)}")
    if choices is not None and value not in choices:
        raise _bad(key, value, f"one of {', '.join(choices)}")
    if got in ("int", "float"):
        if not math.isfinite(value):
            raise _bad(key, value, "a finite number")
        if key in RANGES:
            lo, hi, lo_in, hi_in = RANGES[key]
            ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
            if not ok:
                raise _bad(key, value, f"{'an integer' if want == 'int' else 'a number'} "
                           f"{_range_text(lo, hi, lo_in, hi_in)}")


def check_hyperparameters(hp: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """Every key of `hp` (resolved), typed by `before` (the values before the user's
    overrides), then the checks that span keys."""
    before = before or {}
    for key, value in hp.items():
        check_value(key, value, before.get(key))
    if "embed_dim" in hp and "n_head" in hp and hp["embed_dim"] % hp["n_head"]:
        raise OdtbenchError(f"embed_dim {hp['embed_dim']} is not divisible by n_head "
                            f"{hp['n_head']}; change one of them")
    lo, hi = hp.get("iql_log_std_min"), hp.get("iql_log_std_max")
    if lo is not None and hi is not None and lo >= hi:
        raise OdtbenchError(f"iql_log_std_min {lo} must be below iql_log_std_max {hi}")


def check_device(device: str) -> str:
    """`device` names a torch device that this machine has; one line otherwise."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OdtbenchError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N")\
            from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise OdtbenchError(f"device {device!r} requested but this machine has no usable "
                                "CUDA GPU; use --device cpu (workflow: device: cpu)")
        if dev.index is not None and dev.index >= n:
            raise OdtbenchError(f"device {device!r} requested but this machine has {n} CUDA "
                                f"GPU(s): cuda:0..cuda:{n - 1}")
        return device
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise OdtbenchError(f"device {device!r} is not available here; use --device cpu")
    return device
