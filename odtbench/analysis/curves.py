"""Learning curves: normalised score mean ± std over seeds vs online transitions, one panel per
dataset, in the study's grid (Fig. 6: rows medium / medium-replay / random, columns hopper,
ant, walker2d, halfcheetah) and legend order."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from odtbench.analysis.common import (
    is_floor,
    method_color,
    method_label,
    sort_methods,
)
from odtbench.analysis.reference import task_info
from odtbench.runfiles.results import RunRecord

# Fig. 6 layout (MuJoCo); other suites fall back to a plain grid.
GRID_LAYOUTS = {
    "mujoco": (("medium", "medium-replay", "random"), ("hopper", "ant", "walker2d", "halfcheetah")),
    "mujoco-delayed": (("medium", "medium-replay", "random"),
                       ("hopper", "ant", "walker2d", "halfcheetah")),
}


def curve_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Long table of every run's evaluations: dataset, method, seed, status, x (online
    transitions; the last pretraining evaluation sits at x = 0), score_mean, return_mean."""
    parts = []
    for rec in records:
        c = rec.curve
        if c is None or c.empty:
            continue
        pre = c[c["phase"] == "pretrain"].tail(1)
        c = pd.concat([pre.assign(online_transitions=0), c[c["phase"] == "online"]])
        dataset, method, seed = rec.config["dataset"], rec.config["method"], int(rec.config["seed"])
        parts.append(pd.DataFrame({
            "dataset": dataset, "method": method, "seed": seed, "status": rec.status,
            "x": c["online_transitions"].to_numpy(float), "gradient_steps": c["gradient_steps"].to_numpy(float),
            "score_mean": c["score_mean"].to_numpy(float), "return_mean": c["return_mean"].to_numpy(float),
        }))
    cols = ["dataset", "method", "seed", "status", "x", "gradient_steps", "score_mean", "return_mean"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def mean_std(curves: pd.DataFrame, *, y: str = "score_mean", x: str = "x") -> pd.DataFrame:
    """Per (dataset, method): mean and std over seeds on a common x grid.

    Seeds evaluated at the same x values are averaged as they are; otherwise (e.g. random
    datasets, where each epoch collects >= 1000 steps) every seed is linearly interpolated onto
    the union of x values up to the end of the shortest finished seed, and a point averages
    the seeds whose curve spans it (column n).
    """
    out = []
    for (dataset, method), g in curves.groupby(["dataset", "method"], sort=False):
        per_seed = [(s.sort_values(x).drop_duplicates(x, keep="last")) for _, s in g.groupby("seed")]
        per_seed = [s[np.isfinite(s[y].to_numpy(float))] for s in per_seed]
        per_seed = [s for s in per_seed if len(s)]
        if not per_seed:
            continue
        xs = [s[x].to_numpy(float) for s in per_seed]
        if all(len(a) == len(xs[0]) and np.array_equal(a, xs[0]) for a in xs):
            grid, ys = xs[0], np.stack([s[y].to_numpy(float) for s in per_seed])
        else:
            # Stop where the first finished seed stops: past it, the mean would jump as seeds
            # drop out. Diverged/unfinished seeds count only while they have data.
            done = [a[-1] for a, sd in zip(xs, per_seed, strict=True)
                    if "status" not in sd or sd["status"].iloc[0] == "complete"]
            end = min(done) if done else min(a[-1] for a in xs)
            grid = np.unique(np.concatenate(xs))
            grid = grid[grid <= end]
            ys = np.full((len(per_seed), len(grid)), np.nan)
            for i, (a, s) in enumerate(zip(xs, per_seed, strict=True)):
                inside = (grid >= a[0]) & (grid <= a[-1])
                ys[i, inside] = np.interp(grid[inside], a, s[y].to_numpy(float))
        n = np.sum(np.isfinite(ys), axis=0)
        with warnings.catch_warnings():  # all-NaN columns cannot occur, but stay quiet if so
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
        out.append(pd.DataFrame({"dataset": dataset, "method": method, "x": grid, "mean": mean,
                                 "std": std, "n": n}))
    cols = ["dataset", "method", "x", "mean", "std", "n"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def panel_layout(suite: str, datasets: Sequence[str]) -> list[list[str | None]]:
    """Grid of dataset names (None = empty panel): the study's layout when the suite has one,
    otherwise datasets in order, four per row."""
    datasets = list(datasets)
    if suite in GRID_LAYOUTS:
        rows, cols = GRID_LAYOUTS[suite]
        at = {(task_info(suite, d)["quality"], task_info(suite, d)["domain"]): d for d in datasets}
        grid = [[at.get((q, e)) for e in cols] for q in rows]
        placed = {d for r in grid for d in r if d}
        extra = [d for d in datasets if d not in placed]
        grid = [r for r in grid if any(r)]  # drop rows with no dataset at all
        grid += [extra[i:i + len(cols)] + [None] * (len(cols) - len(extra[i:i + len(cols)]))
                 for i in range(0, len(extra), len(cols))]
        if grid:
            keep = [j for j in range(len(grid[0])) if any(r[j] for r in grid)]
            return [[r[j] for j in keep] for r in grid]
        return grid
    ncol = min(4, max(1, len(datasets)))
    return [datasets[i:i + ncol] + [None] * (ncol - len(datasets[i:i + ncol]))
            for i in range(0, len(datasets), ncol)]


def plot_curves(stats: pd.DataFrame, *, suite: str, datasets: Sequence[str] | None = None,
                ylabel: str = "Normalized Reward", title: str | None = None,
                limits: tuple[float, float] | None = None) -> Figure:
    """The study's reward-curve figure from mean_std() output. `limits`: the achievable
    range of the score (success rates: 0-100); the ± std bands are clipped to it."""
    datasets = sorted(stats["dataset"].unique()) if datasets is None else list(datasets)
    grid = panel_layout(suite, datasets) or [[None]]
    nr, nc = len(grid), len(grid[0])
    fig = Figure(figsize=(3.3 * nc, 2.6 * nr + 0.6), layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False)
    methods = sort_methods(stats["method"].unique())
    for i, row in enumerate(grid):
        for j, d in enumerate(row):
            ax = axes[i][j]
            if d is None:
                ax.set_axis_off()
                continue
            draw_lines(ax, stats[stats["dataset"] == d], methods,
                       {m: method_color(m) for m in methods}, limits)
            ax.set_title(d, fontsize=10)
            style_axis(ax, ylabel=ylabel if j == 0 else None,
                       xlabel="Online Transitions" if i == nr - 1 else None)
    shared_legend(fig, axes.flat, methods)
    if title:
        fig.suptitle(title)
    return fig


def draw_lines(ax: Axes, stats: pd.DataFrame, lines: Sequence[str], colors: Mapping[str, str],
               limits: tuple[float, float] | None = None) -> int:
    """One panel: each of `lines` (values of stats' `method` column) as its mean with a ± std
    band (clipped to `limits`); a floor as a dashed reference line under its floor label, its
    band fainter. Returns how many lines had data."""
    drawn = 0
    for m in lines:
        s = stats[stats["method"] == m]
        if s.empty:
            continue
        floor = is_floor(m)
        ax.plot(s["x"], s["mean"], color=colors[m], lw=1.3 if floor else 1.5,
                ls="--" if floor else "-", label=method_label(m), zorder=1.5 if floor else 2)
        lo, hi = s["mean"] - s["std"], s["mean"] + s["std"]
        if limits is not None:
            lo, hi = lo.clip(lower=limits[0]), hi.clip(upper=limits[1])
        ax.fill_between(s["x"], lo, hi, color=colors[m], alpha=0.07 if floor else 0.18, lw=0)
        drawn += 1
    return drawn


def style_axis(ax: Axes, *, ylabel: str | None, xlabel: str | None) -> None:
    """The study's axes: grid, scientific x ticks, labels on the outer panels only."""
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    if ylabel:
        ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)


def shared_legend(fig: Figure, axes: Iterable[Axes], order: Sequence[str]) -> None:
    """One legend for the figure, in `order` (line names; a floor's shows its label), of every
    line drawn in any panel."""
    seen: dict[str, Artist] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    labels = [method_label(m) for m in order if method_label(m) in seen]
    handles = [seen[lab] for lab in labels]
    if handles:
        # about 1.1 inch per entry, so a one-panel figure wraps its legend instead of cutting it
        per_row = max(1, int(fig.get_size_inches()[0] / 1.1))
        fig.legend(handles, labels, loc="outside lower center",
                   ncol=min(len(handles), 8, per_row), frameon=False)


