# odtbench workflow: dataset -> run (method x seed) -> aggregate -> figures -> report.
#
#   snakemake --cores 2 reports/toy.html                       # the toy study, quick scale
#   snakemake -n reports/mujoco.html --config scale=paper      # plan the paper-scale MuJoCo suite
#   (targets before --config: it takes every word after it as a key=value)
#
# The configuration (workflows/config.yaml) is validated against
# workflows/schemas/config.schema.yaml and the names in it against odtbench's registries;
# any problem stops here with one line. docs/workflow.md explains paths and rerun rules.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from odtbench.errors import OdtbenchError
from odtbench.runfiles.livelog import export_logger

min_version("9.0")


include: "workflows/rules/common.smk"


check_yaml("workflows/config.yaml")


configfile: "workflows/config.yaml"


try:
    validate(config, "workflows/schemas/config.schema.yaml")
except WorkflowError:
    stop(schema_error(Path(workflow.basedir) / "workflows/schemas/config.schema.yaml"))


include: "workflows/rules/external.smk"  # external_methods: commands as run rules


SCALE = config["scale"]
try:
    check_config()
except OdtbenchError as err:
    stop(err)
hold_workflow_lock()  # clears a killed workflow's Snakemake locks when no other one runs here


# every job's `odtbench run` reads the live logger from the environment: no param, so choosing
# one never re-runs a finished run (odtbench/runfiles/livelog.py)
export_logger(config.get("logger", "none"))


wildcard_constraints:
    scale="|".join(config["scales"]),
    suite=r"[\w-]+",  # no dot: reports/{suite}/ must not match reports/{suite}.html
    dataset=r"[^/]+",
    method=r"[^/]+",
    seed=r"\d+",


include: "workflows/rules/datasets.smk"
include: "workflows/rules/runs.smk"
include: "workflows/rules/analysis.smk"


onstart:
    check_device_here()  # also when no run job is planned (a dataset target); once per process
    check_logger_here()


# Default target: the report of every suite configured at the chosen scale.
rule all:
    default_target: True
    input:
        expand("reports/{suite}.html", suite=configured_suites()),
    localrule: True
