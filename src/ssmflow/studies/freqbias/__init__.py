"""The `freqbias` study: tuning the frequency bias of SSMs (Yu et al. 2025).

This module is light (no JAX import): it names the grid axes, checks a config's freqbias
section beyond what the JSON schema can say, and lists the figures.

Experiment kinds: `waves` (regress the amplitudes of four cosines, X2) and `denoise`
(stripe denoising of bundled images, X3). A waves shard is one Sobolev filter preset;
alpha, beta and the seeds are batched inside the job (they change no shapes). A denoise
experiment is one shard (alpha presets x beta x seeds). The theory store (X1) and the
transfer-function atlas (every init x alpha) need no training.
"""

from __future__ import annotations

from pathlib import Path

from ssmflow.study import Stage, Study, StudyStore, experiment_inputs
from ssmflow.studies.freqbias.geometry import ALPHA_PRESETS, top_mode_omega

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
#: filters a waves experiment may train with: `ssm.sobolev.PRESETS`, the upstream emulation, and `band`
#: (w = (1 + |s|/s_0)^beta with the experiment's own scale `filter_s0` in rad/unit, e.g. inside the waves' band)
WAVE_FILTERS = ("paper", "upstream-waves", "upstream-emul", "band")


def _check_alpha(where: str, alphas, kind: str) -> list[str]:
    msgs = []
    for i, a in enumerate(alphas):
        ok = (isinstance(a, int | float) and not isinstance(a, bool) and a > 0) or (kind == "denoise" and a in ALPHA_PRESETS)
        if not ok:
            allowed = f"a preset name {list(ALPHA_PRESETS)}" if kind == "denoise" else "a number > 0"
            msgs.append(f"config key {where}.axes.alpha[{i}]: got {a!r}; allowed: {allowed}.")
    return msgs


def check_config(cfg: dict) -> list[str]:
    """Messages for every cross-key problem in the `freqbias` section (empty if fine)."""
    msgs = []
    for i, a in enumerate(cfg["theory"]["alpha"]):
        top = a * 3.141592653589793 * (cfg["theory"]["state_size"] // 2 - 1) * cfg["theory"]["step"]
        if top >= 3.141592653589793:
            msgs.append(f"config key freqbias.theory.alpha[{i}]: got {a}; allowed: alpha pi (N/2 - 1) Delta < pi "
                        f"(no aliasing, eq. 9; here {top:.3g} rad/sample).")
    for name, exp in cfg["experiments"].items():
        where = f"freqbias.experiments.{name}"
        kind, axes = exp["kind"], exp["axes"]
        if kind == "waves":
            if "alpha" not in axes or "beta" not in axes:
                msgs.append(f"config key {where}.axes: got {sorted(axes)}; required: alpha and beta (filter optional).")
                continue
            msgs += _check_alpha(where, axes["alpha"], kind)
            for i, m in enumerate(exp["cycles"]):
                if not 0 < m < exp["length"] / 2:
                    msgs.append(f"config key {where}.cycles[{i}]: got {m}; allowed: whole cycles per window 0 < m < "
                                f"length/2 = {exp['length'] / 2:g} (below Nyquist of the sequence).")
            for i, f in enumerate(axes.get("filter", [])):
                if f not in WAVE_FILTERS:
                    msgs.append(f"config key {where}.axes.filter[{i}]: got {f!r}; allowed: one of {list(WAVE_FILTERS)}.")
            s0 = exp.get("filter_s0")
            if "band" in axes.get("filter", []) or s0 is not None:
                if not (isinstance(s0, int | float) and not isinstance(s0, bool) and s0 > 0):
                    msgs.append(f"config key {where}.filter_s0: got {s0!r}; allowed: a number > 0 (the scale s_0 of the "
                                "`band` filter in rad/unit, w = (1 + |s|/s_0)^beta; required with filter band).")
        else:
            if "alpha" not in axes or "beta" not in axes:
                msgs.append(f"config key {where}.axes: got {sorted(axes)}; required: alpha and beta.")
                continue
            if "filter" in axes:
                msgs.append(f"config key {where}.axes.filter: got {axes['filter']}; allowed: none (denoise uses `filter`).")
            msgs += _check_alpha(where, axes["alpha"], kind)
            for i, a in enumerate(axes["alpha"]):
                if a in ALPHA_PRESETS and top_mode_omega(a, exp["cols"], exp["state_size"]) >= 3.141592653589793:
                    msgs.append(f"config key {where}.axes.alpha[{i}]: got {a!r} with cols={exp['cols']}, state_size="
                                f"{exp['state_size']}; allowed: a preset whose top mode stays below Nyquist (pi).")
            if not set(exp["sources"]) <= {"faces", "natural"} or not exp["sources"]:
                msgs.append(f"config key {where}.sources: got {exp['sources']}; allowed: a non-empty subset of ['faces', 'natural'].")
        pairs = exp.get("pairs")
        if pairs:
            for i, p in enumerate(pairs):
                if len(p) != 2 or p[0] not in axes.get("alpha", []) or p[1] not in axes.get("beta", []):
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
        Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories",), writes="metrics", csv=True),
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
)
