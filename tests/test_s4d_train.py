"""s4d training jobs: smoke training (s4d.md test 11), the store layout, pairing and the metrics store."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_s4d_config import s4d_config

from ssmflow import config as cfgmod
from ssmflow import grid
from ssmflow.studies import s4d
from ssmflow.studies.s4d import evaluate, job, tasks


def _spec(**experiment) -> dict:
    cfg = s4d_config()
    cfg["s4d"]["experiments"] = {"smoke": experiment}
    return grid.expand(cfgmod.validate(cfg), "s4d")["smoke"][0].spec


@pytest.fixture(scope="module")
def smoke():
    """sdigits8 (L = 64), lin and legs, zoh, N = 16, H = 32, 2 layers, 300 steps, float32, 2 seeds."""
    spec = _spec(task="sdigits", image_size=8, steps=300, batch=32, record_points=4,
                 axes={"init": ["lin", "legs"], "disc": ["zoh"], "N": [16]})
    spec["common"].update(seeds=2, precision="float32", model={**spec["common"]["model"], "channels": 32, "depth": 2, "dt_min": 0.001, "dt_max": 0.1})
    with jax.enable_x64(False):
        return job.train_shard(spec)


def test_smoke_training_learns_sdigits8(smoke):
    """Final train loss <= 0.7 x initial, validation accuracy >= 0.5 (chance 0.1), nothing NaN."""
    assert smoke.train_loss.dtype == np.float32
    loss = smoke.train_loss.squeeze()
    assert (loss.isel(step=-1) <= 0.7 * loss.isel(step=0)).all()
    assert (smoke.val_metric.isel(step=-1) >= 0.5).all()
    assert (smoke.test_metric >= 0.5).all()
    for name in ("train_loss", "val_loss", "lambda_re", "lambda_im", "delta"):
        assert np.isfinite(smoke[name]).all(), name
    assert (smoke.diverged_at == -1).all()


def test_store_layout(smoke):
    assert list(smoke.init.values) == ["lin", "legs"] and list(smoke.disc.values) == ["zoh"]
    assert smoke.lambda_re.dims == ("init", "disc", "N", "seed", "step", "layer", "channel", "mode")
    assert dict(smoke.lambda_re.sizes) == {"init": 2, "disc": 1, "N": 1, "seed": 2, "step": 4, "layer": 2, "channel": 32, "mode": 8}
    assert smoke.step.values.tolist() == [0, 100, 199, 299]
    assert smoke.attrs["task"] == "sdigits" and smoke.attrs["metric"] == "accuracy" and smoke.attrs["length"] == 64
    for key in ("ssmflow_version", "git_commit", "config_digest", "jax_version", "precision", "created"):
        assert smoke.attrs[key], key


def test_step_zero_holds_each_init_and_the_pairing(smoke):
    """At step 0 lambda is the init's formula; a seed's inits share C, D and Delta (paired comparison)."""
    first = smoke.isel(step=0, disc=0, N=0)
    np.testing.assert_allclose(first.lambda_im.sel(init="lin").isel(seed=0, layer=0, channel=0), np.pi * np.arange(8), rtol=1e-6)
    np.testing.assert_allclose(first.lambda_re, -0.5, rtol=1e-6)
    np.testing.assert_array_equal(first.delta.sel(init="lin"), first.delta.sel(init="legs"))
    np.testing.assert_array_equal(first.d_skip.sel(init="lin"), first.d_skip.sel(init="legs"))
    assert not np.allclose(first.delta.isel(seed=0), first.delta.isel(seed=1))  # seeds differ


def test_metrics_rank_the_inits(smoke):
    m = evaluate.metrics_dataset(smoke)
    assert set(np.unique(m.init_rank.values)) <= {1, 2}
    best = m.test_metric_mean.idxmax("init").item()
    assert m.init_rank.sel(init=best).item() == 1 and m.gap_to_best.sel(init=best).item() == 0
    assert set(m.seed_winner.values.ravel()) <= {"lin", "legs"}
    with pytest.raises(ValueError, match="no theory store"):
        evaluate.metrics_dataset(smoke, smoke)


def test_delay_task_targets_are_the_delayed_inputs():
    x, y = tasks.delay_batch(jax.random.key(0), 3, 40, 10)
    np.testing.assert_array_equal(y[:, 10:], x[:, :30])
    np.testing.assert_array_equal(y[:, :10], 0.0)
    task, data = tasks.make_task({"task": "delay", "length": 40, "lag": 0.25, "n_eval": 5})
    assert task.lag == 10 and data.train is None and data.val.x.shape == (5, 40, 1)
    assert float(task.sample_score(y[0], y[0])) == 1.0  # perfect recall: R^2 = 1


def test_sdigits_split_is_stratified_and_standardized():
    data = tasks.sdigits_data(8)
    sizes = [s.x.shape[0] for s in data]
    assert sum(sizes) == 1797 and abs(sizes[0] / 1797 - 0.7) < 0.01 and abs(sizes[2] / 1797 - 0.2) < 0.01
    assert abs(data.train.x.mean()) < 1e-9 and abs(data.train.x.std() - 1) < 1e-9
    assert set(np.unique(data.test.y)) == set(range(10))


def test_metrics_rank_mse_lower_is_better(smoke):
    """adding's metric is an MSE: the init with the lowest test MSE ranks 1 and wins its seeds."""
    traj = smoke.copy()
    traj.attrs["metric"] = "mse"
    traj["test_metric"] = traj.test_metric.copy(data=np.where(traj.init.values[:, None, None, None] == "legs", 0.01, 0.1)
                                                * np.ones(traj.test_metric.shape))
    m = evaluate.metrics_dataset(traj)
    assert (m.init_rank.sel(init="legs") == 1).all() and (m.init_rank.sel(init="lin") == 2).all()
    assert set(m.seed_winner.values.ravel()) == {"legs"}
    np.testing.assert_allclose(m.gap_to_best.sel(init="lin"), 0.09)
    np.testing.assert_array_equal(m.best_val_metric, traj.val_metric.min("step"))


def test_ablation_shard_batches_b_and_pairs_its_runs():
    """An X4 shard (real_transform none, B trained and frozen): store dims, and a seed's
    runs with B trained and frozen start identical (paired) and then train differently."""
    spec = _spec(task="adding", length=32, n_val=16, n_test=16, steps=20, batch=8, record_points=2,
                 axes={"init": ["lin"], "disc": ["zoh"], "N": [4], "real_transform": ["none"], "B": ["trained", "frozen"]})
    assert spec["axes"]["real_transform"] == ["none"] and job.real_transform(spec) == "none"
    with jax.enable_x64(False):
        ds = job.train_shard(spec)
    assert ds.test_metric.dims == ("init", "disc", "N", "real_transform", "B", "seed")
    assert [str(v) for v in ds.B.values] == ["trained", "frozen"] and ds.attrs["metric"] == "mse"
    first, last = ds.isel(step=0), ds.isel(step=-1)
    np.testing.assert_array_equal(first.cb_re.sel(B="trained"), first.cb_re.sel(B="frozen"))
    assert not np.array_equal(last.cb_re.sel(B="trained"), last.cb_re.sel(B="frozen"))
    np.testing.assert_allclose(first.lambda_re, -0.5, rtol=1e-6)  # none starts from the init's lambda too
