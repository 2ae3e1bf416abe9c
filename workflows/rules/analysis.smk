# Analysis: scores table + aggregates + tables -> figures -> the HTML report. These rules list
# the analysis code and templates they run as inputs, so editing them rebuilds only these
# outputs; they read the runs of the configured scale (results/runs/<scale>/...) and write
# scale-free paths, rebuilt whenever the scale (hence their set of inputs) changes.

ANALYSIS_CODE = package_files(
    "analysis", "runfiles.results", "runfiles.contract", "runfiles.schemas"
)
REPORT_CODE = package_files("report")


rule aggregate:
    input:
        summaries=lambda wc: planned(SUMMARY, wc.suite),
        code=ANALYSIS_CODE,
    output:
        scores="results/{suite}/scores.csv",
        aggregates="results/{suite}/aggregates.json",
    log:
        "logs/analysis/{suite}/aggregate.log",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        out=lambda wc, output: Path(output.scores).parent,
        scale=SCALE,
    shell:
        "odtbench aggregate --suite {wildcards.suite} --scale {params.scale}"
        " --out {params.out:q} > {log:q} 2>&1"


rule figures:
    input:
        aggregates="results/{suite}/aggregates.json",
        summaries=lambda wc: planned(SUMMARY, wc.suite),
        code=ANALYSIS_CODE,
    output:
        directory("reports/{suite}"),
    log:
        "logs/analysis/{suite}/figures.log",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        results=lambda wc, input: Path(input.aggregates).parent,
        scale=SCALE,
    shell:
        "odtbench figures --suite {wildcards.suite} --scale {params.scale}"
        " --results {params.results:q} --out {output:q} > {log:q} 2>&1"


rule report:
    input:
        scores="results/{suite}/scores.csv",
        aggregates="results/{suite}/aggregates.json",
        figures="reports/{suite}",
        summaries=lambda wc: planned(SUMMARY, wc.suite),
        benchmarks=lambda wc: planned(BENCHMARK, wc.suite),
        datasets=lambda wc: dataset_files(wc.suite),
        code=REPORT_CODE,
    output:
        "reports/{suite}.html",
    log:
        "logs/analysis/{suite}/report.log",
    wildcard_constraints:
        suite=r"(?!ablations(?![\w-]))[\w-]+",  # reports/ablations.html: rule ablations_report
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        results=lambda wc, input: Path(input.scores).parent,
        scale=SCALE,
    shell:
        "odtbench report --suite {wildcards.suite} --scale {params.scale}"
        " --results {params.results:q} --figures {input.figures:q} --out {output:q} > {log:q} 2>&1"


# The study's ablation figures (docs/ablations.md): `ablations:` of the config, expanded by
# odtbench.workflow.plan.ablation_plan. One run table per figure (its plan is the param, so
# editing one figure rebuilds only its table), then one report of every figure. The runs are
# the `run` rule's, in sweep directories `<method>@<key>=<value>` where a line sets values.


rule ablation_table:
    input:
        summaries=lambda wc: ablation_files(SUMMARY, wc.figure),
        code=ANALYSIS_CODE,
    output:
        "results/ablations/{figure}.csv",
    log:
        "logs/analysis/ablations/{figure}.log",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        plan=lambda wc: ablation_plan_json(wc.figure),
    shell:
        "odtbench ablations --plan {params.plan:q} --table {output:q} > {log:q} 2>&1"


rule ablations_report:
    input:
        tables=lambda wc: expand(
            "results/ablations/{figure}.csv", figure=ablation_figures()
        ),
        summaries=lambda wc: ablation_files(SUMMARY),
        datasets=lambda wc: ablation_files(STATS),
        code=ANALYSIS_CODE + REPORT_CODE,
    output:
        "reports/ablations.html",
    log:
        "logs/analysis/ablations/report.log",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        plan=lambda wc: ablation_plan_json(),
    shell:
        "odtbench ablations --plan {params.plan:q} --out {output:q} > {log:q} 2>&1"
