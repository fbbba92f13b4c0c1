"""The freqbias study through the real Snakemake workflow on the default config: stores, figures and the
acceptance effects (issue 4) on the metrics stores, 3 seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_workflow import assert_rerun_table, scheduled, scheduled_after_edit

from ssmflow import store

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def default_freqbias(default_run):
    return default_run  # the session's run of the default config (conftest.default_run)


def test_stores_and_figures(default_freqbias):
    res = default_freqbias / "results/freqbias"
    transfer = store.open_store(res / "transfer.zarr")
    assert set(transfer.init.values) == {"legs", "inv", "lin", "real", "random"} and transfer.sizes["alpha"] >= 3
    theory = store.open_store(res / "theory.zarr")
    assert (theory.centroid.diff("alpha") > 0).all()  # the spectral centroid at init rises with alpha
    traj = store.open_store(res / "waves/trajectories.zarr")
    assert {"lambda_im", "test_mae", "c_re", "d_skip"} <= set(traj.data_vars) and traj.sizes["seed"] == 3
    assert np.isfinite(traj.lambda_im).all()  # eigenvalues of every mode over training
    for exp, var in (("waves", "mag_filtered"), ("denoise", "mag")):  # trained transfer functions (init, final)
        trained = store.open_store(res / f"{exp}/transfer.zarr")
        assert list(trained.phase.values) == ["init", "final"] and np.isfinite(trained[var]).all()
    for fig in ("band", "locality", "waves_error", "waves_curves", "waves_modes", "denoise_examples", "denoise_error",
                "denoise_response"):
        assert (res / f"figures/{fig}.png").stat().st_size > 20_000, fig


def test_waves_frequency_bias_and_its_tuning(default_freqbias):
    m = store.open_store(default_freqbias / "results/freqbias/waves/metrics.zarr").load()
    assert m.sizes["seed"] == 3 and list(m.filter.values) == ["band"]  # w = (1 + |s|/30.7)^beta: a tilt across the band
    mae = m.test_mae.mean("seed").isel(variant=0, filter=0)  # seed mean, (alpha, beta, wave)
    base = mae.sel(alpha=1.0, beta=0.0).values
    assert base[3] > base[2] > base[1] and base[3] > base[0], base  # the baseline's error grows with frequency
    top = mae.isel(wave=-1)
    assert top.sel(alpha=10.0, beta=0.0) < top.sel(alpha=1.0, beta=0.0)  # a higher alpha lowers it
    assert top.sel(alpha=10.0, beta=1.0) <= 0.5 * top.sel(alpha=1.0, beta=0.0)  # spec E1
    for alpha in (1.0, 10.0):
        assert top.sel(alpha=alpha, beta=1.0) < top.sel(alpha=alpha, beta=0.0)  # a positive beta lowers it
        assert top.sel(alpha=alpha, beta=-1.0) > top.sel(alpha=alpha, beta=0.0)  # a negative beta raises it
    assert top.sel(alpha=1.0, beta=1.0) < top.sel(alpha=1.0, beta=-1.0)  # spec E1


def test_denoising_removes_one_orientation_and_the_flip_reverses_it(default_freqbias):
    res = default_freqbias / "results/freqbias/denoise"
    t = store.open_store(res / "metrics.zarr").load().transmission_mean
    h, v = t.sel(noise="horizontal"), t.sel(noise="vertical")
    assert (v.sel(alpha="raw", beta=0.0) < 0.1 * h.sel(alpha="raw", beta=0.0)).all()  # baseline removes the HF stripes
    assert (v.sel(alpha="flip", beta=0.0) > 10 * h.sel(alpha="flip", beta=0.0)).all()  # large alpha reverses it
    assert (v.sel(alpha="raw", beta=2.0) > h.sel(alpha="raw", beta=2.0)).all()  # so does a positive beta
    ratio = h / v
    assert (ratio.sel(alpha="raw", beta=-1.0) >= ratio.sel(alpha="raw", beta=0.0)).all()  # spec E3
    csv = pd.read_csv(res / "metrics.csv")
    both = csv[csv.noise.isin(["horizontal", "vertical"])]
    assert len(both.groupby(["alpha", "beta", "seed", "noise", "source"])) == 2 * 4 * 3 * 2 * 2
    assert both.mse_out.notna().all() and both.transmission.notna().all()  # both errors for every setting


def test_reruns_are_exact_to_the_stage(default_freqbias):
    assert_rerun_table(default_freqbias, "freqbias", {
        "src/ssmflow/plots.py": {"freqbias_figure"},
        "figures.py": {"freqbias_figure"},
        "evaluate.py": {"freqbias_evaluate", "freqbias_figure"},
        "reference.py": {"freqbias_transfer", "freqbias_figure"},
        "workflow/report/freqbias_figure.rst": set(),
        "config/README.md": set(),
    })


def test_editing_the_sobolev_filter_reruns_freqbias_training(default_freqbias):
    jobs = scheduled_after_edit(default_freqbias, "src/ssmflow/ssm/sobolev.py")
    assert jobs["freqbias_train"] == 2 and jobs["freqbias_checks"] == 1, jobs
    assert scheduled(default_freqbias) == {}
