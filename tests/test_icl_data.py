"""The icl data store (data stage): labelled, with provenance; training from it equals in-job synthesis;
adding seeds leaves the existing rows unchanged."""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import xarray as xr
from test_icl_config import icl_config

from ssmflow import config as cfgmod
from ssmflow import grid, store, train
from ssmflow.studies import icl
from ssmflow.studies.icl import data, job
from ssmflow.studies.icl import theory as th

EXPERIMENTS = {
    "E1": {"kind": "gdssm", "axes": {"d": [3, 5], "n_context": [4, 6], "blocks": [1, 2]}},
    "E5": {"kind": "baselines", "axes": {"model": ["lsa", "lti_ssm"], "d": [3], "n_context": [4]}},
    "E6": {"kind": "gdssm", "variant": "scalar", "axes": {"d": [3], "n_context": [4], "blocks": [1]}},
    "E7": {"kind": "sine", "axes": {"embed": ["linear"], "sine_draw": ["independent", "shared"], "n_context": [4]}},
}


def small_config(seeds: int = 2) -> dict:
    cfg = icl_config(**copy.deepcopy(EXPERIMENTS))
    cfg["icl"].update(seeds=seeds, eval_tasks=100, steps=20, eval_every=10, chunk_steps=10)
    return cfgmod.validate(cfg)


@pytest.fixture(scope="module")
def cfg():
    return small_config()


@pytest.fixture(scope="module")
def stores(cfg, tmp_path_factory):
    """Every experiment's data store, written as the data rule writes it and reopened."""
    root = tmp_path_factory.mktemp("icl_data")
    out = {}
    for exp in EXPERIMENTS:
        ds = data.data_dataset(grid.experiment_spec(cfg, "icl", exp))
        out[exp] = store.write_atomic(ds, root / exp / "data.zarr", whole=ds.attrs["whole_dims"])
    return out


def test_the_study_declares_its_data_stage():
    assert icl.STUDY.data == "data" and callable(icl.STUDY.module(icl.STUDY.data).data_dataset)


def test_data_store_opens_with_readable_dims_coords_and_provenance(stores):
    ds = xr.open_zarr(stores["E1"], consolidated=False)
    assert dict(ds.sizes) == {"d": 2, "n_context": 2, "task": 100, "context": 6, "x_dim": 5, "y_dim": 5, "blocks": 2,
                              "seed": 2, "key_word": 2}
    assert ds.x_context.dims == ("d", "n_context", "task", "context", "x_dim")
    assert ds.W.dims == ("d", "n_context", "task", "y_dim", "x_dim")
    assert ds.data_key.dims == ("d", "n_context", "blocks", "seed", "key_word") and ds.data_key.dtype == np.uint32
    assert list(ds.d.values) == [3, 5] and list(ds.n_context.values) == [4, 6] and list(ds.seed.values) == [0, 1]
    # ragged configurations are NaN-padded: d = 3 has 3 input coordinates, N = 4 has 4 context pairs
    x = ds.x_context.sel(d=3, n_context=4).values
    assert np.isfinite(x[:, :4, :3]).all() and np.isnan(x[:, 4:]).all() and np.isnan(x[:, :, 3:]).all()
    for key in ("config_digest", "git_commit", "ssmflow_version", "jax_version", "precision", "created", "study", "experiment"):
        assert key in ds.attrs, key
    assert ds.attrs["study"] == "icl" and ds.attrs["experiment"] == "E1"
    assert "fold_in(data_key, t)" in ds.attrs["fresh_samples"] and "linear_tasks" in ds.attrs["fresh_samples"]
    assert ds.attrs["generator"]["batch_size"] == 64 and ds.attrs["eval_tasks"] == 100
    assert set(ds.attrs["whole_dims"]) >= {"task", "context", "seed", "key_word"}
    assert all("description" in ds[v].attrs for v in ds.data_vars)
    base = xr.open_zarr(stores["E5"], consolidated=False)
    assert list(base.model.values) == ["lsa", "lti_ssm"] and base.model.dtype.kind in "OTU"  # readable labels, not codes
    assert base.data_key.dims == ("model", "d", "n_context", "seed", "key_word")
    sine = xr.open_zarr(stores["E7"], consolidated=False)
    assert list(sine.sine_draw.values) == ["independent", "shared"]
    assert set(sine.data_vars) == {"x_context", "y_context", "x_query", "y_query", "amplitude", "phase", "data_key"}
    assert "sine_tasks" in sine.attrs["fresh_samples"]
    scalar = xr.open_zarr(stores["E6"], consolidated=False)
    assert scalar.sizes["y_dim"] == 1 and scalar.attrs["variant"] == "scalar"


def _old_data_keys(coords: dict, kind: str, variant: str, seeds: int) -> np.ndarray:
    """The data keys as the job derived them before the data stage existed."""
    out = []
    for seed in range(seeds):
        run = {**coords, "kind": kind, "variant": variant, "seed": seed}
        _, k_data = jax.random.split(jax.random.wrap_key_data(train.run_key("icl", run)))
        out.append(np.asarray(jax.random.key_data(k_data)))
    return np.stack(out)


def test_store_holds_the_old_eval_sets_and_data_keys_bit_for_bit(cfg, stores):
    common = grid.common_settings(cfg, "icl")
    for exp, shards in grid.expand(cfg, "icl").items():
        opened = store.open_store(stores[exp])
        for shard in shards:
            setup = job.shard_setup(shard.spec)
            variant = shard.spec["settings"]["variant"]
            got = data.eval_tasks(opened, setup.coords, variant)
            want = th.eval_set(common, d=setup.d, n_context=setup.n_context, variant=variant, sine_draw=setup.coords.get("sine_draw"))
            for name in ("tokens", "x", "y", "w"):
                a, b = np.asarray(getattr(got, name)), np.asarray(getattr(want, name))
                assert a.dtype == b.dtype == np.float32 and a.shape == b.shape, (exp, shard.name, name)
                np.testing.assert_array_equal(a, b, err_msg=f"{exp} {shard.name} {name}")
            keys = np.asarray(data.data_keys(opened, setup.coords, range(common["seeds"])))
            np.testing.assert_array_equal(keys, _old_data_keys(setup.coords, setup.kind, variant, common["seeds"]))


def _values(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    out.attrs = {}
    return out


def test_training_from_the_store_equals_in_job_synthesis(cfg, stores):
    """A shard trained from the opened Zarr store gives the very numbers of the in-memory synthesis."""
    spec = grid.expand(cfg, "icl")["E1"][0].spec  # d = 3 < 5, N = 4 < 6: padded in the store
    assert spec["shard"] == "d=3_n_context=4_blocks=1"
    from_store = job.train_shard(spec, store.open_store(stores["E1"]))
    in_memory = job.train_shard(spec)
    xr.testing.assert_identical(_values(from_store), _values(in_memory))
    assert np.isfinite(from_store.loss.values).all()


def test_adding_a_seed_leaves_the_existing_rows_unchanged():
    for exp in EXPERIMENTS:
        two = data.data_dataset(grid.experiment_spec(small_config(2), "icl", exp))
        three = data.data_dataset(grid.experiment_spec(small_config(3), "icl", exp))
        assert three.sizes["seed"] == 3
        xr.testing.assert_identical(_values(three.sel(seed=[0, 1])), _values(two))
        assert two.attrs["config_digest"] != three.attrs["config_digest"]
