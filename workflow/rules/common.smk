# Shared helpers: config validation (before any job), grid expansion, the package
# source each study depends on (so editing a study's code reruns that study only).
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from ssmflow import config as ssm_config
from ssmflow import grid as ssm_grid
from ssmflow.studies import dynamics as dyn

try:
    VALID = ssm_config.validate(config)
except ssm_config.ConfigError as err:
    raise WorkflowError(str(err)) from None

SHARDS = {study: ssm_grid.expand(VALID, study) for study in VALID["studies"]}

SPINE = ["__init__.py", "_types.py", "cli.py", "config.py", "grid.py", "store.py", "train.py", "plots.py"]



# Studies built on the shared SSM core: their jobs also rerun when src/ssmflow/ssm/ changes.
SSM_STUDIES = ("s4d", "icl", "freqbias")


def pkg_src(study):
    """The package files a study's jobs run: the spine, studies/<study>/ and, for SSM_STUDIES, ssm/."""
    spine = [f"src/ssmflow/{name}" for name in SPINE if Path(f"src/ssmflow/{name}").exists()]
    own = sorted(str(p) for p in Path(f"src/ssmflow/studies/{study}").rglob("*.py"))
    core = sorted(str(p) for p in Path("src/ssmflow/ssm").rglob("*.py")) if study in SSM_STUDIES else []
    return spine + ["src/ssmflow/studies/__init__.py"] + core + own


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


def shard_stores(study):
    """input function: every shard store of the experiment in the wildcards."""

    def stores(wildcards):
        return [f"results/{study}/{wildcards.exp}/shards/{s.name}.zarr" for s in SHARDS[study][wildcards.exp]]

    return stores


def train_mem_mb(study):
    """resources function: memory of a training job, grown with its number of runs."""

    def mem(wildcards, attempt):
        spec = get_shard(study, wildcards.exp, wildcards.shard).spec
        n_runs = spec["common"].get("seeds", 1)
        for values in spec["axes"].values():
            n_runs *= len(values)
        return (1500 + 20 * n_runs) * attempt

    return mem


# SLURM time limit of a training job in minutes, per attempt (a retry gets twice as long
# and resumes from the job's checkpoint, so a time-out loses at most one checkpoint
# interval). A documented constant: a shard's cost is not known before it is planned.
# Every dynamics shard of config/paper.yaml trains in under 5 min on one CPU core; raise
# it for a study's training with the profile's set-resources (e.g. runtime 240).
TRAIN_RUNTIME_MIN = 60


def train_runtime(wildcards, attempt):
    """resources function: the SLURM time limit (minutes) of a training job."""
    return TRAIN_RUNTIME_MIN * attempt


# Training jobs checkpoint to results/.checkpoints/<study>/<exp>/<shard>.ckpt, outside
# their directory() output (Snakemake deletes that before a job reruns), every
# `checkpoint_every_s` seconds of the config. The interval is passed as a resource, not a
# param, so changing it reruns nothing:
#   resources: checkpoint_every_s=CHECKPOINT_EVERY_S
#   shell: "ssmflow train ... --checkpoint PATH --checkpoint-every {resources.checkpoint_every_s}"
CHECKPOINT_EVERY_S = VALID["checkpoint_every_s"]


def final_outputs():
    """The default targets: per study, its stores, metrics and figures."""
    out = []
    if "dynamics" in SHARDS:
        out += dynamics_outputs()
    if "icl" in SHARDS:
        out += icl_outputs()
    if "s4d" in SHARDS:
        out += s4d_outputs()
    if "freqbias" in SHARDS:
        out += freqbias_outputs()
    return out


def dynamics_figure_inputs(wildcards):
    """input function: trajectories, theory and metrics of the experiments a figure reads."""
    exps = dyn.figure_inputs(VALID["dynamics"]["experiments"])[wildcards.fig]
    return {
        f"{kind}_{e}": f"results/dynamics/{e}/{name}"
        for e in exps
        for kind, name in (("traj", "trajectories.zarr"), ("theory", "theory.zarr"), ("metrics", "metrics.csv"))
    }


def dynamics_outputs():
    """Every final output of the dynamics study for the configured experiments."""
    exps = list(VALID["dynamics"]["experiments"])
    figs = dyn.figure_inputs(exps)
    return (
        [f"results/dynamics/{e}/metrics.csv" for e in exps]
        + [f"results/dynamics/figures/{f}.png" for f in figs]
    )


# --- s4d ----------------------------------------------------------------------------
from ssmflow.studies import s4d as s4d_study


def s4d_shard_spec(wildcards):
    """params function: the JSON job spec of an s4d shard, without the sections training
    does not read (the kernel-limit settings), so editing those reruns no training."""
    spec = get_shard("s4d", wildcards.exp, wildcards.shard).spec
    return json.dumps(s4d_study.training_spec(spec), sort_keys=True)


def s4d_kernel_limit_spec(wildcards):
    """params function: the s4d.kernel_limit config section as JSON."""
    return json.dumps(VALID["s4d"]["kernel_limit"], sort_keys=True)


def s4d_figure_inputs(wildcards):
    """input function: the stores an s4d figure reads (trajectories + metrics, or the kernel limit)."""
    exps = s4d_study.figure_inputs(VALID["s4d"]["experiments"])[wildcards.fig]
    if s4d_study.FIGURES[wildcards.fig] == "limit":
        return {"limit": "results/s4d/legs_convergence.zarr"}
    return {f"{kind}_{e}": f"results/s4d/{e}/{name}" for e in exps
            for kind, name in (("traj", "trajectories.zarr"), ("metrics", "metrics.csv"))}


def s4d_outputs():
    """Every final output of the s4d study: metrics per experiment, the kernel limit, figures."""
    exps = list(VALID["s4d"]["experiments"])
    return (
        [f"results/s4d/{e}/metrics.csv" for e in exps]
        + ["results/s4d/legs_convergence.zarr"]
        + [f"results/s4d/figures/{f}.png" for f in s4d_study.figure_inputs(exps)]
    )


from ssmflow.studies import icl as icl_study


def icl_figure_inputs(wildcards):
    """input function: trajectories and theory of the experiment an icl figure (<figure>_<exp>) reads."""
    exps = icl_study.figure_inputs(VALID["icl"]["experiments"])[wildcards.fig]
    return {f"{kind}_{e}": f"results/icl/{e}/{name}" for e in exps
            for kind, name in (("traj", "trajectories.zarr"), ("theory", "theory.zarr"))}


def icl_outputs():
    """Every final output of the icl study: metrics per experiment and figures."""
    exps = VALID["icl"]["experiments"]
    return [f"results/icl/{e}/metrics.csv" for e in exps] + [f"results/icl/figures/{f}.png" for f in icl_study.figure_inputs(exps)]


from ssmflow.studies import freqbias as freqbias_study


def freqbias_theory_spec(wildcards):
    """params function: the freqbias.theory config section as JSON (theory and atlas stores)."""
    return json.dumps(VALID["freqbias"]["theory"], sort_keys=True)


def freqbias_figure_inputs(wildcards):
    """input function: the stores a freqbias figure reads (theory + atlas, or an experiment's trajectories + metrics)."""
    if freqbias_study.FIGURES[wildcards.fig] == "theory":
        return {"theory": "results/freqbias/theory.zarr", "transfer": "results/freqbias/transfer.zarr"}
    exps = freqbias_study.figure_inputs(VALID["freqbias"]["experiments"])[wildcards.fig]
    return {f"{kind}_{e}": f"results/freqbias/{e}/{name}" for e in exps
            for kind, name in (("traj", "trajectories.zarr"), ("metrics", "metrics.csv"), ("transfer", "transfer.zarr"))}


def freqbias_outputs():
    """Every final output of the freqbias study: theory and atlas stores, metrics and trained transfer per experiment, figures."""
    exps = VALID["freqbias"]["experiments"]
    return (
        ["results/freqbias/theory.zarr", "results/freqbias/transfer.zarr"]
        + [f"results/freqbias/{e}/{name}" for e in exps for name in ("metrics.csv", "transfer.zarr")]
        + [f"results/freqbias/figures/{f}.png" for f in freqbias_study.figure_inputs(exps)]
    )
