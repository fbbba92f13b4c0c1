"""Smoke runs of the freqbias jobs (freqbias.md test 10): the training loss falls, nothing is NaN, the stores are labelled."""

from __future__ import annotations

import numpy as np
import pytest
from test_freqbias_config import freqbias_config

from ssmflow import config as cfgmod
from ssmflow import grid, store
from ssmflow.ssm import sobolev
from ssmflow.studies.freqbias import evaluate, job, reference, waves


@pytest.fixture(scope="module")
def shards():
    return grid.expand(cfgmod.validate(freqbias_config()), "freqbias")


def test_waves_smoke_run_reduces_the_loss(shards, tmp_path):
    ds = job.train_shard(shards["waves"][0].spec)
    loss = ds.train_loss.isel(variant=0, filter=0)
    for a, b in ((1.0, 0.0), (100.0, 1.0)):
        run = loss.sel(alpha=a, beta=b, seed=0).values
        assert np.isfinite(run).all() and run[-1] < run[0], (a, b, run)
    assert np.isnan(loss.sel(alpha=1.0, beta=1.0)).all()  # a cell not listed in `pairs` is NaN
    assert ds.lambda_im.sizes["mode"] == 4 and ds.test_mae.sizes["wave"] == 4
    assert np.isfinite(ds.test_mae.sel(alpha=100.0, beta=1.0)).all()
    metrics = evaluate.metrics_dataset(ds)
    assert float(metrics.top_mae_vs_baseline.sel(alpha=1.0, beta=0.0).squeeze()) == 1.0
    # two filters with different kappa gathered into one experiment: each keeps its own weight
    other = ds.assign_coords(filter=np.array(["band"], dtype=object), kappa=("filter", [7.0]))
    for name, part in (("a", ds), ("b", other)):
        store.write_atomic(part, tmp_path / f"{name}.zarr", whole=grid.layout("freqbias")[0])
    both = store.gather([tmp_path / "a.zarr", tmp_path / "b.zarr"], pad_dims=grid.layout("freqbias")[1]).load()
    tf = reference.waves_transfer(both)
    ratio = (tf.mag_filtered / tf.mag_kernel).sel(alpha=100.0, beta=1.0, seed=0, phase="final").isel(variant=0, channel=0)
    for name, kappa in zip(both["filter"].values, both.kappa.values, strict=True):
        np.testing.assert_allclose(ratio.sel(filter=name).values, 1 + kappa * tf.omega.values / (2 * np.pi), rtol=1e-12)


def test_the_waves_test_set_evaluated_in_blocks_gives_the_same_errors(shards, monkeypatch):
    """A paper-scale test set (10,000 sequences of L = 8192 need 26 GB at once) is evaluated
    in blocks, the last one padded and masked: the same errors to float rounding, the same
    parameters bit for bit, as the test set at once."""
    spec = shards["waves"][0].spec
    whole = job.train_shard(spec)
    n_test, length = spec["settings"]["n_test"], spec["settings"]["length"]
    monkeypatch.setattr(job, "EVAL_ELEMENTS", length * (n_test // 3 + 1))  # three blocks, the last padded
    blocked = job.train_shard(spec)
    tol = 1e-12 if spec["common"]["precision"] == "float64" else 1e-5
    for name in ("test_mae", "test_mse"):
        np.testing.assert_allclose(blocked[name].values, whole[name].values, rtol=tol, equal_nan=True, err_msg=name)
    for name in ("lambda_re", "lambda_im", "c_re", "c_im", "d_skip", "train_loss"):
        np.testing.assert_array_equal(blocked[name].values, whole[name].values, err_msg=name)


def test_denoise_smoke_run_reduces_the_loss(shards):
    ds = job.train_shard(shards["denoise"][0].spec)
    assert ds.attrs["n_train"] == 64
    for preset in ("raw", "flip"):
        run = ds.train_loss.sel(alpha=preset, beta=0.0, seed=0).values
        assert np.isfinite(run).all() and run[-1] < run[0], (preset, run)
    assert np.isfinite(ds.transmission.sel(noise=["horizontal", "vertical"])).all()
    assert (ds.c_re.isel(step=0, mode=0) == 0).all()  # eq. 20: C_0 = 0 at init
    metrics = evaluate.metrics_dataset(ds)
    assert set(metrics.tv_over_th.dims) == {"alpha", "beta", "source"}


def test_band_filter_scale_maps_to_kappa_by_eq13():
    """The `band` filter takes s_0 (rad/unit) from the experiment's `filter_s0`: kappa = 2 pi/(Delta s_0), so
    w = (1 + |s|/s_0)^beta (w = 2^beta at s = s_0); the presets keep their kappa."""
    cfg = freqbias_config()
    exp = cfg["freqbias"]["experiments"]["waves"]
    exp["axes"]["filter"], exp["filter_s0"] = ["paper", "band"], 30.7
    specs = {s.spec["axes"]["filter"][0]: s.spec for s in grid.expand(cfgmod.validate(cfg), "freqbias")["waves"]}
    step = specs["band"]["settings"]["step"]
    kappa = waves.filter_kappa("band", step, specs["band"]["settings"]["filter_s0"])
    assert kappa == pytest.approx(2 * np.pi / (step * 30.7), rel=1e-15)
    n_fft = 4096
    f = 30.7 * step / (2 * np.pi)  # s = s_0 in cycles/sample
    m = np.arange(n_fft // 2 + 1)
    for beta in (-1.0, 1.0):
        w = np.asarray(sobolev.sobolev_weights(n_fft, beta, kappa))
        assert np.interp(f, m / n_fft, w) == pytest.approx(2.0**beta, rel=1e-3)  # linear interpolation between bins
        assert np.allclose(w, (1 + (2 * np.pi * m / n_fft / step) / 30.7) ** beta, rtol=1e-6)
    assert waves.filter_kappa("paper", step) == sobolev.preset_kappa("paper", step)
    assert waves.filter_kappa("upstream-emul", step) == sobolev.preset_kappa("upstream-waves", step)
    with pytest.raises(ValueError, match="s0"):
        waves.filter_kappa("band", step)
