# Shared helpers: config validation (before any job), the enabled studies' contracts and
# grids, and the input/params functions the generic rules (study.smk) use. Nothing here
# names a study: each study declares itself once (ssmflow.study, studies/<study>/__init__.py).
import json
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from ssmflow import codedeps
from ssmflow import config as ssm_config
from ssmflow import freshness
from ssmflow import grid as ssm_grid
from ssmflow import plan as ssm_plan
from ssmflow import resources as ssm_resources
from ssmflow import study as ssm_study

# Snakemake read the config files with YAML 1.1 (`1e-3` is a string there, a duplicate key
# keeps its last value): ssmflow reads them again before validating (snakemake_config)
try:
    VALID = ssm_config.validate(ssm_config.snakemake_config(config, workflow.configfiles))
except ssm_config.ConfigError as err:
    raise WorkflowError(str(err)) from None

STUDIES = {name: ssm_study.get(name) for name in VALID["studies"]}
SHARDS = {name: ssm_grid.expand(VALID, name) for name in STUDIES}
for _line in (line for shards in SHARDS.values() for line in ssm_grid.split_summary(shards)):
    logger.info(f"split shard {_line}")

# Every training job fits in one job's memory (max_job_mem_mb), checked before any job
try:
    ssm_resources.check_shards(SHARDS, VALID)
except ssm_config.ConfigError as err:
    raise WorkflowError(str(err)) from None
JOB_MEM_LIMIT_MB = ssm_resources.job_mem_limit_mb(VALID)


def data_store(study, exp):
    """The path of an experiment's data store (`exp` may be the wildcard pattern "{exp}")."""
    return f"results/{study}/{exp}/data.zarr"


def checks_file(study):
    """The path of a study's identity checks, which gate its training jobs."""
    return f"results/{study}/checks.json"


def shard_store(study, exp, shard):
    """The path of a training shard's store (`exp`, `shard` may be wildcard patterns)."""
    return f"results/{study}/{exp}/shards/{shard}.zarr"


def code(study, *parts):
    """The package files a rule's command runs: the static import closure of the CLI and of
    the study's stage modules `parts` (so a figure edit redraws figures and never retrains)."""
    modules = ["ssmflow.cli", *(STUDIES[study].module_name(p) for p in parts)]
    return codedeps.workflow_paths(codedeps.closure(*modules), workflow.basedir)


def get_shard(study, exp, shard):
    """The Shard of a (study, experiment, shard name) triple."""
    for s in SHARDS[study].get(exp, []):
        if s.name == shard:
            return s
    raise WorkflowError(f"unknown shard {study}/{exp}/{shard}; the config expands to {[s.name for s in SHARDS[study].get(exp, [])]}")


def shard_spec(study):
    """params function: the JSON job spec of the shard in the wildcards."""

    def spec(wildcards):
        return json.dumps(get_shard(study, wildcards.exp, wildcards.shard).spec, sort_keys=True)

    return spec


def data_spec(study):
    """params function: the JSON spec of the data stage of the experiment in the wildcards:
    the experiment spec narrowed to what its data depends on (the study's `data_keys`), so a
    change of anything else (a learning rate, a state size) reruns no data job."""
    keys = STUDIES[study].data_keys or (lambda spec: spec)

    def spec(wildcards):
        return json.dumps(keys(ssm_grid.experiment_spec(VALID, study, wildcards.exp)), sort_keys=True)

    return spec


def data_guard(study):
    """input function: the freshness guard of the experiment's data store (ssmflow.freshness)."""

    def inputs(wildcards):
        return {"fresh": freshness.guard(data_store(study, wildcards.exp), data_spec(study)(wildcards))}

    return inputs


def study_store_guard(study, st):
    """input function: the freshness guard of a study store (ssmflow.freshness)."""

    def inputs(wildcards):
        return {"fresh": freshness.guard(f"results/{study}/{st.file}", section_spec(study, st.config_key))}

    return inputs


def section_spec(study, key):
    """The JSON of one config section of a study (the input of a study store)."""
    return json.dumps(VALID[study][key], sort_keys=True)


def train_inputs(study):
    """input function: a training job's inputs, its freshness guard (ssmflow.freshness), the
    identity checks (a gate) and the experiment's data store. Not `ancient`: Snakemake 9 then skips the job's own triggers
    (code, params) whenever the gate reruns. A data rerun means the data changed (its params
    are only what it depends on); raising seeds retrains every shard's job, which trains the
    new seeds only (ssmflow.reuse)."""
    decl = STUDIES[study]

    def inputs(wildcards):
        out = {"fresh": freshness.guard(shard_store(study, wildcards.exp, wildcards.shard),
                                        get_shard(study, wildcards.exp, wildcards.shard).spec)}
        if decl.checks:
            out["checks"] = checks_file(study)
        if decl.data:
            out["data"] = data_store(study, wildcards.exp)
        return out

    return inputs


def train_code(study):
    """The code a training job runs: the training module and, for the data it reads, the data module."""
    return code(study, *STUDIES[study].training_parts)


def train_args(study):
    """params function: the data-store argument of the training command ('' without a data stage)."""
    decl = STUDIES[study]

    def args(wildcards):
        return f"--data {data_store(study, wildcards.exp)}" if decl.data else ""

    return args


def shard_stores(study):
    """input function: every shard store of the experiment in the wildcards."""

    def stores(wildcards):
        return [shard_store(study, wildcards.exp, s.name) for s in SHARDS[study][wildcards.exp]]

    return stores


def stage_inputs(study, stage):
    """input function: the stores of the experiment in the wildcards that `stage` reads."""

    def inputs(wildcards):
        return {name: f"results/{study}/{wildcards.exp}/{ssm_study.product_file(name)}" for name in stage.reads}

    return inputs


def stage_args(stage):
    """params function: the stage command's `--input PRODUCT=PATH ... --out ... [--out-csv ...]`."""

    def args(wildcards, input, output):
        out = [f"--input {name}={input[name]}" for name in stage.reads] + [f"--out {output.zarr}"]
        out += [f"--out-csv {output.csv}"] if stage.csv else []
        out += [f"--out-html {output.html}"] if stage.csv and stage.headline else []
        return " ".join(out)

    return args


def stage_settings(study, stage):
    """params function: the stage command's `--settings JSON`, the experiment's `Stage.settings`
    value ('' for a stage without). A function of the wildcards alone: Snakemake compares such
    params with the recorded ones (the params trigger), so editing the value reruns the stage;
    it does not for a params function of the job's input or output."""

    def arg(wildcards):
        if not stage.settings:
            return ""
        value = ssm_grid.stage_settings(VALID, study, wildcards.exp, stage)
        return f"--settings {shlex.quote(json.dumps(value, sort_keys=True))}"

    return arg


def gather_outputs(study):
    """The gather job's outputs: the trajectories, and the models folder where the study keeps models."""
    out = {"zarr": directory(f"results/{study}/{{exp}}/trajectories.zarr")}
    if STUDIES[study].model_template:
        out["models"] = directory(f"results/{study}/{{exp}}/{ssm_study.MODELS}")
    return out


def gather_args(wildcards, output):
    """params function: the gather command's `--models FOLDER` where it writes models."""
    return f"--models {output.models}" if "models" in output.keys() else ""


def figure_inputs(study):
    """The declared stores of every figure of a study, {figure: {key: path}}."""
    return {fig: {key: f"results/{study}/{rel}" for key, rel in stores.items()}
            for fig, stores in STUDIES[study].figures(VALID[study]).items()}


def figure_paths(study):
    """Every store the study's figures read (the input of its figure job)."""
    return sorted({path for stores in figure_inputs(study).values() for path in stores.values()})


# SLURM time limit of a training job in minutes, per attempt, for a shard that `ssmflow plan`
# has not measured (a retry gets twice as long and resumes from the job's checkpoint, so a
# time-out loses at most one checkpoint interval). Raise it for one study's training with
# the profile's set-resources (`<study>_train: {runtime: 240}`).
TRAIN_RUNTIME_MIN = 60
#: threads of a training job (the train rule's `threads`), which the plan's probes ran on
TRAIN_THREADS = 1


def train_resource(study, name):
    """resources function: `mem_mb` or `runtime` (minutes) of a training job on its attempt.

    From the shard's cached probe of `ssmflow plan` (results/.plan; the predicted peak and
    wall time with the plan's safety factors) when the plan has measured its program with
    this code and config, else the defaults: memory growing with the shard's runs
    (ssmflow.resources.train_mem_mb), TRAIN_RUNTIME_MIN. A retry asks for twice as much;
    memory is capped at the job memory limit."""

    def value(wildcards, attempt):
        spec = get_shard(study, wildcards.exp, wildcards.shard).spec
        return ssm_plan.resources_for(spec, attempt, JOB_MEM_LIMIT_MB, TRAIN_RUNTIME_MIN, TRAIN_THREADS)[name]

    return value


# Training jobs checkpoint to results/.checkpoints/<study>/<exp>/<shard>.ckpt, outside
# their directory() output (Snakemake deletes that before a job reruns), every
# `checkpoint_every_s` seconds of the config. The interval is passed as a resource, not a
# param, so changing it reruns nothing.
CHECKPOINT_EVERY_S = VALID["checkpoint_every_s"]


def stage_outputs(study, exp):
    """Every product of one experiment after gather: each stage's store (and table)."""
    out = []
    for stage in STUDIES[study].stages:
        if not stage.applies(VALID[study]["experiments"][exp]):
            continue
        out.append(f"results/{study}/{exp}/{stage.writes}.zarr")
        if stage.csv:
            out.append(f"results/{study}/{exp}/{stage.writes}.csv")
            if stage.headline:
                out.append(f"results/{study}/{exp}/{stage.writes}.html")
    return out


def final_outputs():
    """The default targets: per enabled study, every stage's products, its study stores and figures."""
    out = []
    for study, decl in STUDIES.items():
        for exp in VALID[study]["experiments"]:
            out += stage_outputs(study, exp) or [f"results/{study}/{exp}/trajectories.zarr"]
        out += [f"results/{study}/{st.file}" for st in decl.study_stores]
        out += [f"results/{study}/figures/{fig}.png" for fig in figure_inputs(study)]
    return out
