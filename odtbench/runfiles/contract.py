"""The run-result contract as JSON Schema: `odtbench/runfiles/schemas/*.schema.json` (docs/contracts.md §1).

One schema per file kind; a CSV file is validated row by row against its row schema. What a
schema cannot say (agreement between files, counts that never decrease down a curve) is
checked by `odtbench.runfiles.results`. Every violation is one line naming the file, the field and
the fix.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from odtbench.errors import OdtbenchError

# file kind -> schema file (package data, odtbench/runfiles/schemas/)
SCHEMA_FILES: dict[str, str] = {
    "config": "config.schema.json",
    "summary": "summary.schema.json",
    "curve": "curve_row.schema.json",
    "diagnostics": "diagnostics_row.schema.json",
    "probes": "probes.schema.json",
}


def _is_finite_number(checker: Any, instance: Any) -> bool:
    # Python's json module reads NaN and Infinity; the contract writes null for them, so a
    # "number" of the contract is a finite one.
    return (isinstance(instance, (int, float)) and not isinstance(instance, bool)
            and math.isfinite(instance))


def _is_integer(checker: Any, instance: Any) -> bool:
    # a CSV cell "100" or "100.0" reads as a float; either is the integer 100
    return _is_finite_number(checker, instance) and float(instance).is_integer()


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_finite_number, "integer": _is_integer}),
)


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one file kind (a key of SCHEMA_FILES)."""
    return json.loads(_schema_text(kind))


@functools.cache
def _schema_text(kind: str) -> str:
    return resources.files("odtbench.runfiles").joinpath("schemas").joinpath(SCHEMA_FILES[kind]).read_text("utf-8")


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """node with every local `{"$ref": "#/$defs/x"}` replaced by x: jsonschema resolves a
    reference on every use, which doubled the time to validate a curve row."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@functools.cache
def _validator(kind: str) -> Any:
    schema = load_schema(kind)
    return _Validator(_inline_refs(schema, schema.get("$defs", {})))


def columns(kind: str) -> tuple[str, ...]:
    """A CSV kind's columns, in file order: its row schema's properties."""
    return tuple(load_schema(kind)["properties"])


_WANT = {"number": "a finite number", "integer": "an integer", "string": "a string",
         "object": "an object", "array": "an array", "boolean": "true or false", "null": "null"}


def _field(err: ValidationError) -> str:
    """'name' (in parent.path) of the offending value; for a missing key, that key."""
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required" and isinstance(err.instance, Mapping):
        missing = [k for k in err.validator_value if k not in err.instance]
        path.append(str(missing[0]) if missing else "?")
    if not path:
        return "content"
    where = f" (in {'.'.join(path[:-1])})" if len(path) > 1 else ""
    return f"'{path[-1]}'{where}"


def _problem(err: ValidationError) -> str:
    """What is wrong, in the contract's words (the schema's description where it has one)."""
    v, got = err.validator, f", got {err.instance!r}"[:80]
    described = err.schema.get("description") if isinstance(err.schema, Mapping) else None
    if v == "required":
        return "is missing"
    if v == "additionalProperties":
        return f"is not in the contract{got}"
    if v == "enum":
        return f"must be one of {tuple(err.validator_value)}{got}"
    if v == "const":
        return f"must be {err.validator_value!r}{got}"
    if described and v in ("type", "minLength", "minimum", "maximum"):
        return f"must be {described}{got}"
    if v == "type":
        kinds = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        return f"must be {' or '.join(_WANT.get(str(k), str(k)) for k in kinds)}{got}"
    return err.message


def violation(kind: str, obj: Any) -> tuple[str, str] | None:
    """(field, problem) of obj's most relevant violation of the `kind` schema, or None."""
    err = best_match(_validator(kind).iter_errors(obj))
    return None if err is None else (_field(err), _problem(err))


def bad_file(path: str | os.PathLike, field: str, problem: str) -> OdtbenchError:
    """The one-line error for a run file that breaks the contract."""
    path = Path(path)
    # the run directory holds the file: deleting it is what makes a re-run start over
    return OdtbenchError(f"{path}: {field} {problem}; fix the program that wrote it, or delete "
                         f"{path.parent} and re-run the run (docs/contracts.md §1)")


def check(path: str | os.PathLike, kind: str, obj: Any, where: str = "") -> None:
    """Raise `bad_file` when obj (the content of `path`, or one row of it: `where` = "row 3")
    violates the `kind` schema."""
    found = violation(kind, obj)
    if found is not None:
        field, problem = found
        label = f"{where} column {field}" if where else ("content" if field == "content"
                                                         else f"field {field}")
        raise bad_file(path, label, problem)


__all__ = ["SCHEMA_FILES", "load_schema", "columns", "violation", "check", "bad_file"]
