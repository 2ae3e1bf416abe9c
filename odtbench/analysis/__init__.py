"""Analysis of run-result files: scores table, rliable aggregates, paper-style tables, curves,
the toy figure. Submodules: scores, aggregates, tables, curves, rliable_plots, toy, runtime,
reference, suite.

`aggregate_suite` (what `odtbench aggregate` calls) is importable from here; it is loaded on
first use so that `import odtbench.analysis` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["aggregate_suite", "build_scores"]


def __getattr__(name: str) -> Any:
    if name == "aggregate_suite":
        from odtbench.analysis.suite import aggregate_suite

        return aggregate_suite
    if name == "build_scores":
        from odtbench.analysis.scores import build_scores

        return build_scores
    raise AttributeError(f"module 'odtbench.analysis' has no attribute {name!r}")
