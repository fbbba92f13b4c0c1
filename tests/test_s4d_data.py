"""The s4d data stage: each experiment's task data and splits in one labelled store (issue 10 item 3)."""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import xarray as xr
from test_s4d_config import s4d_config

from ssmflow import config as cfgmod
from ssmflow import grid, store
from ssmflow.studies.s4d import data, job, tasks


def _config(**experiments) -> dict:
    cfg = s4d_config()
    if experiments:
        cfg["s4d"]["experiments"] = experiments
    return cfgmod.validate(cfg)


def _write(spec: dict, path) -> xr.Dataset:
    with jax.enable_x64(False):
        ds = data.data_dataset(spec)
    store.write_atomic(ds, path, whole=ds.attrs["whole_dims"])
    return xr.open_zarr(path, consolidated=False)  # what a researcher opens


@pytest.fixture(scope="module")
def delay(tmp_path_factory):
    """The s4d_config delay experiment (L = 32, two N shards, float32)."""
    cfg = _config()
    return cfg, _write(grid.experiment_spec(cfg, "s4d", "delay"), tmp_path_factory.mktemp("s4d") / "delay" / "data.zarr")


@pytest.fixture(scope="module")
def sdigits(tmp_path_factory):
    cfg = _config(sdigits={"task": "sdigits", "image_size": 8, "steps": 20, "record_points": 3,
                           "axes": {"init": ["lin"], "disc": ["zoh"], "N": [4]}})
    return cfg, _write(grid.experiment_spec(cfg, "s4d", "sdigits"), tmp_path_factory.mktemp("s4d") / "sdigits" / "data.zarr")


def test_delay_store_holds_the_fixed_sets_and_the_generator(delay):
    cfg, ds = delay
    n_eval = cfg["s4d"]["experiments"]["delay"]["n_eval"]
    assert ds.x.dims == ("sample", "time", "feature") and ds.y.dims == ds.x.dims
    assert dict(ds.x.sizes) == {"sample": 2 * n_eval, "time": 32, "feature": 1}
    assert [str(v) for v in ds.split.values] == ["val"] * n_eval + ["test"] * n_eval  # no train split: generated per step
    assert ds.x.dtype == np.float32  # as the model consumes it (precision float32)
    assert ds.attrs["task"] == "delay" and ds.attrs["lag"] == 8 and ds.attrs["splits"] == ["val", "test"]
    assert ds.attrs["generator"]["lag"] == 8 and ds.attrs["generator"]["length"] == 32
    assert "generated per step" in ds.attrs["fresh_samples"] and "not stored" in ds.attrs["fresh_samples"]
    for key in ("ssmflow_version", "git_commit", "config_digest", "jax_version", "precision", "created", "whole_dims"):
        assert ds.attrs[key] not in ("", None), key
    assert ds.attrs["whole_dims"] == ["sample", "time", "feature"]  # no half-rate dims: delay has no half-rate set
    lag = ds.attrs["lag"]
    np.testing.assert_array_equal(ds.y.values[:, lag:], ds.x.values[:, :-lag])  # targets: the delayed inputs


def test_sdigits_store_holds_every_split_labelled(sdigits):
    from sklearn.datasets import load_digits

    _, ds = sdigits
    assert dict(ds.x.sizes) == {"sample": 1797, "time": 64, "feature": 1} and ds.y.dims == ("sample",)
    split = np.array([str(v) for v in ds.split.values])
    assert {n: int((split == n).sum()) for n in ("train", "val", "test")} == ds.attrs["split_sizes"] == {"train": 1257, "val": 180, "test": 360}
    assert sorted(ds.source_index.values.tolist()) == list(range(1797))
    np.testing.assert_array_equal(ds.y.values, load_digits().target[ds.source_index.values])
    train = ds.x.values[split == "train"]
    assert abs(float(train.mean())) < 1e-5 and abs(float(train.std()) - 1) < 1e-5  # standardized with train stats
    assert ds.attrs["standardize"]["std"] > 0 and "not stored" in ds.attrs["fresh_samples"]


@pytest.mark.parametrize("which", ["delay", "sdigits"])
def test_store_splits_equal_the_tasks_own_data(which, delay, sdigits):
    """What training reads back is exactly what it built in the job before the data stage."""
    cfg, ds = {"delay": delay, "sdigits": sdigits}[which]
    with jax.enable_x64(False):
        _, old = tasks.make_task(cfg["s4d"]["experiments"][which])
        new = data.task_data(ds)
        for a, b in zip(old, new, strict=True):
            if a is None:
                assert b is None
                continue
            np.testing.assert_array_equal(np.asarray(jax.numpy.asarray(a.x, jax.numpy.result_type(float))), b.x)
            np.testing.assert_array_equal(np.asarray(jax.numpy.asarray(a.y, jax.numpy.result_type(float)))
                                          if which == "delay" else a.y, b.y)
            if a.index is not None:
                np.testing.assert_array_equal(a.index, b.index)


def test_shards_train_from_one_store_as_from_in_job_data(delay):
    cfg, ds = delay
    shards = grid.expand(cfg, "s4d")["delay"]
    assert len(shards) == 2  # N = 4 and N = 8 read the same store
    for s in shards:
        data.check_matches(s.spec, ds)  # every shard's task settings are the store's
    with jax.enable_x64(False):
        from_store, in_memory = job.train_shard(shards[0].spec, ds), job.train_shard(shards[0].spec)
    keep = [v for v in from_store.data_vars if v != "wall_s"]  # wall-clock seconds: not a result
    xr.testing.assert_identical(from_store[keep].drop_attrs(), in_memory[keep].drop_attrs())
    assert from_store.attrs["data_digest"] == ds.attrs["config_digest"]


def test_data_depends_on_the_task_settings_only(delay, tmp_path):
    cfg, ds = delay
    more = copy.deepcopy(cfg)
    more["s4d"]["seeds"] = 4
    more["s4d"]["experiments"]["delay"]["steps"] = 30
    again = _write(grid.experiment_spec(more, "s4d", "delay"), tmp_path / "data.zarr")
    xr.testing.assert_identical(again.load().drop_attrs(), ds.load().drop_attrs())
    assert again.attrs["config_digest"] == ds.attrs["config_digest"]


def test_a_store_of_other_task_settings_is_refused(delay):
    cfg, ds = delay
    spec = copy.deepcopy(grid.expand(cfg, "s4d")["delay"][0].spec)
    spec["settings"]["lag"] = 0.5
    with pytest.raises(ValueError, match="data store was made for"):
        data.check_matches(spec, ds)
    with pytest.raises(ValueError, match="precision"):  # conftest runs float64; the spec is float32
        data.data_dataset(spec)


def test_the_rules_narrowed_spec_gives_the_same_store(delay, sdigits):
    """The data rule passes only `STUDY.data_keys` of the experiment spec (its trigger)."""
    from ssmflow.studies.s4d import STUDY

    for (cfg, stored), exp in ((delay, "delay"), (sdigits, "sdigits")):
        spec = grid.experiment_spec(cfg, "s4d", exp)
        with jax.enable_x64(False):
            narrow = data.data_dataset(STUDY.data_keys(spec))
        xr.testing.assert_identical(narrow.drop_attrs(), stored.load().drop_attrs())
        assert narrow.attrs["config_digest"] == stored.attrs["config_digest"]
        other = copy.deepcopy(spec)
        other["axes"]["N"] = [64]
        other["common"]["seeds"] = 9
        assert STUDY.data_keys(other) == STUDY.data_keys(spec)  # neither state size nor seeds touch the data


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """adding and tones stores (L = 64, float32)."""
    out = {}
    for name in ("adding", "tones"):
        cfg = _config(**{name: {"task": name, "length": 64, "n_val": 6, "n_test": 10, "steps": 20, "record_points": 3,
                                "axes": {"init": ["lin"], "disc": ["zoh"], "N": [4]}}})
        out[name] = (cfg, _write(grid.experiment_spec(cfg, "s4d", name), tmp_path_factory.mktemp("s4d") / name / "data.zarr"))
    return out


@pytest.mark.parametrize("name", ["adding", "tones"])
def test_generated_store_holds_the_fixed_sets_as_generated(name, generated):
    cfg, ds = generated[name]
    assert [str(v) for v in ds.split.values] == ["val"] * 6 + ["test"] * 10 and ds.attrs["splits"] == ["val", "test"]
    assert dict(ds.x.sizes) == {"sample": 16, "time": 64, "feature": 2 if name == "adding" else 1}
    assert ds.y.dims == ("sample",) and ds.attrs["metric"] == ("mse" if name == "adding" else "accuracy")
    assert ds.attrs["pooling"] == ("last" if name == "adding" else "mean")
    assert ds.attrs["generator"]["function"].endswith(f"{name}_batch") and "not stored" in ds.attrs["fresh_samples"]
    with jax.enable_x64(False):
        _, want = tasks.make_task(cfg["s4d"]["experiments"][name])
        got = data.task_data(ds)
    assert got.train is None
    for a, b in zip(want[1:], got[1:], strict=True):
        np.testing.assert_array_equal(a.x.astype(np.float32), b.x)
        np.testing.assert_array_equal(a.y, b.y)


def test_tones_store_holds_its_half_rate_test_set(generated):
    _, ds = generated["tones"]
    assert dict(ds.x_half.sizes) == {"sample_half": 10, "time_half": 32, "feature": 1}
    test = data.task_data(ds).test
    half = data.half_rate_test(ds)
    np.testing.assert_array_equal(half.x, test.x[:, ::2])  # the same signals, every other sample
    np.testing.assert_array_equal(half.y, test.y)
    split = np.array([str(v) for v in ds.split.values])
    assert (split[half.index] == "test").all()
    assert ds.attrs["half_rate"]["rate"] == 2 and ds.attrs["half_rate"]["top_frequency"] == pytest.approx(0.9 * np.pi)
    assert ds.attrs["tones_classes"] == tasks.tones_classes().tolist()
    assert ds.attrs["whole_dims"] == list(data.WHOLE_DIMS)
    with pytest.raises(ValueError, match="no half-rate test set"):
        data.half_rate_test(generated["adding"][1])
