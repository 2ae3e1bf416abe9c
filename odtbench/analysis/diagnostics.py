"""The learning-diagnostics figure: why a method learns or not (diagnostics.csv, one row per
evaluation; columns in docs/contracts.md). One row of panels per dataset, one line per method
(mean over seeds) against online transitions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from odtbench.analysis.common import method_color, sort_methods
from odtbench.errors import OdtbenchError
from odtbench.runfiles.results import DIAGNOSTIC_COLUMNS, RunRecord, read_rows

# (column or derived name, panel title, y limits or None)
PANELS: tuple[tuple[str, str, tuple[float, float] | None], ...] = (
    ("q_mc_corr", "corr(Q, Monte-Carlo return)", (-1.05, 1.05)),
    ("q_over", "Q(s0) - MC return(s0)", None),
    ("buffer_online_share", "online share of replay buffer", (0.0, 1.0)),
    ("grad_cosine", "cos(grad L_sup, grad L_RL)", (-1.05, 1.05)),
    ("online_max_abs_z", "max |z| of online states", None),
)


def diagnostics_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Long table of every run's diagnostics.csv rows (runs without one are skipped)."""
    parts = []
    for rec in records:
        path = rec.path / "diagnostics.csv"
        if not path.is_file():
            continue
        try:
            rows = read_rows(path, "diagnostics")
        except OdtbenchError:
            continue  # diagnostics are an optional extra: a broken file hides only this figure
        if not rows:
            continue
        d = pd.DataFrame(rows).astype({c: float for c in DIAGNOSTIC_COLUMNS if c != "phase"})
        pre = d[d["phase"] == "pretrain"].tail(1).assign(online_transitions=0)
        d = pd.concat([pre, d[d["phase"] == "online"]], ignore_index=True)
        d["q_over"] = d["q_s0"] - d["mc_return_s0"]
        d["dataset"], d["method"] = rec.config["dataset"], rec.config["method"]
        d["seed"] = int(rec.config["seed"])
        parts.append(d)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def plot_diagnostics(table: pd.DataFrame, datasets: Sequence[str]) -> Figure | None:
    """Panels of PANELS per dataset; None when no run wrote diagnostics."""
    if table.empty:
        return None
    datasets = [d for d in datasets if d in set(table["dataset"])]
    # a panel no run has a number for (corr(Q, return) of one-step episodes) is left out
    panels = [p for p in PANELS if p[0] in table.columns
              and np.isfinite(pd.to_numeric(table[p[0]], errors="coerce")).any()]
    if not panels:
        return None
    fig = Figure(figsize=(3.0 * len(panels), 2.4 * len(datasets) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(datasets), len(panels), squeeze=False))
    methods = sort_methods(table["method"].unique())
    for r, dataset in enumerate(datasets):
        sub = table[table["dataset"] == dataset]
        for c, (col, title, ylim) in enumerate(panels):
            ax = axes[r, c]
            for method in methods:
                m = sub[sub["method"] == method]
                y = pd.to_numeric(m[col], errors="coerce")
                if m.empty or not np.isfinite(y).any():
                    continue
                g = m.assign(y=y).groupby("online_transitions")["y"].mean()
                ax.plot(g.index.to_numpy(float), g.to_numpy(float), label=method,
                        color=method_color(method), lw=1.3)
            ax.set_title(f"{dataset}: {title}" if c == 0 else title, fontsize=8)
            ax.tick_params(labelsize=7)
            if ylim is not None:
                ax.set_ylim(*ylim)
            if r == len(datasets) - 1:
                ax.set_xlabel("online transitions", fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:  # the legend lists every method that appears in any panel
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 7),
                   fontsize=7, frameon=False)
    return fig
