"""Shared vocabulary of the analysis: method order and colours, task facts, figure saving."""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless everywhere (CI, clusters); rliable's plots go through pyplot

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# The study's legend order (Fig. 3/4/6 and the table columns).
METHOD_ORDER = ("TD3+BC", "IQL", "ODT", "PDT", "TD3", "DDPG+ODT", "TD3+ODT")
METHOD_COLORS = {
    "TD3+BC": "#8c564b", "IQL": "#9467bd", "ODT": "#7f7f7f", "PDT": "#bcbd22",
    "TD3": "#1f77b4", "DDPG+ODT": "#ff7f0e", "TD3+ODT": "#d62728",
}
_EXTRA_COLORS = ("#17becf", "#2ca02c", "#e377c2", "#393b79", "#637939", "#8c6d31")
OURS = "TD3+ODT"
# Floors (method role "floor", docs/methods/td3-scratch.md): references a reader needs beside
# the study's methods, not methods compared with them. Shown under their label, last, in black
# dashed lines; never bold in a table row and never in the rliable aggregates.
FLOORS = {"TD3-scratch": "TD3 from scratch (floor)"}
FLOOR_COLOR = "#000000"
# Dataset qualities, longest first so "medium-replay" wins over "medium".
_VERSION = re.compile(r"-v\d+$")


def sort_methods(methods: Iterable[str]) -> list[str]:
    """Study's legend order first, then any other method alphabetically, the floors last."""
    methods = set(methods)
    known = [m for m in METHOD_ORDER if m in methods]
    floors = [m for m in FLOORS if m in methods]
    return known + sorted(methods - set(known) - set(floors)) + floors


def is_floor(method: str) -> bool:
    return method in FLOORS


def method_label(method: str) -> str:
    """The name a figure or table shows: a floor's label says it is the floor."""
    return FLOORS.get(method, method)


def method_color(method: str) -> str:
    if method in FLOORS:
        return FLOOR_COLOR
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _EXTRA_COLORS[sum(map(ord, method)) % len(_EXTRA_COLORS)]


def strip_version(name: str) -> str:
    return _VERSION.sub("", name)


def paper_domain(suite: str) -> str:
    """Suite name -> `domain` column of paper_results.csv ("mujoco-delayed" -> "mujoco_delayed")."""
    return suite.replace("-", "_")


def save_figure(fig: Figure, stem: str | os.PathLike, formats: Iterable[str] = ("svg", "png"),
                dpi: int = 120) -> list[Path]:
    """Write fig as <stem>.svg and <stem>.png (deterministic SVG ids, no timestamp)."""
    base = Path(stem)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        path = base.with_suffix("." + fmt)
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        with matplotlib.rc_context({"svg.hashsalt": "odtbench"}):
            fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        out.append(path)
    return out


def figure_data_uri(fig: Figure, fmt: str = "svg", dpi: int = 110) -> str:
    """The figure as a data: URI (embeds in one self-contained HTML file; <img> keeps each
    SVG's ids private, so several figures never clash)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "odtbench"}):
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def close(fig: Figure) -> None:
    plt.close(fig)
