# The stages of every enabled study, written once: checks -> data -> train[shard] -> gather
# -> the study's stages (theory, evaluate, ...) -> figures, plus its study-level stores.
# Rule names are <study>_<stage>, so profiles and --set-resources address them per study.
# On SLURM only <study>_train and <study>_data are submitted; every other rule is a light
# localrule run on the submit host, so a big grid does not become many tiny jobs.
# Directives are evaluated when the rule is defined, except `shell:`, which Snakemake
# evaluates when the job runs (after the loop has ended): so every shell command below is a
# constant string, and what differs per study or stage comes in through `params`.
for _decl in STUDIES.values():
    _s = _decl.name

    # Identities that gate training (kernels against references, exact constructions).
    if _decl.checks:

        rule:
            name:
                f"{_s}_checks"
            input:
                code=code(_s, _decl.checks),
            output:
                checks_file(_s),
            log:
                f"results/logs/{_s}/checks.log",
            params:
                study=_s,
                cache=VALID["compile_cache"],
            localrule: True
            shell:
                "ssmflow checks --study {params.study} --out {output} --cache {params.cache:q} --threads {threads} > {log} 2>&1"

    # The experiment's synthesized data (sequences, datasets and splits, images and noise,
    # fixed evaluation sets): every shard of the experiment trains on it.
    if _decl.data:

        rule:
            name:
                f"{_s}_data"
            input:
                unpack(data_guard(_s)),
                code=code(_s, _decl.data),
            output:
                directory(data_store(_s, "{exp}")),
            params:
                spec=data_spec(_s),
                cache=VALID["compile_cache"],
            log:
                f"results/logs/{_s}/{{exp}}/data.log",
            threads: 1
            shell:
                "ssmflow data --spec {params.spec:q} --out {output} --cache {params.cache:q} --threads {threads} > {log} 2>&1"

    # One job per shard: all runs of the shard (seeds and the batched axes) in one scan.
    rule:
        name:
            f"{_s}_train"
        input:
            unpack(train_inputs(_s)),
            code=train_code(_s),
        output:
            directory(shard_store(_s, "{exp}", "{shard}")),
        params:
            spec=shard_spec(_s),
            data=train_args(_s),
            cache=VALID["compile_cache"],
            study=_s,
        log:
            f"results/logs/{_s}/{{exp}}/train_{{shard}}.log",
        benchmark:
            f"results/benchmarks/{_s}/{{exp}}/train_{{shard}}.tsv"
        threads: TRAIN_THREADS
        resources:
            mem_mb=train_resource(_s, "mem_mb"),
            runtime=train_resource(_s, "runtime"),
            cpus_per_task=1,
            checkpoint_every_s=CHECKPOINT_EVERY_S,
        shell:
            "ssmflow train --spec {params.spec:q} {params.data} --out {output} --cache {params.cache:q} --threads {threads} --reuse results/.runs"
            " --checkpoint results/.checkpoints/{params.study}/{wildcards.exp}/{wildcards.shard}.ckpt"
            " --checkpoint-every {resources.checkpoint_every_s} > {log} 2>&1"

    # Combine the shards of one experiment into a labelled Dataset (ragged dims NaN-padded),
    # and write its runs' trained models as files (ssmflow.models).
    rule:
        name:
            f"{_s}_gather"
        input:
            shards=shard_stores(_s),
            code=code(_s),
        output:
            **gather_outputs(_s),
        params:
            study=_s,
            models=gather_args,
        log:
            f"results/logs/{_s}/{{exp}}/gather.log",
        localrule: True
        shell:
            "ssmflow gather --study {params.study} --out {output.zarr} {params.models} {input.shards} > {log} 2>&1"

    # The study's stages after gather, each reading stores of its experiment.
    for _stage in _decl.stages:

        rule:
            name:
                f"{_s}_{_stage.name}"
            input:
                unpack(stage_inputs(_s, _stage)),
                code=code(_s, _stage.module),
            output:
                **(
                    {"zarr": directory(f"results/{_s}/{{exp}}/{_stage.writes}.zarr")}
                    | ({"csv": f"results/{_s}/{{exp}}/{_stage.writes}.csv"} if _stage.csv else {})
                    | (
                        {
                            "html": report(
                                f"results/{_s}/{{exp}}/{_stage.writes}.html",
                                caption="../report/headline_table.rst",
                                category=_s,
                                subcategory="headline tables",
                                labels={"table": f"{{exp}} {_stage.writes}"},
                            )
                        }
                        if _stage.csv and _stage.headline
                        else {}
                    )
                ),
            params:
                study=_s,
                stage=_stage.name,
                args=stage_args(_stage),
                settings=stage_settings(_s, _stage),
                cache=VALID["compile_cache"],
            log:
                f"results/logs/{_s}/{{exp}}/{_stage.name}.log",
            localrule: True
            shell:
                "ssmflow stage --study {params.study} --stage {params.stage} {params.args} {params.settings}"
                " --cache {params.cache:q} --threads {threads} > {log} 2>&1"

    # Stores computed from one config section alone (no training), spanning experiments.
    for _store in _decl.study_stores:

        rule:
            name:
                f"{_s}_{_store.name}"
            input:
                unpack(study_store_guard(_s, _store)),
                code=code(_s, _store.module),
            output:
                directory(f"results/{_s}/{_store.file}"),
            params:
                spec=section_spec(_s, _store.config_key),
                study=_s,
                store=_store.name,
                cache=VALID["compile_cache"],
            log:
                f"results/logs/{_s}/{_store.name}.log",
            localrule: True
            shell:
                "ssmflow study-store --study {params.study} --store {params.store}"
                " --spec {params.spec:q} --out {output} --cache {params.cache:q} --threads {threads} > {log} 2>&1"

    # Every figure of the study in one job (one import of the plotting stack, not one per
    # figure); each figure still reads its declared stores only. A change of any of them,
    # or of the figure code, redraws the study's figures and nothing upstream.
    rule:
        name:
            f"{_s}_figure"
        input:
            stores=figure_paths(_s),
            code=code(_s, _decl.figures_module),
        output:
            [
                report(
                    f"results/{_s}/figures/{_fig}.png",
                    caption=f"../report/{_s}_figure.rst",
                    category=_s,
                    labels={"figure": _fig},
                )
                for _fig in figure_inputs(_s)
            ],
        params:
            spec=json.dumps(figure_inputs(_s), sort_keys=True),
            study=_s,
        log:
            f"results/logs/{_s}/figures.log",
        localrule: True
        shell:
            "ssmflow figures --study {params.study} --spec {params.spec:q} --out {output} > {log} 2>&1"
