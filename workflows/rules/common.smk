# Helpers of the rules: what the configured scale plans, and the resolved hyperparameters
# that make Snakemake re-run exactly the runs whose settings changed. (Functions live here,
# apart from the rules, as `snakemake --lint` asks.)

import json
import os
import shlex
import sys
from functools import cache
from pathlib import Path

from odtbench.workflow import plan as wp

# Paths and the config's expansion live in odtbench/workflow/plan.py, shared with
# `odtbench status`.
STATS, SUMMARY, BENCHMARK, JOB_LOG = wp.STATS, wp.SUMMARY, wp.BENCHMARK, wp.JOB_LOG


def stop(message, now=False):
    """Print one line and leave (Snakemake's own report of an exception adds a traceback).
    `now`: from inside Snakemake's job building, which wraps even SystemExit in a report of
    its own; before any job runs, so nothing is left half done."""
    print(f"odtbench: error: {' '.join(str(message).split())}", file=sys.stderr)
    if now:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(2)
    sys.exit(2)


# the open lock file of this Snakemake process, held until it exits
_WORKFLOW_FLOCK = []


def hold_workflow_lock():
    """Every Snakemake main process of this directory holds a shared flock on
    .snakemake/odtbench-workflow.flock for its lifetime (the kernel drops it on any exit, kill
    -9 included). One that gets it exclusively knows no other workflow runs here, so any
    Snakemake locks in .snakemake/locks are a killed workflow's: it removes them, saying so,
    and the plain rerun carries on. Jobs (cluster or subprocess executions of this file) skip
    this: their main process holds the lock.
    """
    import fcntl

    if workflow.remote_exec or workflow.subprocess_exec:
        return
    state = Path(".snakemake")
    try:
        state.mkdir(exist_ok=True)
        fd = os.open(state / "odtbench-workflow.flock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return  # a read-only checkout: Snakemake itself will say so
    _WORKFLOW_FLOCK.append(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another workflow runs here: its locks are live
        fcntl.flock(fd, fcntl.LOCK_SH)
        return
    stale = sorted((state / "locks").glob("*.lock"))
    for f in stale:
        f.unlink(missing_ok=True)
    if stale:
        print(
            "odtbench: removed the Snakemake locks of a killed workflow (no other workflow "
            "runs in this directory)",
            file=sys.stderr,
        )
    fcntl.flock(fd, fcntl.LOCK_SH)


def check_yaml(path):
    """Stop with one line if `path` exists but is not UTF-8, is empty or is not YAML
    (Snakemake's messages have no line number, or no file name, or a traceback)."""
    import yaml

    from odtbench.errors import OdtbenchError

    try:
        yaml.safe_load(wp.read_config_text(path))
    except FileNotFoundError:
        return
    except OdtbenchError as err:
        stop(err)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        stop(
            f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err}); fix its syntax"
        )


def schema_error(schema_file):
    """One line for a config that violates the schema (Snakemake's own message prints the
    whole schema and config)."""
    return (
        wp.schema_error(config, schema_file)
        or f"workflow config does not match {schema_file}"
    )


def _names(value, registered, kind):
    return wp.names(value, registered, kind)


def suite_config(scale, suite):
    """The config block of `suite` at `scale`; one line and exit if it is not configured
    (also from an input function, where Snakemake would print a traceback)."""
    from odtbench.errors import OdtbenchError

    try:
        return wp.suite_config(config, scale, suite)
    except OdtbenchError as err:
        stop(err)


@cache
def plan(scale, suite):
    """Datasets, methods and seeds of `suite` at `scale`; top-level overrides win."""
    # an unconfigured suite (e.g. a mistyped target): one line
    suite_config(scale, suite)
    return wp.plan(config, scale, suite)


def configured_suites():
    return wp.configured_suites(config, SCALE)


@cache
def resolved_hyperparameters(scale, suite, dataset, method):
    """The resolved hyperparameters of a run as canonical JSON. A run rule's params: when they
    change (a preset, a scale, an override), Snakemake's params trigger re-runs exactly the
    runs they belong to; the seed is not among them. `method` may be a sweep's run directory
    name (`TD3+ODT@rl_coeff=0.01`): resolve reads its values, which win over the overrides.
    """
    from odtbench.hyperparameters.resolve import resolve

    cfg = resolve(
        f"{suite}/{dataset}",
        method,
        scale,
        0,
        config["hyperparameters"].get(wp.split_variant(method)[0], {}),
    )
    return json.dumps(cfg.hyperparameters, sort_keys=True, default=str)


def set_args(method):
    """The workflow's overrides of `method` (of a sweep's base method) as `odtbench run
    --set` arguments; a sweep's own values travel in its name (`--method TD3+ODT@...`).
    """
    items = sorted(
        config["hyperparameters"].get(wp.split_variant(method)[0], {}).items()
    )
    return " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in items)


@cache
def ablation_plan():
    """The ablation figures at the configured scale (odtbench.workflow.plan.ablation_plan)."""
    return wp.ablation_plan(config, SCALE)


def ablation_figures():
    return [f["figure"] for f in ablation_plan()["figures"]]


def ablation_files(pattern, figure=None):
    """`pattern` (SUMMARY, BENCHMARK, STATS) of every run of the ablation figures (of one)."""
    runs = wp.ablation_runs(ablation_plan(), figure)
    # checked here, where the ablation rules are in the DAG, not for every target: a config
    # that trims a scale's suites still builds the suite reports
    for suite, dataset, method, _ in runs:
        if suite not in configured_suites():
            stop(
                f"ablation run {suite}/{dataset}/{method}: suite {suite!r} is not configured "
                f"at scale {SCALE} (scales/{SCALE}/suites), which sets its run resources; "
                f"configure it or leave its figures out (ablations/scales/{SCALE}/figures)"
            )
    return sorted(
        {
            pattern.format(scale=SCALE, suite=s, dataset=d, method=m, seed=k)
            for s, d, m, k in runs
        }
    )


def ablation_plan_json(figure=None):
    """The plan (of one figure) as the JSON `odtbench ablations --plan` reads; a rule's
    param, so editing one figure's config rebuilds only that figure's table (and the report).
    """
    p = ablation_plan()
    if figure is not None:
        p = {**p, "figures": [f for f in p["figures"] if f["figure"] == figure]}
    return json.dumps(p, sort_keys=True)


def check_config():
    """Every name in the config is registered, every planned run resolves (with every
    hyperparameter value checked: odtbench/hyperparameters/checks.py), so mistakes
    surface here, before any job deletes or runs anything, as one line naming the fix.
    """
    from odtbench.errors import OdtbenchError
    from odtbench.tasks import list_suites

    _names(
        list(config["hyperparameters"]),
        wp.known_methods(config),
        "method in hyperparameters",
    )
    for scale, block in config["scales"].items():
        _names(list(block["suites"]), list_suites(), f"suite (scales/{scale}/suites)")
        for suite in block["suites"]:
            plan(scale, suite)
    external = wp.external_methods(config)  # commands: no odtbench hyperparameters
    for suite in configured_suites():
        p = plan(SCALE, suite)
        for dataset in p["datasets"]:
            for method in p["methods"]:
                if method not in external:
                    resolved_hyperparameters(SCALE, suite, dataset, method)
    for scale in config["scales"]:
        wp.ablation_plan(config, scale)  # every scale's figures expand
    for suite, dataset, method, _ in wp.ablation_runs(ablation_plan()):
        if suite not in configured_suites():
            continue  # an error only where ablations are built (ablation_files)
        if wp.split_variant(method)[0] in external:
            raise OdtbenchError(
                f"ablation method {method!r} is external; sweeps run odtbench methods only"
            )
        resolved_hyperparameters(SCALE, suite, dataset, method)


_DEVICE_CHECKED = []


def checked_device():
    """The runs' device (a resource of the run jobs), checked on first use. Snakemake asks for it
    while it builds the jobs, when it knows the executor, so a dry run stops too."""
    check_device_here()
    return config["device"]


def jobs_run_here():
    """Whether this Snakemake runs its jobs on this machine. A dry run swaps the executor for
    Snakemake's dry-run one, which is local; the intended executor's trace left is
    `use_threads`, which Snakemake forces on for a remote executor (snakemake/api.py).
    """
    if workflow.dryrun:
        return not workflow.execution_settings.use_threads
    return workflow.local_exec


def check_device_here():
    """The configured device exists on this machine when the jobs run locally, in a dry run
    too (the executor is known once jobs are built). A cluster's login node may lack the GPUs
    of its compute nodes: with a cluster executor (`--executor slurm`, dry run or not) each
    job checks its device where it runs (one line in its log).
    """
    from odtbench.errors import OdtbenchError
    from odtbench.hyperparameters.checks import check_device

    if _DEVICE_CHECKED or config["device"] == "cpu" or not jobs_run_here():
        return
    _DEVICE_CHECKED.append(True)
    try:
        check_device(
            config["device"]
        )  # a GPU run without a GPU: one line, not one per job
    except OdtbenchError as err:
        stop(err, now=True)


def check_logger_here():
    """The configured live logger's package is installed: called from `onstart`, so a missing
    extra is one line saying how to install it before any job runs."""
    from odtbench.errors import OdtbenchError
    from odtbench.runfiles.livelog import check_logger

    if not getattr(workflow, "local_exec", True):
        return  # a cluster's jobs check it where they run (one line in the job log)
    try:
        check_logger(config["logger"])
    except OdtbenchError as err:
        stop(err)


def planned(pattern, suite):
    """`pattern` (SUMMARY, BENCHMARK) for every planned run of `suite` at the configured
    scale."""
    p = plan(SCALE, suite)
    return expand(
        pattern,
        scale=SCALE,
        suite=suite,
        dataset=p["datasets"],
        method=p["methods"],
        seed=p["seeds"],
    )


def dataset_files(suite):
    return expand(
        STATS, scale=SCALE, suite=suite, dataset=plan(SCALE, suite)["datasets"]
    )


def run_resource(wildcards, key):
    """mem_mb / runtime of one run, from its suite's block at the run's scale."""
    return suite_config(wildcards.scale, wildcards.suite)[key]


def package_files(*modules):
    """Files of odtbench modules/subpackages (code, templates, schemas) as imported: inputs
    of the analysis rules, so editing table or template code rebuilds only analysis outputs.
    Run rules never list code. Paths are relative to the working directory; a package
    imported from elsewhere (installed, not a checkout) lists nothing, so no machine's path
    enters the workflow's records."""
    import importlib.util

    here = Path.cwd().resolve()
    files = []
    for name in modules:
        spec = importlib.util.find_spec(f"odtbench.{name}")
        if spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            files += [
                f
                for f in root.rglob("*")
                if f.is_file() and "__pycache__" not in f.parts
            ]
        else:
            files.append(Path(spec.origin))
    inside = [f.resolve() for f in files if f.resolve().is_relative_to(here)]
    return sorted(str(f.relative_to(here)) for f in inside)
