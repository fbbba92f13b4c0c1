"""Smoke runs of the freqbias jobs (freqbias.md test 10): the training loss falls, nothing is NaN, the stores are labelled."""

from __future__ import annotations

import numpy as np
import pytest
from test_freqbias_config import freqbias_config

from ssmflow import config as cfgmod
from ssmflow import grid
from ssmflow.studies.freqbias import evaluate, job


@pytest.fixture(scope="module")
def shards():
    return grid.expand(cfgmod.validate(freqbias_config()), "freqbias")


def test_waves_smoke_run_reduces_the_loss(shards):
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
