"""HTML reports (jinja2 templates in templates/, rendered by render.py)."""

from __future__ import annotations

from typing import Any

__all__ = ["render_ablations", "render_report"]


def __getattr__(name: str) -> Any:
    # Lazy: rendering pulls in matplotlib and rliable; `odtbench --help` must stay fast.
    if name == "render_report":
        from odtbench.report.render import render_report

        return render_report
    if name == "render_ablations":
        from odtbench.report.render import render_ablations

        return render_ablations
    raise AttributeError(f"module 'odtbench.report' has no attribute {name!r}")
