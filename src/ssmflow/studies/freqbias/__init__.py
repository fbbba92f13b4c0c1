"""The `freqbias` study: tuning the frequency bias of SSMs (Yu et al. 2025).

This module is light (no JAX import): it names the grid axes, holds the checks of a
config's freqbias section that combine several keys (every allowed value, and each kind's
keys, are in `schema.yaml`), and lists the figures.

Experiment kinds: `waves` (regress the amplitudes of four cosines, X2) and `denoise`
(stripe denoising of bundled images, X3). A waves shard is one Sobolev filter preset;
alpha, beta and the seeds are batched inside the job (they change no shapes). A denoise
experiment is one shard (alpha presets x beta x seeds). The theory store (X1) and the
transfer-function atlas (every init x alpha) need no training.
"""

from __future__ import annotations

import math
from pathlib import Path

from ssmflow.study import Stage, Study, StudyStore, experiment_inputs
from ssmflow.studies.freqbias.geometry import top_mode_omega

#: axes that change shapes or code paths: one job (shard) per combination
SHARD_AXES = ("filter",)
#: canonical run dims of the trajectory stores; seed is added by the job
RUN_DIMS = ("variant", "filter", "alpha", "beta")
#: categorical run dims, stored as readable string labels
CATEGORICAL = ("variant", "filter")
#: dims each chunk holds whole (a run's trajectory is one chunk); other dims are chunked by 1
WHOLE_DIMS = ("step", "seed", "wave", "channel", "mode", "noise", "source", "phase", "stripe", "example", "row", "col",
              "omega", "s", "f", "draw", "cutoff", "omega0")
#: ragged dims: shards with fewer entries are NaN-padded when gathered
PAD_DIMS = ()
#: faces in scikit-image's lfw_subset() (images 0-99; studies/freqbias/denoise.py N_FACES)
N_FACES = 100


def check_config(cfg: dict) -> list[str]:
    """Messages for every cross-key problem in the `freqbias` section (empty if fine).

    The section is schema-valid and complete: each kind's keys, the value lists (filters,
    alpha presets, image sets, images) and single-key ranges are in the schema.
    """
    msgs = []
    th = cfg["theory"]
    for i, a in enumerate(th["alpha"]):
        top = a * math.pi * (th["state_size"] // 2 - 1) * th["step"]
        if top >= math.pi:
            msgs.append(f"config key freqbias.theory.alpha[{i}]: got {a}; allowed: alpha pi (N/2 - 1) Delta < pi "
                        f"(no aliasing, eq. 9; here {top:.3g} rad/sample).")
    for name, exp in cfg["experiments"].items():
        where = f"freqbias.experiments.{name}"
        axes = exp["axes"]
        if exp["kind"] == "waves":
            for i, m in enumerate(exp["cycles"]):
                if not m < exp["length"] / 2:
                    msgs.append(f"config key {where}.cycles[{i}]: got {m}; allowed: whole cycles per window 0 < m < "
                                f"length/2 = {exp['length'] / 2:g} (below Nyquist of the sequence).")
            if "band" in axes.get("filter", []) and exp.get("filter_s0") is None:
                msgs.append(f"config key {where}.filter_s0: got {exp.get('filter_s0')!r}; allowed: a number > 0 (the scale "
                            "s_0 of the `band` filter in rad/unit, w = (1 + |s|/s_0)^beta; required with filter band).")
        else:
            for i, a in enumerate(axes["alpha"]):
                if top_mode_omega(a, exp["cols"], exp["state_size"]) >= math.pi:
                    msgs.append(f"config key {where}.axes.alpha[{i}]: got {a!r} with cols={exp['cols']}, state_size="
                                f"{exp['state_size']}; allowed: a preset whose top mode stays below Nyquist (pi).")
            if "faces" in exp["sources"] and exp["faces_train"] + exp["faces_test"] > N_FACES:
                msgs.append(f"config key {where}.faces_test: got {exp['faces_test']} with faces_train={exp['faces_train']}; "
                            f"allowed: faces_train + faces_test <= {N_FACES} (the faces of lfw_subset).")
        for i, p in enumerate(exp.get("pairs") or []):
            if p[0] not in axes["alpha"] or p[1] not in axes["beta"]:
                msgs.append(f"config key {where}.pairs[{i}]: got {p}; allowed: [alpha, beta] with values from the axes.")
    return msgs


#: figure name -> what it reads: "theory" (theory.zarr + transfer.zarr), "waves" or "denoise" (those experiments)
FIGURES = {"band": "theory", "locality": "theory", "waves_error": "waves", "waves_curves": "waves", "waves_modes": "waves",
           "denoise_examples": "denoise", "denoise_error": "denoise", "denoise_response": "denoise"}


def figure_inputs(experiments: dict) -> dict[str, list[str]]:
    """The figures a config draws, each with the experiments whose stores it reads (theory figures: none)."""
    out = {}
    for fig, what in FIGURES.items():
        exps = [name for name, exp in experiments.items() if exp["kind"] == what]
        if what == "theory" or exps:
            out[fig] = exps
    return out


def figures(section: dict) -> dict[str, dict[str, str]]:
    """Every figure of the config's freqbias section with the stores it reads."""
    out = {}
    for fig, exps in figure_inputs(section["experiments"]).items():
        if FIGURES[fig] == "theory":
            out[fig] = {"theory": "theory.zarr", "atlas": "transfer.zarr"}
        else:
            out[fig] = {k: v for e in exps for k, v in experiment_inputs("freqbias", e, ("trajectories", "metrics_csv", "transfer")).items()}
    return out


STUDY = Study(
    name="freqbias",
    package=__name__,
    schema=Path(__file__).with_name("schema.yaml"),
    shard_axes=SHARD_AXES,
    run_dims=RUN_DIMS,
    categorical=CATEGORICAL,
    whole_dims=WHOLE_DIMS,
    pad_dims=PAD_DIMS,
    stages=(
        # per-run metrics and the expectations E1 (waves) and E3 (denoising)
        Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories",), writes="metrics", csv=True,
              headline=("test_mae", "e2_below_wave3", "mse_out", "transmission", "removes_vertical", "diverged")),
        # transfer functions of the trained models (eq. 3 on the stored eigenvalues and C, init and final)
        Stage("transfer", "reference", "theory_dataset", reads=("trajectories",), writes="transfer"),
    ),
    # X1 theory (band, gradient locality, TV bound, filter weights) and the atlas |G| of every init x alpha
    study_stores=(
        StudyStore("theory", "theory.zarr", "theory", "theory_dataset", config_key="theory"),
        StudyStore("atlas", "transfer.zarr", "theory", "atlas_dataset", config_key="theory"),
    ),
    figures=figures,
    check_config=check_config,
    model_template="model_template",  # job.model_template: trained models are kept (ssmflow.models)
    data="data",  # data.data_dataset: results/<study>/<exp>/data.zarr, read by training
)
