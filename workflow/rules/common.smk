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



def pkg_src(study):
    """The package files a study's jobs run: the spine plus studies/<study>/."""
    spine = [f"src/ssmflow/{name}" for name in SPINE if Path(f"src/ssmflow/{name}").exists()]
    own = sorted(str(p) for p in Path(f"src/ssmflow/studies/{study}").rglob("*.py"))
    return spine + ["src/ssmflow/studies/__init__.py"] + own


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


def final_outputs():
    """The default targets: per study, its stores, metrics and figures."""
    out = []
    if "dynamics" in SHARDS:
        out += dynamics_outputs()
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
