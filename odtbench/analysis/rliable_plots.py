"""rliable's plots (interval estimates, performance profiles, probability of improvement) drawn
from one aggregates group (aggregates.aggregate_group output / aggregates.json)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from rliable import plot_utils

from odtbench.analysis.aggregates import METRIC_LABELS, METRICS
from odtbench.analysis.common import OURS, method_color, plt


def plot_aggregates(group: dict, *, xlabel: str = "Normalized Score") -> Figure | None:
    """Median / IQM / Mean / Optimality Gap with 95 % CIs, one row per method (Fig. 7)."""
    methods = [m for m in group["methods"] if m in group["metrics"]]
    if not methods:
        return None
    point = {m: np.array([group["metrics"][m][k]["point"] for k in METRICS]) for m in methods}
    interval = {m: np.array([[group["metrics"][m][k]["low"] for k in METRICS],
                             [group["metrics"][m][k]["high"] for k in METRICS]]) for m in methods}
    row_height = max(0.45, 1.6 / len(methods))
    fig, _ = plot_utils.plot_interval_estimates(
        point, interval, [METRIC_LABELS[k] for k in METRICS], algorithms=methods,
        colors={m: method_color(m) for m in methods}, xlabel=xlabel, row_height=row_height,
        # rliable places the label in figure coordinates: keep it ~0.45 in below the axes
        xlabel_y_coordinate=-0.45 / (row_height * len(methods)))
    return fig


def plot_profiles(group: dict, *, xlabel: str = "Normalized Score") -> Figure | None:
    """Performance profiles: fraction of runs with score > tau, with CIs; the legend sits
    right of the axes, off the curves."""
    prof = group.get("performance_profile")
    if not prof:
        return None
    tau = np.asarray(prof["tau"])
    methods = [m for m in group["methods"] if m in prof["profiles"]]
    profiles = {m: np.asarray(prof["profiles"][m]["point"]) for m in methods}
    cis = {m: np.array([prof["profiles"][m]["low"], prof["profiles"][m]["high"]]) for m in methods}
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    plot_utils.plot_performance_profiles(
        profiles, tau, performance_profile_cis=cis, ax=ax,
        colors={m: method_color(m) for m in methods}, xlabel=xlabel + r" ($\tau$)",
        ylabel=r"Fraction of runs with score > $\tau$", labelsize="medium", ticklabelsize="medium")
    handles = [Line2D([0], [0], color=method_color(m), lw=2) for m in methods]
    ax.legend(handles, methods, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
              frameon=False, borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_improvement(group: dict, *, ours: str = OURS) -> Figure | None:
    """P(ours > other) with CIs, one row per other method."""
    poi = group.get("probability_of_improvement") or {}
    if not poi:
        return None
    pairs = {f"{ours},{m}": v for m, v in poi.items()}
    fig, ax = plt.subplots(figsize=(5.5, 0.55 * len(pairs) + 1.2))
    plot_utils.plot_probability_of_improvement(
        {k: v["point"] for k, v in pairs.items()},
        {k: np.array([v["low"], v["high"]]) for k, v in pairs.items()}, ax=ax,
        colors=[method_color(m) for m in poi], labelsize="medium", ticklabelsize="medium")
    fig.tight_layout()
    return fig
