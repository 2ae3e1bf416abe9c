"""Figure 2 of the study from the suite's own toy-bandit runs (probes.json, contract §1 extras):
(a) rollout reward vs gradient steps, (b) rollout actions per epoch, (c) critic estimate over
the action range with the true reward, (d) the DT policy's action vs conditioning RTG; plus
the final-reward table with rliable's IQM and the study's claim checked per seed."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from odtbench.analysis.aggregates import bootstrap_ci, iqm
from odtbench.analysis.common import method_color, sort_methods
from odtbench.analysis.curves import mean_std
from odtbench.runfiles import contract
from odtbench.runfiles.contract import bad_file
from odtbench.runfiles.results import RunRecord

# The study's claim (Sec. 3.1, Fig. 2): ODT never finds the reward peak, RL gradients do.
CLAIM_BELOW = {"ODT": 0.5}  # final reward below this in every seed
CLAIM_ABOVE = {"DDPG+ODT": 0.9, "TD3+ODT": 0.9}  # above this in at least 4 of 5 seeds
CLAIM_FRACTION = 0.8


def _length(path: Path, field: str, v: list | None, n: int) -> None:
    if v is not None and len(v) != n:
        raise bad_file(path, f"field '{field}'", f"has {len(v)} values, expected {n}")


def load_probes(run_dir: str | os.PathLike) -> dict | None:
    """probes.json of a toy run, validated against odtbench/runfiles/schemas/probes.schema.json and
    each list against the length of its grid (None when the run has none)."""
    path = Path(run_dir) / "probes.json"
    if not path.exists():
        return None
    try:
        p = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_file(path, "content", f"is not valid JSON ({exc})") from None
    if not isinstance(p, dict):
        raise bad_file(path, "content", "is not a JSON object")
    contract.check(path, "probes", p)
    _length(path, "true_reward", p["true_reward"], len(p["action_grid"]))
    for i, e in enumerate(p["epochs"]):
        where = f"epochs[{i}]"
        _length(path, f"{where}.rollout_rewards", e["rollout_rewards"], len(e["rollout_actions"]))
        _length(path, f"{where}.critic_q", e.get("critic_q"), len(p["action_grid"]))
        _length(path, f"{where}.actor_action", e["actor_action"], len(p["rtg_grid"]))
    return p


def toy_probes(records: Sequence[RunRecord]) -> dict[str, list[tuple[int, dict]]]:
    """{method: [(seed, probes), ...]} for the runs that wrote probes.json, in legend order."""
    out: dict[str, list[tuple[int, dict]]] = {}
    for rec in records:
        p = load_probes(rec.path)
        if p is not None:
            out.setdefault(rec.config["method"], []).append((int(rec.config["seed"]), p))
    return {m: sorted(out[m], key=lambda t: t[0]) for m in sort_methods(out)}


def _shades(color: str, n: int) -> list[tuple[float, float, float]]:
    """n shades of color from light (early epochs) to dark (late epochs)."""
    c = np.array(to_rgb(color))
    ts = np.linspace(0.0, 1.0, max(n, 1))
    light, dark = 0.75 * np.ones(3) + 0.25 * c, 0.55 * c
    return [tuple(light * (1 - t) + dark * t) for t in ts]


def reward_curves(probes: dict[str, list[tuple[int, dict]]]) -> pd.DataFrame:
    """Mean ± std over seeds of the mean rollout reward per epoch, vs gradient steps."""
    rows = [{"dataset": "bandit", "method": m, "seed": s, "x": e["gradient_steps"],
             "y": float(np.mean(e["rollout_rewards"])) if e["rollout_rewards"] else math.nan}
            for m, runs in probes.items() for s, p in runs for e in p["epochs"]]
    if not rows:
        return pd.DataFrame(columns=["dataset", "method", "x", "mean", "std", "n"])
    return mean_std(pd.DataFrame(rows), y="y")


def fig_reward(probes: dict[str, list[tuple[int, dict]]]) -> Figure:
    """(a) average rollout reward vs gradient steps, mean ± std over seeds."""
    stats = reward_curves(probes)
    fig = Figure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.subplots()
    for m in probes:
        s = stats[stats["method"] == m]
        ax.plot(s["x"], s["mean"], color=method_color(m), lw=1.8, label=f"{m} (n={int(s['n'].max())})")
        # clipped to the reward's range [-1, 1]: a band above r(0) = 1 shows no reward
        ax.fill_between(s["x"], (s["mean"] - s["std"]).clip(lower=-1.0),
                        (s["mean"] + s["std"]).clip(upper=1.0), color=method_color(m),
                        alpha=0.2, lw=0)
    ax.axhline(1.0, color="green", ls=":", lw=1, label="optimum r(0) = 1")
    ax.set(xlabel="Gradient steps", ylabel="Average reward", title="(a) Rollout reward (with exploration noise)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False)
    return fig


def _method_axes(n: int, width: float = 3.2, height: float = 2.9) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * max(n, 1), height), layout="constrained")
    axes = fig.subplots(1, max(n, 1), squeeze=False)[0]
    return fig, list(axes)


def fig_actions(probes: dict[str, list[tuple[int, dict]]]) -> Figure:
    """(b) rollout action distribution per epoch (all seeds pooled), one panel per method."""
    fig, axes = _method_axes(len(probes))
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for ax, (m, runs) in zip(axes, probes.items(), strict=False):
        for _, p in runs:
            for e in p["epochs"]:
                a = np.asarray(e["rollout_actions"], float)
                ax.scatter(e["epoch"] + rng.uniform(-0.25, 0.25, len(a)), a, s=4, alpha=0.25,
                           color=method_color(m), lw=0)
        ax.axhline(0.0, color="green", ls=":", lw=1)
        ax.set(title=m, xlabel="Epoch (0 = after pretraining)", ylim=(-1.05, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Rollout action")
    fig.suptitle(f"(b) Rollout actions per epoch (seeds pooled; {runs_per_method(probes)})",
                 fontsize="medium")
    return fig


def runs_per_method(runs: dict[str, list]) -> str:
    """"n=5 runs per method", or each method's count where they differ."""
    counts = {m: len(r) for m, r in runs.items()}
    if len(set(counts.values())) <= 1:
        n = next(iter(counts.values()), 0)
        return f"n={n} run{'s' if n != 1 else ''} per method"
    return "runs: " + ", ".join(f"{m} {n}" for m, n in counts.items())


def fig_critic(probes: dict[str, list[tuple[int, dict]]]) -> Figure:
    """(c) critic Q over a in [-1, 1] per epoch (light -> dark) with the true reward; first
    seed of each method that has a critic."""
    with_critic = {m: runs for m, runs in probes.items()
                   if any(e.get("critic_q") is not None for _, p in runs for e in p["epochs"])}
    fig, axes = _method_axes(len(with_critic))
    if not with_critic:
        axes[0].text(0.5, 0.5, "no method with a critic", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (m, runs) in zip(axes, with_critic.items(), strict=False):
        seed, p = runs[0]
        epochs = [e for e in p["epochs"] if e.get("critic_q") is not None]
        for e, c in zip(epochs, _shades(method_color(m), len(epochs)), strict=True):
            ax.plot(p["action_grid"], e["critic_q"], color=c, lw=1.2)
        ax.plot(p["action_grid"], p["true_reward"], color="green", lw=2.2, label="true reward")
        ax.set(title=f"{m} (seed {seed})", xlabel="Action a")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", frameon=False, loc="lower left")
    axes[0].set_ylabel("Critic estimate Q(a)")
    fig.suptitle("(c) Critic estimate per epoch, light → dark", fontsize="medium")
    return fig


def fig_policy(probes: dict[str, list[tuple[int, dict]]]) -> Figure:
    """(d) DT policy: action vs conditioning RTG per epoch (light -> dark); first seed."""
    fig, axes = _method_axes(len(probes))
    for ax, (m, runs) in zip(axes, probes.items(), strict=False):
        seed, p = runs[0]
        for e, c in zip(p["epochs"], _shades(method_color(m), len(p["epochs"])), strict=True):
            ax.plot(p["rtg_grid"], e["actor_action"], color=c, lw=1.2)
        ax.axhline(0.0, color="green", ls=":", lw=1)
        ax.set(title=f"{m} (seed {seed})", xlabel="Conditioning RTG", ylim=(-1.05, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Action")
    fig.suptitle("(d) DT policy: action vs RTG per epoch, light → dark", fontsize="medium")
    return fig


def final_rewards(records: Sequence[RunRecord]) -> pd.DataFrame:
    """method, seed, status, final reward (raw return of the last evaluation in curve.csv)."""
    rows = []
    for rec in records:
        r = rec.curve["return_mean"].to_numpy(float) if rec.curve is not None else np.array([])
        r = r[np.isfinite(r)]
        rows.append({"method": rec.config["method"], "seed": int(rec.config["seed"]),
                     "status": rec.status, "final_reward": float(r[-1]) if len(r) else math.nan})
    return pd.DataFrame(rows, columns=["method", "seed", "status", "final_reward"])


def claim_check(final: pd.DataFrame) -> list[dict]:
    """The study's toy claim per method: rule, seeds satisfying it, verdict."""
    out = []
    for m, thr in {**CLAIM_BELOW, **CLAIM_ABOVE}.items():
        v = final.loc[(final["method"] == m), "final_reward"].dropna().to_numpy(float)
        below = m in CLAIM_BELOW
        ok = int(np.sum(v < thr) if below else np.sum(v > thr))
        need = len(v) if below else math.ceil(CLAIM_FRACTION * len(v))
        rule = (f"final reward < {thr} in every seed" if below
                else f"final reward > {thr} in at least {CLAIM_FRACTION:.0%} of seeds")
        verdict = "no runs" if len(v) == 0 else ("holds" if ok >= need else "does not hold")
        out.append({"method": m, "rule": rule, "satisfied": ok, "seeds": len(v), "verdict": verdict})
    return out


def final_table(final: pd.DataFrame, *, reps: int, seed: int = 0) -> list[dict]:
    """Per method: final reward per seed, mean ± std and rliable IQM with 95 % CI over seeds."""
    out = []
    for m in sort_methods(final["method"].unique()):
        g = final[final["method"] == m].sort_values("seed")
        v = g["final_reward"].dropna().to_numpy(float)
        row = {"method": m, "per_seed": list(zip(g["seed"], g["final_reward"], g["status"], strict=True)),
               "mean": float(v.mean()) if len(v) else math.nan,
               "std": float(v.std()) if len(v) else math.nan, "n": len(v),
               "iqm": math.nan, "iqm_low": math.nan, "iqm_high": math.nan}
        if len(v):
            mat = v[:, None]  # (runs, tasks) with the single toy task
            point, ci = bootstrap_ci({m: mat}, lambda x: np.array([iqm(x)]), reps=reps,
                                     seed=seed, ci=0.95)
            row.update(iqm=float(point[m][0]), iqm_low=float(ci[m][0, 0]), iqm_high=float(ci[m][1, 0]))
        out.append(row)
    return out
