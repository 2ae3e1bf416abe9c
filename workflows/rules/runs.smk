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
        device=lambda wc: checked_device(),
        # likewise the update path (auto | reference | fast): equal to rounding, not a new run
        speed=config.get("speed", "auto"),
    params:
        hyperparameters=lambda wc: resolved_hyperparameters(
            wc.scale, wc.suite, wc.dataset, wc.method
        ),
        overrides=lambda wc: set_args(wc.method),
        run_dir=lambda wc, output: Path(output.summary).parent,
    shell:
        # one thread per job, so Snakemake packs one run per core; --replace-stale: a job
        # re-run for changed hyperparameters must not resume the old run's checkpoint. The
        # job log gets a progress line every 10 s (odtbench/runfiles/progress.py; `odtbench status`).
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"
        " odtbench run --threads {threads} --task {wildcards.suite}/{wildcards.dataset} --method {wildcards.method:q}"
        " --seed {wildcards.seed} --scale {wildcards.scale} --out {params.run_dir:q}"
        " --device {resources.device:q} --speed {resources.speed} --replace-stale {params.overrides} > {log:q} 2>&1"
