# "Add a baseline as a rule" (docs/adding-a-baseline.md). A method that lives outside odtbench
# is any command that writes the run-result files of docs/contracts.md §1 (config.json,
# curve.csv, summary.json last) into the run directory it is given. Declare it in
# workflows/config.yaml and list its name under a suite's `methods`:
#
#   external_methods:
#     BC: "python examples/bc_external/bc.py --task {task} --seed {seed} --scale {scale} --out {out}"
#
# Placeholders: {task} (suite/dataset), {suite}, {dataset}, {seed}, {scale}, {out} (the run
# directory, shell-quoted). The config checks, `methods: all` and the plan know the name from
# the config (odtbench.workflow.plan.known_methods; nothing is registered); its runs are made
# by `run_external` instead of `odtbench run`, and the analysis validates and reports them
# like any other run. The command is the rule's param: editing it re-runs that method's runs,
# and only those.

import re
import shlex

EXTERNAL_METHODS = wp.external_methods(config)


rule run_external:
    input:
        stats=STATS,
    output:
        summary=SUMMARY,
    log:
        JOB_LOG,
    benchmark:
        BENCHMARK
    wildcard_constraints:
        # only the declared names; "(?!)" matches nothing when none is declared
        method="|".join(re.escape(m) for m in EXTERNAL_METHODS) or "(?!)",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: run_resource(wc, "mem_mb"),
        runtime=lambda wc: run_resource(wc, "runtime"),
    params:
        command=lambda wc, output: EXTERNAL_METHODS[wc.method].format(
            task=f"{wc.suite}/{wc.dataset}",
            suite=wc.suite,
            dataset=wc.dataset,
            seed=wc.seed,
            scale=wc.scale,
            out=shlex.quote(str(Path(output.summary).parent)),
        ),
    shell:
        "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 {params.command} > {log:q} 2>&1"


# A declared name is also a registered method, so `run` could make the same file: this rule wins.
ruleorder: run_external > run
