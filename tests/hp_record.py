"""A complete hyperparameter record for building an agent in a test: a resolved run's
record of `method`, with the method's preset and the test's own values on top.

Agents take their method's typed hyperparameters (or a complete record of them) and keep no
list of the keys they read, so a test that sets a few sizes starts from a whole record."""

from __future__ import annotations

from typing import Any

from odtbench.hyperparameters.resolve import resolve
from odtbench.methods import get_method


def full_record(method: str = "TD3+ODT", task: str = "mujoco/hopper-random",
                **values: Any) -> dict[str, Any]:
    return {**resolve(task, method, "smoke").hyperparameters, **get_method(method).preset,
            **values}
