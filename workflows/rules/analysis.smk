# Analysis: scores table + aggregates + tables -> figures -> the HTML report. These rules list
# the analysis code and templates they run as inputs, so editing them rebuilds only these
# outputs; they read the runs of the configured scale (results/runs/<scale>/...) and write
# scale-free paths, rebuilt whenever the scale (hence their set of inputs) changes.

ANALYSIS_CODE = package_files("analysis", "results", "contract", "schemas")
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
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    params:
        results=lambda wc, input: Path(input.scores).parent,
        scale=SCALE,
    shell:
        "odtbench report --suite {wildcards.suite} --scale {params.scale}"
        " --results {params.results:q} --figures {input.figures:q} --out {output:q} > {log:q} 2>&1"
