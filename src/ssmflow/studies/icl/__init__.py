"""The `icl` study: SSMs that learn in context by gradient descent (Sushma et al. 2024).

This module is light (no JAX import): it names the grid axes, holds the checks of a
config's icl section that combine several keys (every allowed value is in `schema.yaml`),
and maps figures to the experiments they read.

Experiment kinds: `gdssm` (GD-SSM with K blocks on linear tasks: spec E1-E4, E6; with an
`ood` block, its trained models are also evaluated under distribution shift: E8),
`baselines` (LSA, LTI SSM and the GD-SSM ablations: E5) and `sine` (the non-linear
extension: E7).
"""

from __future__ import annotations

from pathlib import Path


from ssmflow.study import Stage, Study, experiment_inputs

SCHEMA = Path(__file__).with_name("schema.yaml")


#: the axes each experiment kind takes, in store order (run dims of the trajectories). The
#: schema (`$defs.<kind>.properties.axes`) states which axes each kind allows and requires;
#: tests/test_schema.py checks that the two agree. This order is code (it shapes the stores),
#: so it lives in Python, where the rules' code inputs see it.
KIND_AXES = {
    "gdssm": ("d", "n_context", "blocks"),
    "baselines": ("model", "d", "n_context"),
    "sine": ("embed", "sine_draw", "n_context"),
}
#: axes that change shapes or code paths: one job (shard) per combination; seeds are vmapped
SHARD_AXES = ("model", "embed", "sine_draw", "d", "n_context", "blocks")
#: canonical run dims of the stores; seed is added by the job
RUN_DIMS = SHARD_AXES
#: categorical run dims, stored as readable string labels
CATEGORICAL = ("model", "embed", "sine_draw")
#: dims each chunk holds whole (a run's trajectory is one chunk); other dims are chunked by 1
WHOLE_DIMS = ("step", "seed", "sublayer", "row", "col")
#: ragged dims: shards with fewer entries are NaN-padded when gathered
PAD_DIMS = ("sublayer", "row", "col")


def check_config(cfg: dict) -> list[str]:
    """Messages for every cross-key problem in the `icl` section (empty if fine).

    The section is schema-valid and complete; each kind's axes and values are in the schema.
    """
    msgs = []
    if cfg["eval_every"] > cfg["steps"]:
        msgs.append(f"config key icl.eval_every: got {cfg['eval_every']}; allowed: at most icl.steps (={cfg['steps']}).")
    if cfg["steps"] % cfg["chunk_steps"]:
        msgs.append(f"config key icl.chunk_steps: got {cfg['chunk_steps']}; allowed: a divisor of icl.steps (={cfg['steps']}).")
    for name, exp in cfg["experiments"].items():
        where = f"icl.experiments.{name}"
        blocks = exp["axes"].get("blocks", [1])
        if max(blocks) > cfg["max_gd_steps"]:
            msgs.append(f"config key {where}.axes.blocks: got {blocks}; allowed: blocks <= icl.max_gd_steps (={cfg['max_gd_steps']}).")
    return msgs


#: figure -> the experiments it is drawn for: F1-F4 every gdssm experiment (F3 only at a
#: single (d, N)), F5 gdssm sweeps over d or N, F6 baselines, F7 sine. One PNG per
#: (figure, experiment), named `<figure>_<experiment>`.
FIGURES = {"F1": "gdssm", "F2": "gdssm", "F3": "point", "F4": "gdssm", "F5": "sweep", "F6": "baselines", "F7": "sine",
           "F8": "ood"}
#: the stores each figure reads besides the experiment's trajectories and theory
FIGURE_EXTRA = {"F8": ("ood",)}


def draws(figure: str, exp: dict) -> bool:
    """Whether `figure` is drawn for an experiment config (its `kind` and `axes`; F8 where the
    experiment configures the `ood` stage, E8)."""
    what, kind, axes = FIGURES[figure], exp["kind"], exp["axes"]
    if what in ("gdssm", "baselines", "sine"):
        return kind == what
    if what == "ood":
        return kind == "gdssm" and "ood" in exp
    sweep = len(axes.get("d", [])) > 1 or len(axes.get("n_context", [])) > 1
    return kind == "gdssm" and (sweep if what == "sweep" else not sweep)


def figure_inputs(experiments: dict) -> dict[str, list[str]]:
    """The figures a config draws, `<figure>_<experiment>` -> [experiment]."""
    return {f"{fig}_{name}": [name] for name, exp in experiments.items() for fig in FIGURES if draws(fig, exp)}


def figures(section: dict) -> dict[str, dict[str, str]]:
    """Every figure of the config's icl section with the stores it reads."""
    return {
        fig: {k: v for e in exps
              for k, v in experiment_inputs("icl", e, ("trajectories", "theory", *FIGURE_EXTRA.get(fig.split("_")[0], ()))).items()}
        for fig, exps in figure_inputs(section["experiments"]).items()
    }


STUDY = Study(
    name="icl",
    package=__name__,
    schema=SCHEMA,
    shard_axes=SHARD_AXES,
    run_dims=RUN_DIMS,
    categorical=CATEGORICAL,
    whole_dims=WHOLE_DIMS,
    pad_dims=PAD_DIMS,
    stages=(
        # GD references (closed forms, Monte Carlo, eval-set polynomials, constructed parameters, exactness errors)
        Stage("theory", "reference", "theory_dataset", reads=("trajectories",), writes="theory", precision_from_input=True),
        Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories", "theory"), writes="metrics", csv=True,
              headline=("final_loss", "loss_ratio", "loss_ratio_ps", "zero_ratio", "prior_ratio", "model_cos", "align_wq", "diverged")),
        # E8: the trained models under distribution shift (experiments with an `ood` block; no training)
        Stage("ood", "ood", "ood_dataset", reads=("theory", "models"), writes="ood", settings="ood"),
    ),
    model_template="model_template",  # job.model_template: trained models are kept (ssmflow.models)
    figures=figures,
    check_config=check_config,
    data="data",  # data.data_dataset: results/<study>/<exp>/data.zarr, read by training
)
