"""Methods of the suite: one registry; the DT family is one agent with four presets.

`DTAgent` is imported lazily so that listing methods does not import torch.
"""

from __future__ import annotations

from typing import Any

from odtbench.methods.registry import MethodSpec, get_method, list_methods, register

__all__ = ["DTAgent", "MethodSpec", "get_method", "list_methods", "register"]


def __getattr__(name: str) -> Any:
    if name == "DTAgent":
        from odtbench.methods.dt_agent import DTAgent

        return DTAgent
    raise AttributeError(f"module 'odtbench.methods' has no attribute {name!r}")
