# The `icl` study: checks -> train[shard] -> gather -> theory -> evaluate -> figures.
# Like dynamics, only icl_train is submitted to SLURM; the rest are light localrules.
# Exactness checks T1-T7 of the GD-SSM construction (float64): they gate training.
rule icl_checks:
    input:
        code=pkg_src("icl"),
    output:
        "results/icl/checks.json",
    log:
        "results/logs/icl/checks.log",
    localrule: True
    shell:
        "ssmflow checks --study icl --out {output} > {log} 2>&1"


# One job per shard (model, d, N, K, ...): all seeds of the shard trained in one scan.
rule icl_train:
    input:
        code=pkg_src("icl"),
        checks="results/icl/checks.json",
    output:
        directory("results/icl/{exp}/shards/{shard}.zarr"),
    params:
        spec=shard_spec("icl"),
        cache=config["compile_cache"],
    log:
        "results/logs/icl/{exp}/train_{shard}.log",
    benchmark:
        "results/benchmarks/icl/{exp}/train_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=train_mem_mb("icl"),
        runtime=train_runtime,
        cpus_per_task=1,
        checkpoint_every_s=CHECKPOINT_EVERY_S,
    shell:
        "ssmflow train --spec {params.spec:q} --out {output} --cache {params.cache:q}"
        " --checkpoint results/.checkpoints/icl/{wildcards.exp}/{wildcards.shard}.ckpt"
        " --checkpoint-every {resources.checkpoint_every_s} > {log} 2>&1"


# Combine the shards of one experiment into a labelled Dataset.
rule icl_gather:
    input:
        shards=shard_stores("icl"),
    output:
        directory("results/icl/{exp}/trajectories.zarr"),
    log:
        "results/logs/icl/{exp}/gather.log",
    localrule: True
    shell:
        "ssmflow gather --study icl --out {output} {input.shards} > {log} 2>&1"


# GD references (closed forms, Monte Carlo, eval-set polynomials, constructed parameters,
# exactness errors) on the experiment's (d, N), or the sine references.
rule icl_theory:
    input:
        code=pkg_src("icl"),
        traj="results/icl/{exp}/trajectories.zarr",
    output:
        directory("results/icl/{exp}/theory.zarr"),
    log:
        "results/logs/icl/{exp}/theory.log",
    localrule: True
    shell:
        "ssmflow theory --study icl --traj {input.traj} --out {output} > {log} 2>&1"


# Trained models against theory, per run: loss ratios, alignment.
rule icl_evaluate:
    input:
        code=pkg_src("icl"),
        traj="results/icl/{exp}/trajectories.zarr",
        theory="results/icl/{exp}/theory.zarr",
    output:
        zarr=directory("results/icl/{exp}/metrics.zarr"),
        csv="results/icl/{exp}/metrics.csv",
    log:
        "results/logs/icl/{exp}/evaluate.log",
    localrule: True
    shell:
        "ssmflow evaluate --study icl --traj {input.traj} --theory {input.theory}"
        " --out-zarr {output.zarr} --out-csv {output.csv} > {log} 2>&1"


# Figures (one per figure kind and experiment, e.g. F1_E1) read stored data only.
rule icl_figure:
    input:
        unpack(icl_figure_inputs),
        code=pkg_src("icl"),
    output:
        report(
            "results/icl/figures/{fig}.png",
            caption="../report/icl_figure.rst",
            category="icl",
            labels={"figure": "{fig}"},
        ),
    log:
        "results/logs/icl/figure_{fig}.log",
    localrule: True
    shell:
        "ssmflow figure --study icl --name {wildcards.fig} --results results/icl --out {output} > {log} 2>&1"
