"""`--set key=value` overrides, and the run-directory names of a sweep's runs that carry them.

The lowest layer of configuration (docs/architecture.md): `odtbench.hyperparameters.resolve` reads a sweep's
name back into its overrides, `odtbench.workflow.plan` writes the names, `odtbench.runfiles.results`
tells a sweep's runs apart by the separator; none of them needs the others for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from odtbench.errors import OdtbenchError

VARIANT_SEP = "@"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse `key=value` strings; values are read as JSON when they parse, else as strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise OdtbenchError(f"malformed --set {item!r}; expected key=value, e.g. --set lr_actor=3e-4")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


# A run of a sweep lives in its own method directory, `<method>@<key>=<value>,...`: the base
# method, then its fixed and swept overrides sorted by key. The name alone says what the run
# is, so a changed value is a new directory and leaves every other run alone.
_VARIANT_TEXT = re.compile(r"^[A-Za-z0-9_.+-]+$")  # filesystem- and wildcard-safe


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 10 and 10.0 are one run, not two
    text = value if isinstance(value, str) else json.dumps(value)
    if not _VARIANT_TEXT.match(text):
        raise OdtbenchError(f"sweep value {value!r} cannot be part of a run directory name; use "
                            "a number, true/false or a plain word")
    return text


def variant_name(method: str, overrides: Mapping[str, Any]) -> str:
    """`method` (no overrides) or `method@k1=v1,k2=v2` (keys sorted): a run's method directory."""
    if VARIANT_SEP in method:
        raise OdtbenchError(f"method name {method!r} contains {VARIANT_SEP!r}, which marks a sweep's "
                            "run directory; rename the method")
    if not overrides:
        return method
    return method + VARIANT_SEP + ",".join(f"{k}={_value_text(overrides[k])}" for k in sorted(overrides))


def split_variant(name: str) -> tuple[str, dict[str, Any]]:
    """The inverse of variant_name: (method, overrides), values read as `--set` reads them."""
    method, sep, rest = name.partition(VARIANT_SEP)
    return method, (parse_overrides(rest.split(",")) if sep else {})
