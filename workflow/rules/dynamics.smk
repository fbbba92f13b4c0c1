# The `dynamics` study: checks -> train[shard] -> gather -> theory -> evaluate -> figures.
# On SLURM only dynamics_train is submitted (one job per shard); every other rule is a
# light localrule run on the submit host, so a big grid does not become many tiny jobs.
# Identity checks of spec group A (statistics, exact GD map): they gate training.
rule dynamics_checks:
    input:
        code=pkg_src("dynamics"),
    output:
        "results/dynamics/checks.json",
    log:
        "results/logs/dynamics/checks.log",
    localrule: True
    shell:
        "ssmflow checks --study dynamics --out {output} > {log} 2>&1"


# One job per shard: all runs of the shard (seeds, p0, kappa, ...) vmapped in one scan.
rule dynamics_train:
    input:
        code=pkg_src("dynamics"),
        checks="results/dynamics/checks.json",
    output:
        directory("results/dynamics/{exp}/shards/{shard}.zarr"),
    params:
        spec=shard_spec("dynamics"),
        cache=config["compile_cache"],
    log:
        "results/logs/dynamics/{exp}/train_{shard}.log",
    benchmark:
        "results/benchmarks/dynamics/{exp}/train_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=train_mem_mb("dynamics"),
        runtime=train_runtime,
        cpus_per_task=lambda wildcards, threads: threads,
        checkpoint_every_s=CHECKPOINT_EVERY_S,
    shell:
        "ssmflow train --spec {params.spec:q} --out {output} --cache {params.cache:q}"
        " --checkpoint results/.checkpoints/dynamics/{wildcards.exp}/{wildcards.shard}.ckpt"
        " --checkpoint-every {resources.checkpoint_every_s} > {log} 2>&1"


# Combine the shards of one experiment into a labelled Dataset.
rule dynamics_gather:
    input:
        shards=shard_stores("dynamics"),
    output:
        directory("results/dynamics/{exp}/trajectories.zarr"),
    log:
        "results/logs/dynamics/{exp}/gather.log",
    localrule: True
    shell:
        "ssmflow gather --study dynamics --out {output} {input.shards} > {log} 2>&1"


# Closed forms / ODE references on the same coords as the trajectories.
rule dynamics_theory:
    input:
        code=pkg_src("dynamics"),
        traj="results/dynamics/{exp}/trajectories.zarr",
    output:
        directory("results/dynamics/{exp}/theory.zarr"),
    log:
        "results/logs/dynamics/{exp}/theory.log",
    localrule: True
    shell:
        "ssmflow theory --study dynamics --traj {input.traj} --out {output} > {log} 2>&1"


# Simulation against theory, per run: max errors, half-times.
rule dynamics_evaluate:
    input:
        code=pkg_src("dynamics"),
        traj="results/dynamics/{exp}/trajectories.zarr",
        theory="results/dynamics/{exp}/theory.zarr",
    output:
        zarr=directory("results/dynamics/{exp}/metrics.zarr"),
        csv="results/dynamics/{exp}/metrics.csv",
    log:
        "results/logs/dynamics/{exp}/evaluate.log",
    localrule: True
    shell:
        "ssmflow evaluate --study dynamics --traj {input.traj} --theory {input.theory}"
        " --out-zarr {output.zarr} --out-csv {output.csv} > {log} 2>&1"


# Figures read stored data only.
rule dynamics_figure:
    input:
        unpack(dynamics_figure_inputs),
        code=pkg_src("dynamics"),
    output:
        report(
            "results/dynamics/figures/{fig}.png",
            caption="../report/dynamics_figure.rst",
            category="dynamics",
            labels={"figure": "{fig}"},
        ),
    log:
        "results/logs/dynamics/figure_{fig}.log",
    localrule: True
    shell:
        "ssmflow figure --study dynamics --name {wildcards.fig} --results results/dynamics --out {output} > {log} 2>&1"
