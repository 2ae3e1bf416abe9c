# Offline datasets: built once per task and scale (Minari format under datasets/minari/),
# then reused by every run; the statistics file is the rule's output and the runs' input.


rule dataset:
    output:
        stats=STATS,
    log:
        "logs/{scale}/datasets/{suite}/{dataset}.log",
    conda:
        "../envs/odtbench.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: run_resource(wc, "mem_mb"),
        runtime=lambda wc: run_resource(wc, "runtime"),
    shell:
        "odtbench dataset build --task {wildcards.suite}/{wildcards.dataset}"
        " --scale {wildcards.scale} --stats {output.stats:q} > {log:q} 2>&1"
