"""The freqbias data store (data stage): labelled, with provenance; training from it equals in-job synthesis;
adding seeds leaves the existing rows unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from test_freqbias_config import freqbias_config

from ssmflow import config as cfgmod
from ssmflow import grid, store, train
from ssmflow.studies import freqbias
from ssmflow.studies.freqbias import data, denoise, geometry, job, waves


def small_config(seeds: int = 1) -> dict:
    cfg = freqbias_config()
    sec = cfg["freqbias"]
    sec["seeds"] = seeds
    w, d = sec["experiments"]["waves"], sec["experiments"]["denoise"]
    w.update(steps=10, record_points=2)
    w["axes"]["filter"] = ["paper", "upstream-emul"]
    d.update(steps=10, record_points=2, sources=["faces", "natural"], faces_train=8, faces_test=4, crops_train=2, crops_test=2,
             natural_train=["brick"], natural_test=["camera"])
    d["axes"]["beta"] = [0.0, 1.0]
    return cfgmod.validate(cfg)


@pytest.fixture(scope="module")
def cfg():
    return small_config()


@pytest.fixture(scope="module")
def stores(cfg, tmp_path_factory):
    """Every experiment's data store, written as the data rule writes it."""
    root = tmp_path_factory.mktemp("freqbias_data")
    out = {}
    for exp in ("waves", "denoise"):
        ds = data.data_dataset(grid.experiment_spec(cfg, "freqbias", exp))
        out[exp] = store.write_atomic(ds, root / exp / "data.zarr", whole=ds.attrs["whole_dims"])
    return out


def _provenance(ds: xr.Dataset, exp: str) -> None:
    for key in ("config_digest", "git_commit", "ssmflow_version", "jax_version", "precision", "created"):
        assert key in ds.attrs, key
    assert ds.attrs["study"] == "freqbias" and ds.attrs["experiment"] == exp
    assert "fold_in(train_key, t)" in ds.attrs["fresh_samples"] and ds.attrs["contents"]
    assert all("description" in ds[v].attrs for v in ds.data_vars)


def test_the_study_declares_its_data_stage():
    assert freqbias.STUDY.data == "data" and callable(freqbias.STUDY.module(freqbias.STUDY.data).data_dataset)


def test_waves_store_opens_with_readable_dims_coords_and_provenance(stores):
    ds = xr.open_zarr(stores["waves"], consolidated=False)
    assert dict(ds.sizes) == {"wave": 4, "time": 128, "level": 10, "test": 64, "filter": 2, "alpha": 2, "beta": 2, "seed": 1,
                              "key_word": 2}
    assert set(ds.data_vars) == {"basis", "amplitude_level", "test_amplitude", "train_key"}
    assert list(ds["filter"].values) == ["paper", "upstream-emul"] and ds["filter"].dtype.kind in "OTU"
    assert ds.train_key.dims == ("filter", "alpha", "beta", "seed", "key_word") and ds.train_key.dtype == np.uint32
    np.testing.assert_allclose(ds.wave_freq.values, geometry.wave_frequencies([1, 2, 4, 8], 128, 0.0064))
    assert "amplitude_grid_sample" in ds.attrs["fresh_samples"]
    _provenance(ds, "waves")


def test_denoise_store_opens_with_readable_dims_coords_and_provenance(stores):
    ds = xr.open_zarr(stores["denoise"], consolidated=False)
    assert dict(ds.sizes) == {"train_image": 10, "test_image": 6, "row": 32, "col": 16, "noise": 3, "alpha": 2, "beta": 2,
                              "seed": 1, "key_word": 2}
    assert list(ds.noise.values) == ["none", "horizontal", "vertical"] and list(ds.alpha.values) == ["raw", "flip"]
    assert list(ds.train_source.values) == ["faces"] * 8 + ["natural"] * 2
    assert list(ds.test_origin.values) == [f"lfw_subset[{i}]" for i in range(8, 12)] + ["camera crop 0", "camera crop 1"]
    assert ds.test_noise.dims == ("noise", "test_image", "row", "col") and (ds.test_noise.sel(noise="none") == 0).all()
    assert float(ds.train_images.min()) >= 0 and float(ds.train_images.max()) <= 1
    np.testing.assert_allclose(ds.alpha_value.values, [geometry.alpha_value(a, 16) for a in ("raw", "flip")])
    # the noise is 2 rho cos(...) with rho the stored amplitude (eq. 19, model units)
    v = ds.test_noise.sel(noise="vertical").values
    np.testing.assert_allclose(np.abs(v).max(axis=(1, 2)), 2 * ds.rho.sel(noise="vertical").values, rtol=1e-12)
    _provenance(ds, "denoise")


def _old_key(spec: dict, stream: str, a, b, seed: int, filt: str | None = None):
    """A run key as the job derived it before the data stage existed."""
    if filt is None:
        coords = {"experiment": spec["experiment"], "alpha": a, "beta": float(b), "seed": seed, "stream": stream}
    else:
        coords = {"experiment": spec["experiment"], "filter": filt, "alpha": float(a), "beta": float(b), "seed": seed, "stream": stream}
    return np.asarray(train.run_key(spec["study"], coords))


def test_store_holds_the_old_in_job_data_bit_for_bit(cfg, stores):
    spec = grid.experiment_spec(cfg, "freqbias", "waves")
    s = spec["settings"]
    w = store.open_store(stores["waves"])
    basis, test_amp = data.waves_inputs(w)
    freqs = geometry.wave_frequencies(s["cycles"], s["length"], s["step"])
    np.testing.assert_array_equal(np.asarray(basis), np.asarray(waves.cosine_basis(freqs, s["length"], s["step"])))
    old_amp = jax.random.uniform(jax.random.key(s["test_seed"]), (s["n_test"], waves.N_WAVES), dtype=jnp.result_type(float))
    np.testing.assert_array_equal(np.asarray(test_amp), np.asarray(old_amp))
    for filt in ("paper", "upstream-emul"):
        rows = [(a, b, 0) for a in (1.0, 100.0) for b in (0.0, 1.0)]
        np.testing.assert_array_equal(np.asarray(data.train_keys(w, rows, filt)),
                                      np.stack([_old_key(spec, "train", a, b, seed, filt) for a, b, seed in rows]))

    spec = grid.experiment_spec(cfg, "freqbias", "denoise")
    s = spec["settings"]
    d = store.open_store(stores["denoise"])
    got = data.denoise_inputs(d)
    train_set, test_set = denoise.load_images(s, "train"), denoise.load_images(s, "test")
    np.testing.assert_array_equal(got["x_train"], 2 * train_set.images.reshape(len(train_set.images), -1) - 1)
    np.testing.assert_array_equal(got["clean"], 2 * test_set.images.reshape(len(test_set.images), -1) - 1)
    assert list(got["test_source"]) == list(test_set.source)
    rng = np.random.default_rng(s["noise_seed"])  # the job's former test_noise
    for orientation in ("horizontal", "vertical"):
        old = 2 * denoise.stripe_noise(orientation, rng.uniform(0, 0.5, len(test_set.images)), s["rows"], s["cols"],
                                       geometry.stripe_omega(s["cols"]))
        np.testing.assert_array_equal(got["noises"][orientation], old.reshape(len(test_set.images), -1))
    rows = [(a, b, 0) for a in ("raw", "flip") for b in (0.0, 1.0)]
    np.testing.assert_array_equal(np.asarray(data.train_keys(d, rows)), np.stack([_old_key(spec, "train", *r) for r in rows]))


def _values(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    out.attrs = {}
    return out


@pytest.mark.parametrize("exp", ["waves", "denoise"])
def test_training_from_the_store_equals_in_job_synthesis(cfg, stores, exp):
    """A shard trained from the opened Zarr store gives the very numbers of the in-memory synthesis."""
    spec = grid.expand(cfg, "freqbias")[exp][-1].spec  # waves: the upstream-emul shard
    from_store = job.train_shard(spec, store.open_store(stores[exp]))
    in_memory = job.train_shard(spec)
    xr.testing.assert_identical(_values(from_store), _values(in_memory))
    assert np.isfinite(from_store.train_loss.values).any()


def test_adding_a_seed_leaves_the_existing_rows_unchanged():
    for exp in ("waves", "denoise"):
        one = data.data_dataset(grid.experiment_spec(small_config(1), "freqbias", exp))
        two = data.data_dataset(grid.experiment_spec(small_config(2), "freqbias", exp))
        assert two.sizes["seed"] == 2
        xr.testing.assert_identical(_values(two.sel(seed=[0])), _values(one))
