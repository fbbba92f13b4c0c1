"""The `dynamics` study: learning dynamics of linear SSMs (Smekal et al. 2024).

This module is light (no JAX import): it names the grid axes and holds the checks of a
config's dynamics section that combine several keys; every allowed value is in `schema.yaml`.
"""

from __future__ import annotations

from pathlib import Path

from ssmflow.study import Stage, Study, experiment_inputs, select_spec

#: axes that change shapes or code paths: one job (shard) per combination
SHARD_AXES = ("N", "param", "depth", "conv")
#: canonical run dims of the stores (spec section 5); seed is added by the job
RUN_DIMS = ("N", "a", "spread", "rho", "conv", "p0", "balance", "param", "init_norm", "depth", "kappa", "a0")
#: categorical run dims, stored as readable string labels
CATEGORICAL = ("spread", "conv", "param", "init_norm")
#: dims each chunk holds whole (a run's trajectory is one chunk); other dims are chunked by 1
WHOLE_DIMS = ("step", "state", "state2", "seed", "layer")
#: ragged dims: shards with fewer entries are NaN-padded when gathered
PAD_DIMS = ("state", "state2", "layer")


def check_config(cfg: dict) -> list[str]:
    """Messages for every cross-key problem in the `dynamics` section (empty if fine).

    The section is schema-valid and complete; what one kind allows (trained_a: N = [1],
    depth = [1], lr_mode fixed) is in the schema.
    """
    msgs = []
    for name, exp in cfg["experiments"].items():
        where = f"dynamics.experiments.{name}"
        ax = exp["axes"]
        t_min, t_max = exp["t_record"]
        if not t_min < t_max:
            msgs.append(f"config key {where}.t_record: got {exp['t_record']}; allowed: [t_min, t_max] with t_min < t_max.")
        if max(ax["depth"]) > 1 and ax["N"] != [1]:
            msgs.append(f"config key {where}.axes.N: got {ax['N']}; allowed: [1] when depth > 1 (stacked layers have one state each).")
        if exp["lr_mode"] == "kappa" and max(ax["depth"]) > 1:
            msgs.append(f"config key {where}.lr_mode: got 'kappa' with depth={ax['depth']}; allowed: 'fixed' when depth > 1 (no closed-form rate).")
        if exp["lr_mode"] == "fixed" and len(ax["kappa"]) != 1:
            msgs.append(f"config key {where}.axes.kappa: got {ax['kappa']}; allowed: a single learning rate when lr_mode is 'fixed'.")
        if "realizable" in ax["spread"] and ax["N"] != [1]:
            msgs.append(f"config key {where}.axes.spread: got 'realizable' with N={ax['N']}; allowed: N = [1].")
        if "causal" in ax["conv"] and max(ax["depth"]) > 1:
            msgs.append(f"config key {where}.axes.conv: got 'causal' with depth > 1; allowed: 'circular' for stacks.")
    return msgs


#: figure name -> experiments it reads (the first one must be in the config)
FIGURES = {"F1": ("F1", "F1c"), "F2": ("F2",), "F3": ("F3",), "F3fixed": ("F3fixed",), "F4": ("F4",), "F5": ("F5",)}


def figure_inputs(experiments) -> dict[str, list[str]]:
    """The figures a config can draw, each with the configured experiments it reads."""
    return {fig: [e for e in exps if e in experiments] for fig, exps in FIGURES.items() if exps[0] in experiments}


def figures(section: dict) -> dict[str, dict[str, str]]:
    """Every figure of the config's dynamics section with the stores it reads."""
    return {
        fig: {k: v for e in exps for k, v in experiment_inputs("dynamics", e, ("trajectories", "theory", "metrics_csv")).items()}
        for fig, exps in figure_inputs(section["experiments"]).items()
    }


def data_keys(spec: dict) -> dict:
    """What an experiment's data store depends on: the rows (rho, conv, seeds) and the generator."""
    return select_spec(spec, axes=("rho", "conv"), common=("precision", "seeds", "data", "teacher"))


STUDY = Study(
    name="dynamics",
    package=__name__,
    schema=Path(__file__).with_name("schema.yaml"),
    shard_axes=SHARD_AXES,
    run_dims=RUN_DIMS,
    categorical=CATEGORICAL,
    whole_dims=WHOLE_DIMS,
    pad_dims=PAD_DIMS,
    stages=(
        Stage("theory", "reference", "theory_dataset", reads=("trajectories",), writes="theory", precision_from_input=True),
        Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories", "theory"), writes="metrics", csv=True,
              headline=("t_half_rel_err", "t_90_rel_err", "max_rel_err_p", "max_rel_err_map", "final_rel_gap", "diverged")),
    ),
    figures=figures,
    check_config=check_config,
    model_template="model_template",  # job.model_template: trained models are kept (ssmflow.models)
    data="data",
    data_keys=data_keys,  # the teacher sequences of every (rho, conv, seed), results/dynamics/<exp>/data.zarr
)
