"""The `s4d` study: diagonal SSM parameterizations and initializations (Gu et al. 2022).

This module is light (no JAX import): it names the grid axes, holds the checks of a
config's s4d section that combine several keys (every allowed value is in `schema.yaml`),
and lists the figures.

Grid: each experiment trains one task on init x disc x N x seed. N and disc change
shapes or the compiled program, so each (N, disc) pair is one job (a shard); init only
changes initial values, so the five inits and the seeds are batched inside the job,
paired: a seed gives every init the same C, D, Delta, encoder/decoder and minibatches.
An X4 ablation experiment adds the axes `real_transform` (a job axis: it changes the
code of Re(lambda)) and `B` (trained or frozen: a per-run scale of B's updates, batched
and paired like init).
"""

from __future__ import annotations

from pathlib import Path

from ssmflow.study import Stage, Study, StudyStore, experiment_inputs, select_spec

#: axes that change shapes or code paths: one job (shard) per combination (the X4 ablation's
#: real-part transform only where an experiment gives it; B trained or frozen is a per-run
#: scale of B's updates, batched like init)
SHARD_AXES = ("N", "disc", "real_transform", "sobolev")
#: canonical run dims of the trajectory stores; seed is added by the job
RUN_DIMS = ("init", "disc", "N", "real_transform", "B", "sobolev", "alpha")
#: categorical run dims, stored as readable string labels
CATEGORICAL = ("init", "disc", "real_transform", "B", "sobolev")
#: the X4 ablation axes and the value an experiment without the axis trains
ABLATION_AXES = {"real_transform": "exp", "B": "trained"}
#: the axes of freqbias X4 (the LRA-style mechanism check, freqbias.md section 7, trained
#: on these tasks): alpha scales Im(lambda) of the init (S4D-Lin-alpha, eq. 8; batched
#: like init) and the Sobolev filter is off or learnable (a job axis: it changes the code)
LRA_AXES = {"sobolev": "off", "alpha": 1.0}
#: every optional axis with the value an experiment without it trains; batched ones change
#: initial values or update scales only, the others are shard axes
OPTION_AXES = {**ABLATION_AXES, **LRA_AXES}
BATCHED_OPTION_AXES = ("B", "alpha")
#: dims each chunk holds whole (a run's trajectory is one chunk); other dims are chunked by 1
WHOLE_DIMS = ("step", "seed", "layer", "channel", "mode")
#: ragged dims: shards with fewer entries are NaN-padded when gathered
PAD_DIMS = ("mode",)
#: the settings (config keys of an experiment) each task's fixed data depends on
DATA_SETTINGS = {"sdigits": ("image_size",), "psdigits": ("image_size",), "delay": ("length", "lag", "n_eval"),
                 "adding": ("length", "n_val", "n_test"), "tones": ("length", "n_val", "n_test")}


def check_config(cfg: dict) -> list[str]:
    """Messages for every cross-key problem in the `s4d` section (empty if fine).

    The section is schema-valid and complete (even state sizes, each task's keys and ranges are in the schema).
    """
    msgs = []
    model = cfg["model"]
    if not model["dt_min"] <= model["dt_max"]:
        msgs.append(f"config key s4d.model.dt_min: got {model['dt_min']} with dt_max={model['dt_max']}; "
                    "allowed: 0 < dt_min <= dt_max (the step range of eq. 5).")
    for name, exp in cfg["experiments"].items():
        where = f"s4d.experiments.{name}"
        if exp["steps"] < exp["record_points"]:
            msgs.append(f"config key {where}.record_points: got {exp['record_points']} with steps={exp['steps']}; "
                        "allowed: at most `steps` recording points.")
    return msgs


#: figure name -> what it reads: "traj" (the trajectories + metrics of every experiment of
#: the init x disc x N grid), "ablation" (those of every experiment with an X4 ablation axis)
#: or "limit"
FIGURES = {"spectra": "traj", "kernel_limit": "limit", "accuracy": "traj", "drift": "traj", "curves": "traj",
           "ablation": "ablation", "rate": "rate", "lra": "lra"}


def is_ablation(exp: dict) -> bool:
    """Whether an experiment's config gives an X4 ablation axis (its stores have those dims)."""
    return any(a in exp.get("axes", {}) for a in ABLATION_AXES)


def is_lra(exp: dict) -> bool:
    """Whether an experiment's config gives a freqbias-X4 axis (alpha or sobolev)."""
    return any(a in exp.get("axes", {}) for a in LRA_AXES)


def figure_inputs(experiments) -> dict[str, list[str]]:
    """The figures a config draws, each with the experiments whose stores it reads (a figure
    with no experiment to read is left out, except the kernel limit, which reads none)."""
    out = {}
    for fig, what in FIGURES.items():
        if what == "limit":
            out[fig] = []
            continue
        if what == "rate":  # F9: the experiments that evaluate their models at another rate (X5)
            exps = [e for e, exp in experiments.items() if "rate_change" in exp]
        elif what == "lra":  # freqbias G11: the experiments of freqbias X4
            exps = [e for e, exp in experiments.items() if is_lra(exp)]
        else:
            exps = [e for e, exp in experiments.items()
                    if not is_lra(exp) and is_ablation(exp) == (what == "ablation")]
        if exps:
            out[fig] = exps
    return out
def figures(section: dict) -> dict[str, dict[str, str]]:
    """Every figure of the config's s4d section with the stores it reads."""
    out = {}
    for fig, exps in figure_inputs(section["experiments"]).items():
        if FIGURES[fig] == "limit":
            out[fig] = {"kernel_limit": "legs_convergence.zarr"}
        elif FIGURES[fig] == "rate":
            out[fig] = {k: v for e in exps for k, v in experiment_inputs("s4d", e, ("rate",)).items()}
        else:
            out[fig] = {k: v for e in exps for k, v in experiment_inputs("s4d", e, ("trajectories", "metrics_csv")).items()}
    return out


def data_keys(spec: dict) -> dict:
    """What an experiment's data store depends on: the task's settings and the precision."""
    return select_spec(spec, settings=("task", *DATA_SETTINGS[spec["settings"]["task"]]), common=("precision",))


STUDY = Study(
    name="s4d",
    package=__name__,
    schema=Path(__file__).with_name("schema.yaml"),
    shard_axes=SHARD_AXES,
    run_dims=RUN_DIMS,
    categorical=CATEGORICAL,
    whole_dims=WHOLE_DIMS,
    pad_dims=PAD_DIMS,
    stages=(Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories",), writes="metrics", csv=True,
                  headline=("test_metric", "best_val_metric", "final_train_loss", "diverged")),
            # X5: the saved tones models at another sampling rate (experiments with `rate_change`; no training)
            Stage("rate", "rate", "rate_dataset", reads=("data", "models"), writes="rate", settings="rate_change")),
    model_template="model_template",  # job.model_template: trained models are kept (ssmflow.models)
    # the S4D-LegS basis against the exact LegS basis for every N of the config (float64)
    study_stores=(StudyStore("kernel_limit", "legs_convergence.zarr", "legs_limit", "convergence_store", config_key="kernel_limit",
                             whole_dims=("N", "measure", "dt", "c", "kind", "k", "t")),),
    figures=figures,
    check_config=check_config,
    data="data",
    data_keys=data_keys,  # the task data and splits, results/s4d/<exp>/data.zarr
    # ZOH and bilinear differ in a few elementwise ops on the (H, N) parameters per step,
    # against the length-L convolutions: one probe of `ssmflow plan` serves both
    probe_shared=("disc",),
)
