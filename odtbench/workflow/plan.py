"""What the workflow plans: the config's expansion into suites, datasets, methods and seeds.

One implementation for the Snakefile (`workflows/rules/common.smk` wraps these functions
with Snakemake's `config`) and for `odtbench status`, which reads the same config without
Snakemake. Paths of a run's files are here too, so both agree on where a run lives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from odtbench.errors import OdtbenchError, UnknownChoiceError
from odtbench.hyperparameters.overrides import VARIANT_SEP, split_variant, variant_name

CONFIG_FILE = Path("workflows/config.yaml")
SCHEMA_FILE = Path("workflows/schemas/config.schema.yaml")

# The scale is part of every path whose file depends on it (docs/workflow.md).
STATS = "datasets/stats/{scale}/{suite}/{dataset}.json"
RUN_DIR = "results/runs/{scale}/{suite}/{dataset}/{method}/seed{seed}"
# summary.json is written last by a run: its presence means the run ended
SUMMARY = RUN_DIR + "/summary.json"
BENCHMARK = "results/benchmarks/{scale}/{suite}/{dataset}/{method}/seed{seed}.tsv"
JOB_LOG = "logs/{scale}/runs/{suite}/{dataset}/{method}/seed{seed}.log"


def names(value: Any, registered: Iterable[str], kind: str,
          every: Iterable[str] | None = None) -> list[str]:
    """`value` ("all" or a list) checked against `registered`; one-line error otherwise.
    "all" is `every` where given (a suite's methods: `suite_methods`), else `registered`."""
    from odtbench.errors import UnknownChoiceError

    registered = list(registered)
    if value == "all":
        return list(every) if every is not None else registered
    for name in value:
        if name not in registered:
            raise UnknownChoiceError(kind, name, registered)
    return list(value)


# The study's toy figure (Fig. 2) and the suite's four methods in it (docs/toy.md).
TOY_METHODS = ("ODT", "DDPG+ODT", "TD3+ODT", "TD3")


def _study_table_methods() -> dict[str, set[str]]:
    """{suite: the methods of the study's table for it} (odtbench/reference/paper_results.csv;
    its `domain` is the suite's name with "_" for "-")."""
    import csv
    from importlib import resources

    text = resources.files("odtbench").joinpath("reference/paper_results.csv").read_text()
    out: dict[str, set[str]] = {}
    for row in csv.DictReader(text.splitlines()):
        out.setdefault(row["domain"].replace("_", "-"), set()).add(row["method"])
    return out


def suite_methods(suite: str) -> list[str]:
    """What `methods: all` plans for `suite`, in legend order: the study's methods of its
    table (the toy: its Fig. 2 methods; a suite the study has no table for: its seven
    compared methods), then the floors of the suite (TD3-scratch on MuJoCo). The study's
    ablation kinds run in reports/ablations.html only."""
    from odtbench.methods import get_method, list_methods

    registered = list_methods()
    study = _study_table_methods().get(suite) or (
        set(TOY_METHODS) if suite == "toy" else
        {m for m in registered if get_method(m).role == "study"})
    floors = [m for m in registered if suite in get_method(m).floor_suites]
    return [m for m in registered if m in study] + floors


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
                    known_methods(config), "method", suite_methods(suite))
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


def read_config_text(path: str | os.PathLike) -> str:
    """The text of a workflow config (or a file laid over it); one `OdtbenchError` line when
    it is not UTF-8 or is empty (both the Snakefile and `odtbench status` read it here)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise OdtbenchError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8, or "
                            f"restore it with `git checkout -- {path}`") from None
    if not text.strip():
        raise OdtbenchError(f"{path} is empty; write the workflow config in it, or restore it "
                            f"with `git checkout -- {path}`")
    return text


def load_config(path: Path | str = CONFIG_FILE, schema_file: Path | str | None = None) -> dict:
    """The workflow config as the Snakefile sees it without `--config`: parsed, checked
    against the schema (default: `schemas/config.schema.yaml` next to the config, as in the
    repository's workflows/), top-level and per-suite defaults filled in. Any problem is one
    `OdtbenchError` line."""
    import yaml

    from odtbench.errors import OdtbenchError

    path = Path(path)
    try:
        config = yaml.safe_load(read_config_text(path))
    except FileNotFoundError:
        raise OdtbenchError(f"{path} not found; run from the repository root") from None
    except yaml.YAMLError as err:
        raise OdtbenchError(f"{path}: not valid YAML ({err}); fix its syntax") from None
    if not isinstance(config, dict):
        raise OdtbenchError(f"{path}: not a mapping; see the comments in the repository's copy")
    schema_file = Path(schema_file) if schema_file else path.parent / SCHEMA_FILE.relative_to("workflows")
    if not schema_file.is_file():
        raise OdtbenchError(f"{schema_file} not found (the config's schema); keep the config in a "
                            "copy of the repository's workflows/ folder, or run from the repository root")
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


# ----------------------------------------------------------------------------- sweeps

# A sweep's run names: odtbench.hyperparameters.overrides (variant_name, split_variant).


def _expand_tasks(task: str) -> list[tuple[str, str]]:
    """"suite/dataset" or "suite/all" (every dataset of the suite) -> [(suite, dataset)]."""
    from odtbench.tasks import list_suites, list_tasks

    suite, sep, dataset = task.partition("/")
    if not sep or not suite or not dataset:
        raise OdtbenchError(f"ablation task {task!r}: expected suite/dataset or suite/all")
    names([suite], list_suites(), "suite of an ablation task")
    datasets = [t.dataset for t in list_tasks(suite)]
    return [(suite, d) for d in names("all" if dataset == "all" else [dataset], datasets,
                                      f"{suite} dataset of an ablation task")]


# Keys a figure sets for all its panels and a panel may override (config schema: ablation).
_PANEL_KEYS = ("method", "methods", "sweep", "set", "legend", "y", "x", "x_max")


def _lines(cell: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The legend lines of one panel: one per method (`methods`), or one per value of the
    swept key (`method` + `sweep`), each with its fixed overrides (`set`)."""
    fixed = dict(cell.get("set") or {})
    sweep = dict(cell.get("sweep") or {})
    if len(sweep) > 1:
        raise OdtbenchError(f"{where}: sweep one hyperparameter per figure, got {sorted(sweep)}")
    if bool(cell.get("methods")) == bool(cell.get("method")):
        raise OdtbenchError(f"{where}: give either `methods` (a comparison) or `method` "
                            "(a sweep's base method)")
    if cell.get("methods"):
        if sweep:
            raise OdtbenchError(f"{where}: a sweep has one base `method`, not `methods`")
        combos = [(m, dict(fixed)) for m in cell["methods"]]
    else:
        key, values = next(iter(sweep.items())) if sweep else (None, [None])
        combos = [(cell["method"], {**fixed, **({key: v} if key else {})}) for v in values]
    legend = cell.get("legend") or ("{method}" if cell.get("methods") or not sweep
                                    else f"{next(iter(sweep))}={{{next(iter(sweep))}}}")
    out = []
    for method, overrides in combos:
        try:
            label = legend.format(method=method, **overrides)
        except (KeyError, IndexError) as err:
            raise OdtbenchError(f"{where}: legend {legend!r} names {err}, which is neither "
                                "`method` nor a swept or fixed key") from None
        out.append({"label": label, "method": method, "overrides": overrides,
                    "run_method": variant_name(method, overrides)})
    return out


def ablation_plan(config: Mapping[str, Any], scale: str) -> dict[str, Any]:
    """The study's ablation figures that `ablations:` selects at `scale`, expanded into
    figures -> panels (one per figure cell) -> lines (one per method or swept value), with
    each line's run directory name (`run_method`) and the seeds. Lines whose method is not
    registered but listed under `pending_methods` are kept with `pending: True` (the report
    shows them as not runnable yet) and plan no run; any other unknown name is an error.

    JSON-serialisable: the workflow passes it to `odtbench ablations --plan`."""
    block = config.get("ablations") or {}
    figures = block.get("figures") or {}
    sel = (block.get("scales") or {}).get(scale) or {}
    chosen = names(sel.get("figures", "all"), list(figures), f"ablation figure (ablations/scales/{scale})")
    known = known_methods(config)
    pending = set(block.get("pending_methods") or ())
    seeds = next(s for s in (config.get("seeds"), sel.get("seeds"),
                             config["scales"][scale]["seeds"]) if s is not None)
    replaced = sel.get("figure_panels") or {}
    names(list(replaced), list(figures), f"figure of ablations/scales/{scale}/figure_panels")
    out = []
    for fig_name in chosen:
        fig = figures[fig_name]
        panels = []
        for i, panel in enumerate(replaced.get(fig_name) or fig["panels"]):
            cell = {**{k: fig[k] for k in _PANEL_KEYS if k in fig}, **panel}
            if "methods" in panel:
                cell.pop("method", None)
            if "method" in panel:
                cell.pop("methods", None)
            where = (f"ablations/scales/{scale}/figure_panels/{fig_name}/{i}" if fig_name in replaced
                     else f"ablations/figures/{fig_name}/panels/{i}")
            lines = _lines(cell, where)
            for line in lines:
                if line["method"] not in known and line["method"] not in pending:
                    raise UnknownChoiceError(f"method ({where})", line["method"], known)
                line["pending"] = line["method"] not in known
            for suite, dataset in _expand_tasks(panel["task"]):
                panels.append({"suite": suite, "dataset": dataset, "y": cell.get("y", "score"),
                               "x": cell.get("x", "online_transitions"), "x_max": cell.get("x_max"),
                               "title": cell.get("title") or dataset,
                               "lines": [dict(line) for line in lines]})
        if sel.get("panels"):
            panels = panels[:sel["panels"]]
        if sel.get("lines"):
            for p in panels:
                p["lines"] = p["lines"][:sel["lines"]]
        out.append({"figure": fig_name, "title": fig.get("title", fig_name),
                    "caption": fig.get("caption", ""), "study": fig.get("study", ""),
                    "study_panels": sorted({p["task"] for p in fig["panels"]}) if fig_name in replaced else [],
                    "panels": panels})
    return {"scale": scale, "seeds": seed_list(seeds), "figures": out}


def ablation_runs(plan: Mapping[str, Any], figure: str | None = None) -> list[tuple[str, str, str, int]]:
    """(suite, dataset, run_method, seed) of every runnable line of the plan (of one figure),
    each once, in plan order."""
    seen: dict[tuple[str, str, str, int], None] = {}
    for fig in plan["figures"]:
        if figure is not None and fig["figure"] != figure:
            continue
        for panel in fig["panels"]:
            for line in panel["lines"]:
                if not line["pending"]:
                    for seed in plan["seeds"]:
                        seen[(panel["suite"], panel["dataset"], line["run_method"], seed)] = None
    return list(seen)


__all__ = ["load_config", "plan", "suite_methods", "configured_suites", "suite_config", "names", "seed_list",
           "external_methods", "known_methods", "schema_error", "STATS", "RUN_DIR", "SUMMARY", "BENCHMARK",
           "JOB_LOG", "VARIANT_SEP", "variant_name", "split_variant", "ablation_plan", "ablation_runs"]
