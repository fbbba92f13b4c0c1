# The `freqbias` study: checks -> train[shard] -> gather -> evaluate -> figures, plus the
# theory store (X1) and the transfer-function atlas (no training). On SLURM only
# freqbias_train is submitted; the rest are light localrules run on the submit host.
# Identities (DTFT = FFT of a long kernel, beta = 0 bit-identical, eq. 15): they gate training.
rule freqbias_checks:
    input:
        code=pkg_src("freqbias"),
    output:
        "results/freqbias/checks.json",
    log:
        "results/logs/freqbias/checks.log",
    localrule: True
    shell:
        "ssmflow checks --study freqbias --out {output} > {log} 2>&1"


# X1 theory (band, gradient locality, TV bound, filter weights) or the atlas |G| of every init x alpha.
rule freqbias_theory:
    input:
        code=pkg_src("freqbias"),
    output:
        directory("results/freqbias/{what}.zarr"),
    params:
        spec=freqbias_theory_spec,
    log:
        "results/logs/freqbias/{what}.log",
    wildcard_constraints:
        what="theory|transfer",
    localrule: True
    shell:
        "ssmflow freqbias-theory --what {wildcards.what} --spec {params.spec:q} --out {output} > {log} 2>&1"


# One job per shard (waves: one filter preset; denoise: the whole grid): alpha x beta x seed in one scan.
rule freqbias_train:
    input:
        code=pkg_src("freqbias"),
        checks="results/freqbias/checks.json",
    output:
        directory("results/freqbias/{exp}/shards/{shard}.zarr"),
    params:
        spec=shard_spec("freqbias"),
        cache=config["compile_cache"],
    log:
        "results/logs/freqbias/{exp}/train_{shard}.log",
    benchmark:
        "results/benchmarks/freqbias/{exp}/train_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=train_mem_mb("freqbias"),
        runtime=train_runtime,
        checkpoint_every_s=CHECKPOINT_EVERY_S,
    shell:
        "ssmflow train --spec {params.spec:q} --out {output} --cache {params.cache:q}"
        " --checkpoint results/.checkpoints/freqbias/{wildcards.exp}/{wildcards.shard}.ckpt"
        " --checkpoint-every {resources.checkpoint_every_s} > {log} 2>&1"


# Combine the shards of one experiment into a labelled Dataset.
rule freqbias_gather:
    input:
        shards=shard_stores("freqbias"),
    output:
        directory("results/freqbias/{exp}/trajectories.zarr"),
    log:
        "results/logs/freqbias/{exp}/gather.log",
    localrule: True
    shell:
        "ssmflow gather --study freqbias --out {output} {input.shards} > {log} 2>&1"


# Per-run metrics and the expectations E1 (waves) and E3 (denoising).
rule freqbias_evaluate:
    input:
        code=pkg_src("freqbias"),
        traj="results/freqbias/{exp}/trajectories.zarr",
    output:
        zarr=directory("results/freqbias/{exp}/metrics.zarr"),
        csv="results/freqbias/{exp}/metrics.csv",
    log:
        "results/logs/freqbias/{exp}/evaluate.log",
    localrule: True
    shell:
        "ssmflow evaluate --study freqbias --traj {input.traj} --out-zarr {output.zarr} --out-csv {output.csv} > {log} 2>&1"


# Transfer functions of the trained models (eq. 3 on the stored eigenvalues and C, init and final).
rule freqbias_transfer:
    input:
        code=pkg_src("freqbias"),
        traj="results/freqbias/{exp}/trajectories.zarr",
    output:
        directory("results/freqbias/{exp}/transfer.zarr"),
    log:
        "results/logs/freqbias/{exp}/transfer.log",
    localrule: True
    shell:
        "ssmflow theory --study freqbias --traj {input.traj} --out {output} > {log} 2>&1"


# Figures read stored data only.
rule freqbias_figure:
    input:
        unpack(freqbias_figure_inputs),
        code=pkg_src("freqbias"),
    output:
        report(
            "results/freqbias/figures/{fig}.png",
            caption="../report/freqbias_figure.rst",
            category="freqbias",
            labels={"figure": "{fig}"},
        ),
    log:
        "results/logs/freqbias/figure_{fig}.log",
    localrule: True
    shell:
        "ssmflow figure --study freqbias --name {wildcards.fig} --results results/freqbias --out {output} > {log} 2>&1"
