# The `s4d` study: checks -> train[shard] -> gather -> evaluate -> figures, plus the LegS
# kernel limit (no training). On SLURM only s4d_train is submitted; the rest are light
# localrules run on the submit host.
# Kernel identities (Vandermonde = dense = scan, FFT = direct conv, LegS eigenvalues): they gate training.
rule s4d_checks:
    input:
        code=pkg_src("s4d"),
    output:
        "results/s4d/checks.json",
    log:
        "results/logs/s4d/checks.log",
    localrule: True
    shell:
        "ssmflow checks --study s4d --out {output} > {log} 2>&1"


# The S4D-LegS basis against the exact LegS basis for every N of the config (float64).
rule s4d_kernel_limit:
    input:
        code=pkg_src("s4d"),
    output:
        directory("results/s4d/legs_convergence.zarr"),
    params:
        spec=s4d_kernel_limit_spec,
    log:
        "results/logs/s4d/kernel_limit.log",
    localrule: True
    shell:
        "ssmflow s4d-kernel-limit --spec {params.spec:q} --out {output} > {log} 2>&1"


# One job per (N, disc) shard: every init x seed of the shard trained in one scan.
rule s4d_train:
    input:
        code=pkg_src("s4d"),
        checks="results/s4d/checks.json",
    output:
        directory("results/s4d/{exp}/shards/{shard}.zarr"),
    params:
        spec=s4d_shard_spec,
        cache=config["compile_cache"],
    log:
        "results/logs/s4d/{exp}/train_{shard}.log",
    benchmark:
        "results/benchmarks/s4d/{exp}/train_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=train_mem_mb("s4d"),
        runtime=train_runtime,
        checkpoint_every_s=CHECKPOINT_EVERY_S,
    shell:
        "ssmflow train --spec {params.spec:q} --out {output} --cache {params.cache:q}"
        " --checkpoint results/.checkpoints/s4d/{wildcards.exp}/{wildcards.shard}.ckpt"
        " --checkpoint-every {resources.checkpoint_every_s} > {log} 2>&1"


# Combine the shards of one experiment into a labelled Dataset (mode axis NaN-padded to max N/2).
rule s4d_gather:
    input:
        shards=shard_stores("s4d"),
    output:
        directory("results/s4d/{exp}/trajectories.zarr"),
    log:
        "results/logs/s4d/{exp}/gather.log",
    localrule: True
    shell:
        "ssmflow gather --study s4d --out {output} {input.shards} > {log} 2>&1"


# Per-run metrics and the init ranking (no theory store: nothing closed-form to compare with).
rule s4d_evaluate:
    input:
        code=pkg_src("s4d"),
        traj="results/s4d/{exp}/trajectories.zarr",
    output:
        zarr=directory("results/s4d/{exp}/metrics.zarr"),
        csv="results/s4d/{exp}/metrics.csv",
    log:
        "results/logs/s4d/{exp}/evaluate.log",
    localrule: True
    shell:
        "ssmflow evaluate --study s4d --traj {input.traj} --out-zarr {output.zarr} --out-csv {output.csv} > {log} 2>&1"


# Figures read stored data only.
rule s4d_figure:
    input:
        unpack(s4d_figure_inputs),
        code=pkg_src("s4d"),
    output:
        report(
            "results/s4d/figures/{fig}.png",
            caption="../report/s4d_figure.rst",
            category="s4d",
            labels={"figure": "{fig}"},
        ),
    log:
        "results/logs/s4d/figure_{fig}.log",
    localrule: True
    shell:
        "ssmflow figure --study s4d --name {wildcards.fig} --results results/s4d --out {output} > {log} 2>&1"
