"""Checks of hyperparameter values, per key: type, range, choices; the memory of the sizes
together; and the torch device.

Called by `odtbench.hyperparameters.resolve.resolve` (so `odtbench run`, the workflow's config check and every
caller get them) before anything is written: a bad `--set` or a bad value in the workflow's
`hyperparameters:` stops with one line naming the key, the value and what is valid.

Types come from the value the key had before the user's override (a key that defaults to an
integer takes an integer); ranges and choices from the method's schema, where each field
declares its own (`odtbench.hyperparameters.schemas.Range`, `Choices`: the baselines' in their
package). A key without one is checked for its type only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from odtbench.errors import OdtbenchError
from odtbench.hyperparameters.schemas import Choices, Protocol, Range, schema_bounds


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


def check_value(key: str, value: Any, default: Any = None,
                bound: Range | Choices | None = None) -> None:
    """One key's value; `default` is the value before the override (it gives the type),
    `bound` the schema field's range or choices."""
    want = _kind(default) if default is not None else None
    got = _kind(value)
    rng = bound if isinstance(bound, Range) else None
    if want == "int" and got != "int":
        raise _bad(key, value, "an integer" + (f" {rng.text()}" if rng else ""))
    if want == "float" and got not in ("int", "float"):
        raise _bad(key, value, "a number" + (f" {rng.text()}" if rng else ""))
    choices = bound.names() if isinstance(bound, Choices) else None
    if want in ("bool", "str") and got != want:
        raise _bad(key, value, _WANT[want] if choices is None else f"one of {', '.join(choices)}")
    if choices is not None and value not in choices:
        raise _bad(key, value, f"one of {', '.join(choices)}")
    if got in ("int", "float"):
        if not math.isfinite(value):
            raise _bad(key, value, "a finite number")
        if rng is not None and not rng.contains(value):
            raise _bad(key, value, f"{'an integer' if want == 'int' else 'a number'} "
                       f"{rng.text(value)}")


def check_hyperparameters(hp: Mapping[str, Any], before: Mapping[str, Any] | None = None,
                          schema: type = Protocol) -> None:
    """Every key of `hp` (resolved), typed by `before` (the values before the user's
    overrides) and bounded by `schema`'s fields. The checks that span keys are the schemas'
    own (`__post_init__`, run when `resolve` builds the typed object)."""
    before = before or {}
    bounds = schema_bounds(schema)
    for key, value in hp.items():
        check_value(key, value, before.get(key), bounds.get(key))


def memory_limit_bytes() -> int:
    """This machine's physical memory (what one run's update must fit in)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows): 1 TiB
        return 1 << 40


def check_memory(typed: Protocol, method: str) -> None:
    """One line unless one training update at these sizes fits in this machine's memory
    (`Protocol.memory_bytes`, an estimate from below: what it refuses cannot run here)."""
    need, have = typed.memory_bytes(), memory_limit_bytes()
    if need > have:
        sizes = ", ".join(f"{k}={getattr(typed, k)}" for k in typed.memory_keys)
        raise OdtbenchError(f"{method}: {sizes} need at least {need / 2**30:.3g} GiB for one "
                            f"update, more than this machine's {have / 2**30:.3g} GiB of memory; "
                            "lower the batch or the network size")


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
