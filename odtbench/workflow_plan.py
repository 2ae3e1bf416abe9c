"""What the workflow plans: the config's expansion into suites, datasets, methods and seeds.

One implementation for the Snakefile (`workflows/rules/common.smk` wraps these functions
with Snakemake's `config`) and for `odtbench status`, which reads the same config without
Snakemake. Paths of a run's files are here too, so both agree on where a run lives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = Path("workflows/config.yaml")
SCHEMA_FILE = Path("workflows/schemas/config.schema.yaml")

# The scale is part of every path whose file depends on it (docs/workflow.md).
STATS = "datasets/stats/{scale}/{suite}/{dataset}.json"
RUN_DIR = "results/runs/{scale}/{suite}/{dataset}/{method}/seed{seed}"
# summary.json is written last by a run: its presence means the run ended
SUMMARY = RUN_DIR + "/summary.json"
BENCHMARK = "results/benchmarks/{scale}/{suite}/{dataset}/{method}/seed{seed}.tsv"
JOB_LOG = "logs/{scale}/runs/{suite}/{dataset}/{method}/seed{seed}.log"


def names(value: Any, registered: Iterable[str], kind: str) -> list[str]:
    """`value` ("all" or a list) checked against `registered`; one-line error otherwise."""
    from odtbench.errors import UnknownChoiceError

    registered = list(registered)
    if value == "all":
        return registered
    for name in value:
        if name not in registered:
            raise UnknownChoiceError(kind, name, registered)
    return list(value)


def seed_list(value: int | list) -> list[int]:
    """A count (3 -> 0, 1, 2) or a list (of ints, or digit strings from `--config`)."""
    return list(range(value)) if isinstance(value, int) else [int(s) for s in value]


def suite_config(config: Mapping[str, Any], scale: str, suite: str) -> dict:
    """The config block of `suite` at `scale` (a one-line error if it is not configured)."""
    from odtbench.errors import UnknownChoiceError

    suites = config["scales"][scale]["suites"]
    if suite not in suites:
        raise UnknownChoiceError(f"suite at scale {scale}", suite, suites)
    return suites[suite]


def plan(config: Mapping[str, Any], scale: str, suite: str) -> dict[str, list]:
    """Datasets, methods and seeds of `suite` at `scale`; top-level overrides win."""
    from odtbench.tasks import list_tasks

    block = suite_config(config, scale, suite)
    datasets = names(block["datasets"], [t.dataset for t in list_tasks(suite)], f"{suite} dataset")
    methods = names(config["methods"] if config.get("methods") is not None else block["methods"],
                    known_methods(config), "method")
    seeds = next(s for s in (config.get("seeds"), block.get("seeds"),
                             config["scales"][scale]["seeds"]) if s is not None)
    return {"datasets": datasets, "methods": methods, "seeds": seed_list(seeds)}


def configured_suites(config: Mapping[str, Any], scale: str) -> list[str]:
    return list(config["scales"][scale]["suites"])


def external_methods(config: Mapping[str, Any]) -> dict[str, str]:
    """{name: command} of the config's `external_methods:` (workflows/rules/external.smk)."""
    return dict(config.get("external_methods") or {})


def known_methods(config: Mapping[str, Any]) -> list[str]:
    """The registered methods, then the config's external ones: the names a plan may use.
    The config declares an external method; nothing registers it (the method registry is the
    same whether or not a workflow has loaded)."""
    from odtbench.methods import list_methods

    registered = list_methods()
    return registered + [m for m in external_methods(config) if m not in registered]


def schema_error(config: Mapping[str, Any], schema_file: Path | str) -> str | None:
    """One line for a config that violates the schema: where, what, and what is valid
    (None if it matches). Snakemake's own message prints the whole schema and config."""
    import yaml
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(Path(schema_file).read_text())
    err = best_match(Draft202012Validator(schema).iter_errors(config))
    if err is None:
        return None
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    msg = err.message
    if err.validator == "additionalProperties" and "properties" in err.schema:
        msg += f"; valid keys: {', '.join(err.schema['properties'])}"
    elif err.validator in ("oneOf", "anyOf") and err.schema.get("description"):
        msg += f"; expected {err.schema['description']}"
    return f"workflow config {where}: {msg}"


def load_config(path: Path | str = CONFIG_FILE, schema_file: Path | str = SCHEMA_FILE) -> dict:
    """The workflow config as the Snakefile sees it without `--config`: parsed, checked
    against the schema, top-level and per-suite defaults filled in. Any problem is one
    `OdtbenchError` line."""
    import yaml

    from odtbench.errors import OdtbenchError

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise OdtbenchError(f"{path} not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise OdtbenchError(f"{path}: not valid YAML ({err}); fix its syntax") from None
    if not isinstance(config, dict):
        raise OdtbenchError(f"{path}: not a mapping; see the comments in the repository's copy")
    problem = schema_error(config, schema_file)
    if problem:
        raise OdtbenchError(problem)
    schema = yaml.safe_load(Path(schema_file).read_text())
    for key, prop in schema["properties"].items():
        if "default" in prop:
            config.setdefault(key, prop["default"])
    suite_props = schema["$defs"]["suite"]["properties"]
    for block in config["scales"].values():
        for suite in block["suites"].values():
            for key, prop in suite_props.items():
                if "default" in prop:
                    suite.setdefault(key, prop["default"])
    return config


__all__ = ["load_config", "plan", "configured_suites", "suite_config", "names", "seed_list",
           "external_methods", "known_methods", "schema_error", "STATS", "RUN_DIR", "SUMMARY", "BENCHMARK",
           "JOB_LOG"]
