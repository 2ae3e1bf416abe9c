# One job per (dataset, method, seed): `odtbench run` writes config.json, curve.csv and, last,
# summary.json (the output: its presence means the run ended). Runs list no code as input:
# editing analysis code never retrains. Their `params` hold the resolved hyperparameters, so
# changing one method's preset or override re-runs only that method's runs.


rule run:
    input:
        stats=STATS,
    output:
        summary=SUMMARY,
    log:
        JOB_LOG,
    benchmark:
        BENCHMARK
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: run_resource(wc, "mem_mb"),
        runtime=lambda wc: run_resource(wc, "runtime"),
        gpu=0 if config["device"] == "cpu" else 1,
        # a resource, not a param: moving to another device must not re-run finished runs
        device=config["device"],
    params:
        hyperparameters=lambda wc: resolved_hyperparameters(
            wc.scale, wc.suite, wc.dataset, wc.method
        ),
        overrides=lambda wc: set_args(wc.method),
        run_dir=lambda wc, output: Path(output.summary).parent,
    shell:
        # one thread per job, so Snakemake packs one run per core; --replace-stale: a job
        # re-run for changed hyperparameters must not resume the old run's checkpoint. The
        # job log gets a progress line every 10 s (odtbench/progress.py; `odtbench status`).
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"
        " odtbench run --threads {threads} --task {wildcards.suite}/{wildcards.dataset} --method {wildcards.method:q}"
        " --seed {wildcards.seed} --scale {wildcards.scale} --out {params.run_dir:q}"
        " --device {resources.device:q} --replace-stale {params.overrides} > {log:q} 2>&1"


# Packed cells (`pack_seeds`, docs/workflow.md): one job trains every planned seed of a
# (dataset, method) cell in one process (`odtbench run --seeds`) and writes each seed's run
# directory exactly as `run` does. A rule's outputs are fixed when the workflow is parsed and
# each suite plans its own seeds, so each suite with packed methods gets its own rule, which
# wins over `run` for those methods. Snakemake deletes a job's outputs before it runs it: the
# seeds whose settings did not change resume from their checkpoints to the same numbers.
for _suite in configured_suites():
    if not packed(_suite):
        continue
    _seeds = plan(SCALE, _suite)["seeds"]

    rule:
        name:
            f"run_packed_{_suite.replace('-', '_')}"
        input:
            stats=expand(STATS, suite=_suite, allow_missing=True),
        output:
            summaries=expand(SUMMARY, suite=_suite, seed=_seeds, allow_missing=True),
        log:
            packed_path(wp.PACKED_LOG, _suite, _seeds),
        benchmark:
            packed_path(wp.PACKED_BENCHMARK, _suite, _seeds)
        wildcard_constraints:
            method="|".join(re.escape(m) for m in packed(_suite)),
        conda:
            "../envs/odtbench.yaml"
        threads: 1
        resources:
            mem_mb=lambda wc, s=_suite, n=len(_seeds): packed_resource(
                wc, s, n, "mem_mb"
            ),
            runtime=lambda wc, s=_suite, n=len(_seeds): packed_resource(
                wc, s, n, "runtime"
            ),
        params:
            hyperparameters=lambda wc, s=_suite: resolved_hyperparameters(
                wc.scale, s, wc.dataset, wc.method
            ),
            overrides=lambda wc: set_args(wc.method),
            method_dir=lambda wc, output: Path(output.summaries[0]).parent.parent,
            task=lambda wc, s=_suite: f"{s}/{wc.dataset}",
            seeds=",".join(str(k) for k in _seeds),
        shell:
            "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"
            " odtbench run --threads {threads} --task {params.task} --method {wildcards.method:q}"
            " --seeds {params.seeds} --scale {wildcards.scale} --out {params.method_dir:q}"
            " --replace-stale {params.overrides} > {log:q} 2>&1"

    workflow.ruleorder(f"run_packed_{_suite.replace('-', '_')}", "run")
