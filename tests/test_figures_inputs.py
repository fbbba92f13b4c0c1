"""Figures read only their declared inputs (issue 10, item 6).

Each study's `make_figure(name, inputs, out)` draws from the `FigureInputs` its rule passes
in: a store left in the results folder by an experiment that is not declared (say, one
removed from the config) is not drawn, and reading a store that was not declared is a
KeyError naming the declared ones. The stores here are small synthetic Datasets with the
variables, dims and attrs the figures read (the real ones come from training).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ssmflow import store
from ssmflow.study import FigureInputs, get

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def declared(study: str, experiments: dict, figure: str, root: Path) -> FigureInputs:
    """The inputs the study declares for `figure` given a config's experiments, under `root`."""
    decl = get(study).figures({"experiments": experiments})[figure]
    return FigureInputs({k: root / v for k, v in decl.items()})


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


# --- s4d ----------------------------------------------------------------------------------------


def s4d_trajectories(task: str, ns=(4, 8), inits=("legs", "lin"), discs=("zoh", "bilinear")) -> xr.Dataset:
    """An s4d trajectory store's shape: init x disc x N x seed x step (x layer x channel x mode)."""
    seeds, steps, layers, channels, modes = 2, 3, 1, 2, max(ns) // 2
    run = (len(inits), len(discs), len(ns), seeds)
    lam_re = -np.abs(RNG.normal(size=(*run, steps, layers, channels, modes))) - 0.1
    lam_im = np.abs(RNG.normal(size=lam_re.shape)) * 3
    for i, n in enumerate(ns):  # modes beyond N/2 are padding
        lam_re[:, :, i, ..., n // 2:] = np.nan
        lam_im[:, :, i, ..., n // 2:] = np.nan
    dims = ("init", "disc", "N", "seed", "step", "layer", "channel", "mode")
    return xr.Dataset(
        {
            "lambda_re": (dims, lam_re),
            "lambda_im": (dims, lam_im),
            "delta": (dims[:-1], np.exp(RNG.normal(size=(*run, steps, layers, channels))) * 0.01),
            "test_metric": (dims[:4], RNG.uniform(0.2, 0.9, size=run)),
            "val_metric": (dims[:5], RNG.uniform(0.2, 0.9, size=(*run, steps))),
        },
        coords={"init": list(inits), "disc": list(discs), "N": list(ns), "seed": np.arange(seeds), "step": [0, 50, 100]},
        attrs={"task": task, "length": 64, "metric": "r2" if task == "delay" else "accuracy", "lag": 0.25},
    )


@pytest.fixture(scope="module")
def s4d_results(tmp_path_factory) -> Path:
    """results/s4d with two experiments' stores: `delay`, and `sdigits` (the stray one below)."""
    root = tmp_path_factory.mktemp("results") / "s4d"
    store.write_atomic(s4d_trajectories("delay"), root / "delay" / "trajectories.zarr")
    store.write_atomic(s4d_trajectories("sdigits", ns=(4,)), root / "sdigits" / "trajectories.zarr")
    return root


@pytest.mark.parametrize("figure", ["curves", "accuracy"])
def test_s4d_draws_one_row_per_declared_experiment_only(s4d_results, figure):
    figures = get("s4d").module("figures")

    draw = figures.DRAW[figure]
    # `sdigits` has a store in the same folder, but the config (the declaration) lists `delay` alone
    only = draw(declared("s4d", {"delay": {}}, figure, s4d_results))
    assert all(t.startswith("delay") for t in titles(only)), titles(only)
    assert len(titles(only)) == 2  # delay's two N
    both = draw(declared("s4d", {"sdigits": {}, "delay": {}}, figure, s4d_results))
    # declared (config) order: sdigits' row (one N) first, then delay's
    assert [t.split(" ")[0] for t in titles(both)] == ["sdigits", "delay", "delay"], titles(both)


def test_the_same_stores_draw_the_same_png(s4d_results, tmp_path):
    """The figure command draws a strip plot (jittered points: s4d accuracy) byte for byte
    the same from the same stores, whatever the process drew or drew at random before."""
    import json

    from ssmflow import cli

    spec = {"accuracy": {k: str(v) for k, v in declared("s4d", {"delay": {}}, "accuracy", s4d_results).items()}}
    pngs = []
    for k in range(2):
        np.random.uniform(size=k + 1)  # another draw from the global RNG in between
        out = tmp_path / f"{k}" / "accuracy.png"
        assert cli.main(["figures", "--study", "s4d", "--spec", json.dumps(spec), "--out", str(out)]) == 0
        pngs.append(out.read_bytes())
    assert pngs[0] == pngs[1]


def test_s4d_drift_and_spectra_read_declared_experiments_only(s4d_results, tmp_path):
    figures = get("s4d").module("figures")

    fig = figures.figure_drift(declared("s4d", {"delay": {}}, "drift", s4d_results))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["delay"], legend  # boxplot hue: one experiment, the stray sdigits store not among them
    spectra = figures.figure_spectra(declared("s4d", {"sdigits": {}}, "spectra", s4d_results))
    assert [t.get_text() for t in spectra.legends[0].get_texts()] == ["N = 4"]  # sdigits' N, not delay's
    out = figures.make_figure("curves", declared("s4d", {"delay": {}}, "curves", s4d_results), tmp_path / "curves.png")
    assert out.stat().st_size > 10_000


def test_s4d_undeclared_store_is_a_key_error(s4d_results, tmp_path):
    figures = get("s4d").module("figures")

    with pytest.raises(KeyError, match=r"'kernel_limit' was not declared; declared: \['metrics_csv/delay', 'trajectories/delay'\]"):
        figures.make_figure("kernel_limit", declared("s4d", {"delay": {}}, "curves", s4d_results), tmp_path / "k.png")
    with pytest.raises(ValueError, match="none were declared"):
        figures.make_figure("curves", FigureInputs({"kernel_limit": s4d_results / "legs_convergence.zarr"}), tmp_path / "c.png")


def s4d_ablation_trajectories() -> xr.Dataset:
    """An X4 store's run dims: init x disc x N x real_transform x B x seed (one shard per transform)."""
    run = (2, 1, 1, 3, 2, 3)
    dims = ("init", "disc", "N", "real_transform", "B", "seed")
    diverged = np.full(run, -1)
    diverged[0, 0, 0, 2, 0, 1] = 150  # one `none` run diverged
    return xr.Dataset(
        {"test_metric": (dims, RNG.uniform(0.2, 0.9, size=run)), "diverged_at": (dims, diverged)},
        coords={"init": ["legs", "lin"], "disc": ["zoh"], "N": [16], "real_transform": ["exp", "relu", "none"],
                "B": ["trained", "frozen"], "seed": np.arange(3)},
        attrs={"task": "tones", "length": 128, "metric": "accuracy", "lag": 0},
    )


def test_s4d_ablation_figure_reads_the_ablation_experiments_only(s4d_results, tmp_path):
    """The X4 experiment (with ablation axes) feeds F8 alone; the init x disc x N figures read the others."""
    figures = get("s4d").module("figures")
    store.write_atomic(s4d_ablation_trajectories(), s4d_results / "ablate" / "trajectories.zarr")
    exps = {"delay": {}, "ablate": {"axes": {"real_transform": ["exp", "relu", "none"], "B": ["trained", "frozen"]}}}
    decl = get("s4d").figures({"experiments": exps})
    assert set(decl["ablation"]) == {"trajectories/ablate", "metrics_csv/ablate"}
    assert all("ablate" not in k for fig, d in decl.items() if fig != "ablation" for k in d)
    assert "ablation" not in get("s4d").figures({"experiments": {"delay": {}}})  # nothing to draw, no figure
    fig = figures.figure_ablation(declared("s4d", exps, "ablation", s4d_results))
    assert [t.split(": ")[-1] for t in titles(fig)] == ["S4D-LegS", "S4D-Lin"], titles(fig)
    assert any(t.get_text() == "1 div." for ax in fig.axes for t in ax.texts)
    out = figures.make_figure("ablation", declared("s4d", exps, "ablation", s4d_results), tmp_path / "ablation.png")
    assert out.stat().st_size > 10_000


# --- freqbias -----------------------------------------------------------------------------------


def waves_trajectories(alphas=(1.0, 10.0), betas=(0.0, 1.0)) -> xr.Dataset:
    """A waves trajectory store's shape: variant x filter x alpha x beta x seed x step (x wave, channel, mode)."""
    run = (1, 1, len(alphas), len(betas), 2, 3)
    dims = ("variant", "filter", "alpha", "beta", "seed", "step")
    return xr.Dataset(
        {
            "test_mae": ((*dims, "wave"), RNG.uniform(0.01, 0.3, size=(*run, 4))),
            "lambda_im": ((*dims, "channel", "mode"), np.abs(RNG.normal(size=(*run, 2, 3))) * 50 + 1),
            "wave_freq": (("wave",), [10.0, 20.0, 40.0, 80.0]),
        },
        coords={"variant": ["lin"], "filter": ["band"], "alpha": list(alphas), "beta": list(betas), "seed": [0, 1],
                "step": [0, 500, 1000], "wave": np.arange(4)},
        attrs={"kind": "waves", "steps": 1000, "filter_s0": 30.7},
    )


@pytest.fixture(scope="module")
def freqbias_results(tmp_path_factory) -> Path:
    """results/freqbias with waves experiments `waves` and `waves_old` (stray) and a `denoise` store."""
    root = tmp_path_factory.mktemp("results") / "freqbias"
    store.write_atomic(waves_trajectories(), root / "waves" / "trajectories.zarr")
    store.write_atomic(waves_trajectories(alphas=(3.0,), betas=(-1.0,)), root / "waves_old" / "trajectories.zarr")
    store.write_atomic(xr.Dataset({"clean": (("example",), [0.0])}, attrs={"kind": "denoise"}),
                       root / "denoise" / "trajectories.zarr")
    return root


def test_freqbias_waves_error_draws_declared_experiments_only(freqbias_results):
    figures = get("freqbias").module("figures")

    exps = {"waves": {"kind": "waves"}, "denoise": {"kind": "denoise"}}
    fig = figures.figure_waves_error(declared("freqbias", exps, "waves_error", freqbias_results))
    assert len(titles(fig)) == 1 and titles(fig)[0].startswith("waves: lin"), titles(fig)  # not waves_old
    exps = {"waves_old": {"kind": "waves"}, **exps}
    fig = figures.figure_waves_error(declared("freqbias", exps, "waves_error", freqbias_results))
    assert [t.split(":")[0] for t in titles(fig)] == ["waves_old", "waves"], titles(fig)


def test_freqbias_waves_panels_take_the_first_declared_experiment(freqbias_results, tmp_path):
    figures = get("freqbias").module("figures")

    for exps, panels in (({"waves": {"kind": "waves"}}, 4), ({"waves_old": {"kind": "waves"}, "waves": {"kind": "waves"}}, 1)):
        for name in ("waves_curves", "waves_modes"):
            fig = figures.FIGURES[name](declared("freqbias", exps, name, freqbias_results))
            assert len(titles(fig)) == panels, (name, exps, titles(fig))
            assert re.split("[,:]", fig.get_suptitle())[0] == next(iter(exps)), fig.get_suptitle()
    out = figures.make_figure("waves_curves", declared("freqbias", {"waves": {"kind": "waves"}}, "waves_curves", freqbias_results),
                              tmp_path / "waves_curves.png")
    assert out.stat().st_size > 10_000


def test_freqbias_undeclared_or_mis_declared_input_is_an_error(freqbias_results, tmp_path):
    figures = get("freqbias").module("figures")

    waves = declared("freqbias", {"waves": {"kind": "waves"}}, "waves_error", freqbias_results)
    with pytest.raises(KeyError, match=r"'atlas' was not declared; declared: \['metrics_csv/waves', 'trajectories/waves', 'transfer/waves'\]"):
        figures.make_figure("band", waves, tmp_path / "band.png")
    with pytest.raises(ValueError, match="no trajectories were declared"):  # theory figures declare no trajectories
        figures.figure_denoise_error(declared("freqbias", {}, "band", freqbias_results))
    wrong = FigureInputs({"trajectories/denoise": freqbias_results / "denoise" / "trajectories.zarr"})
    with pytest.raises(ValueError, match="trajectories/denoise is a 'denoise' experiment; this figure draws 'waves'"):
        figures.figure_waves_error(wrong)


# --- dynamics -----------------------------------------------------------------------------------


def dynamics_run(p0s=(1e-4, 1e-2), kappas=(0.02,), causal=False) -> tuple[xr.Dataset, xr.Dataset, pd.DataFrame]:
    """(trajectories, theory, metrics) of an F1-like experiment: a x rho x p0 x kappa x seed x step."""
    run = (1, 1, len(p0s), len(kappas), 2)
    steps = 20
    t = np.broadcast_to(np.geomspace(1e-2, 20, steps), (*run, steps))
    p = 1 / (1 + np.exp(-(t - 2))) * (1 + 0.01 * RNG.normal(size=t.shape))
    dims = ("a", "rho", "p0", "kappa", "seed")
    coords = {"a": [0.5], "rho": [0.0], "p0": list(p0s), "kappa": list(kappas), "seed": [0, 1], "step": np.arange(steps)}
    traj = xr.Dataset({"t": ((*dims, "step"), t), "p": ((*dims, "step"), p), "p_star": (dims, np.ones(run)),
                       "t_half": (dims, np.full(run, 2.0 + causal))}, coords=coords)
    theory = xr.Dataset({"p": ((*dims, "step"), 1 / (1 + np.exp(-(t - 2))))}, coords=coords)
    metrics = traj[["t_half"]].to_dataframe().reset_index()
    metrics["max_rel_err_p"] = 3 * metrics.kappa
    metrics["max_rel_err_map"] = 1e-12
    return traj, theory, metrics


def write_dynamics(root: Path, exp: str, **kw) -> None:
    traj, theory, metrics = dynamics_run(**kw)
    store.write_atomic(traj, root / exp / "trajectories.zarr")
    store.write_atomic(theory, root / exp / "theory.zarr")
    metrics.to_csv(root / exp / "metrics.csv", index=False)


@pytest.fixture(scope="module")
def dynamics_results(tmp_path_factory) -> Path:
    """results/dynamics with F1 and F1c (the causal companion of F1)."""
    root = tmp_path_factory.mktemp("results") / "dynamics"
    write_dynamics(root, "F1")
    write_dynamics(root, "F1c", p0s=(1e-4,), causal=True)
    return root


def test_dynamics_f1_draws_the_causal_panel_only_when_f1c_is_declared(dynamics_results, tmp_path):
    figures = get("dynamics").module("figures")

    # F1c's stores are on disk (a config that dropped F1c), but not declared: no causal panel
    fig = figures.figure_f1(declared("dynamics", {"F1": {}}, "F1", dynamics_results))
    assert not any(t.startswith("F1c") for t in titles(fig)), titles(fig)
    fig = figures.figure_f1(declared("dynamics", {"F1": {}, "F1c": {}}, "F1", dynamics_results))
    assert sum(t.startswith("F1c") for t in titles(fig)) == 1, titles(fig)
    out = figures.make_figure("F1", declared("dynamics", {"F1": {}, "F1c": {}}, "F1", dynamics_results), tmp_path / "F1.png")
    assert out.stat().st_size > 10_000


def test_dynamics_undeclared_store_is_a_key_error(dynamics_results, tmp_path):
    figures = get("dynamics").module("figures")

    inputs = {k: v for k, v in declared("dynamics", {"F1": {}}, "F1", dynamics_results).items() if k != "theory/F1"}
    with pytest.raises(KeyError, match=r"'theory/F1' was not declared; declared: \['metrics_csv/F1', 'trajectories/F1'\]"):
        figures.make_figure("F1", inputs, tmp_path / "F1.png")
    assert not (tmp_path / "F1.png").exists()


def test_figures_command_draws_each_named_figure_from_its_own_inputs(dynamics_results, tmp_path):
    """`ssmflow figures` (the figure rule's command): one process, each `--out` its figure,
    each figure given only its declared stores; a name the spec does not declare is refused."""
    import json

    from ssmflow import cli

    spec = {"F1": {k: str(v) for k, v in declared("dynamics", {"F1": {}}, "F1", dynamics_results).items()}}
    assert cli.main(["figures", "--study", "dynamics", "--spec", json.dumps(spec), "--out", str(tmp_path / "F1.png")]) == 0
    assert (tmp_path / "F1.png").stat().st_size > 10_000
    spec["F1"].pop("theory/F1")  # F1's spec without a store it reads: the figure fails, nothing written
    with pytest.raises(KeyError, match="'theory/F1' was not declared"):
        cli.main(["figures", "--study", "dynamics", "--spec", json.dumps(spec), "--out", str(tmp_path / "again" / "F1.png")])
    assert not (tmp_path / "again" / "F1.png").exists()
    with pytest.raises(SystemExit, match=r"figures \['F9'\] that the spec does not declare; allowed: \['F1'\]"):
        cli.main(["figures", "--study", "dynamics", "--spec", json.dumps(spec), "--out", str(tmp_path / "F9.png")])


# --- icl ----------------------------------------------------------------------------------------


def test_icl_undeclared_experiment_is_a_key_error(tmp_path):
    figures = get("icl").module("figures")

    inputs = FigureInputs({"trajectories/E1": tmp_path / "E1/trajectories.zarr", "theory/E1": tmp_path / "E1/theory.zarr"})
    with pytest.raises(KeyError, match=r"'trajectories/E4' was not declared; declared: \['theory/E1', 'trajectories/E1'\]"):
        figures.make_figure("F1_E4", inputs, tmp_path / "F1_E4.png")


def f3fixed_run(ns=(1, 8)) -> tuple[xr.Dataset, xr.Dataset, pd.DataFrame]:
    """An F3fixed-like experiment: N x param x init_norm x seed x step, steps to 50 % / 90 % as (27) has them."""
    params, norms, seeds, steps = ["tied", "untied"], ["per_state", "total"], [0, 1], 30
    dims = ("N", "param", "init_norm", "seed")
    shape = (len(ns), 2, 2, 2)
    n = np.asarray(ns, float)[:, None, None, None]
    speed = np.where(np.array(params)[None, :, None, None] == "tied", n, 1.0)  # tied: N times fewer steps
    k_half = np.broadcast_to(2e4 / speed, shape) * (1 + 1e-3 * RNG.normal(size=shape))
    k = np.broadcast_to(np.geomspace(1, 1e5, steps), (*shape, steps))
    p = 1 / (1 + np.exp(-(k / k_half[..., None] - 1) * 5))
    coords = {"N": list(ns), "param": np.array(params, dtype=object), "init_norm": np.array(norms, dtype=object),
              "seed": seeds, "step": np.arange(steps), "a": 0.6, "p0": 1e-3}
    traj = xr.Dataset({"k": ((*dims, "step"), k), "p": ((*dims, "step"), p), "p_star": (dims, np.ones(shape)),
                       "lam": (dims, np.full(shape, 1e-4))}, coords=coords)
    theory = xr.Dataset({"p": ((*dims, "step"), p)}, coords=coords)
    metrics = xr.Dataset({"k_half": (dims, k_half), "k_half_th": (dims, np.broadcast_to(2e4 / speed, shape)),
                          "k_90": (dims, 1.3 * k_half), "k_90_th": (dims, np.broadcast_to(2.6e4 / speed, shape))},
                         coords={d: coords[d] for d in dims}).to_dataframe().reset_index()
    return traj, theory, metrics


def test_dynamics_f3fixed_draws_steps_against_n_with_the_slopes_of_27(tmp_path):
    figures = get("dynamics").module("figures")
    root = tmp_path / "dynamics"
    traj, theory, metrics = f3fixed_run()
    store.write_atomic(traj, root / "F3fixed" / "trajectories.zarr")
    store.write_atomic(theory, root / "F3fixed" / "theory.zarr")
    metrics.to_csv(root / "F3fixed" / "metrics.csv", index=False)
    fig = figures.figure_f3fixed(declared("dynamics", {"F3fixed": {}}, "F3fixed", root))
    assert [t.split(" (")[0] for t in titles(fig)] == ["steps to 50 % of $p^*$", "steps to 90 % of $p^*$", "$p/p^*$ at $N$ = 8"]
    for ax in fig.axes[:2]:
        slopes = dict(re.fullmatch(r"(\w+, \w+): slope ([+-][\d.]+)", t.get_text()).groups()
                      for t in ax.get_legend().get_texts())
        assert {k: round(float(v)) for k, v in slopes.items()} == {"tied, per_state": -1, "tied, total": -1,
                                                                   "untied, per_state": 0, "untied, total": 0}
