"""The dynamics data stage: one labelled store per experiment, read by every shard (issue 10 item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid, store
from ssmflow.studies.dynamics import data, job, runs


def _config(seeds: int = 2, rho=(0.0, 0.5)) -> dict:
    cfg = tiny_config(E={"t_record": [0.01, 20.0], "axes": {"a": [0.5], "rho": list(rho), "conv": ["circular", "causal"],
                                                          "p0": [0.0001], "kappa": [0.02]}})
    cfg["dynamics"]["seeds"] = seeds
    return cfgmod.validate(cfg)


def _write(cfg: dict, path) -> xr.Dataset:
    ds = data.data_dataset(grid.experiment_spec(cfg, "dynamics", "E"))
    store.write_atomic(ds, path, whole=ds.attrs["whole_dims"])
    return store.open_store(path)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    cfg = _config()
    path = tmp_path_factory.mktemp("dyn") / "E" / "data.zarr"
    return cfg, path, _write(cfg, path)


def test_store_opens_with_readable_dims_coords_and_provenance(experiment):
    _, path, _ = experiment
    ds = xr.open_zarr(path, consolidated=False)
    assert ds.u.dims == ("rho", "conv", "seed", "sequence", "time") and ds.y.dims == ds.u.dims
    assert dict(ds.u.sizes) == {"rho": 2, "conv": 2, "seed": 2, "sequence": 8, "time": 128}
    assert [str(c) for c in ds.conv.values] == ["circular", "causal"]  # labels, not codes
    assert ds.rho.values.tolist() == [0.0, 0.5] and ds.seed.values.tolist() == [0, 1]
    assert ds.u.dtype == np.float64 and ds.y.dtype == np.float64  # the study's precision (C9)
    assert ds.s_uu.dims == ("rho", "conv", "seed", "freq") and ds.omega.dims == ("freq",)
    assert ds.u.encoding["chunks"] == (1, 1, 1, 8, 128)  # one chunk per (rho, conv, seed) row
    for key in ("ssmflow_version", "git_commit", "config_digest", "jax_version", "precision", "created",
                "generator_digest", "fresh_samples", "keys", "teacher", "data"):
        assert ds.attrs[key] not in ("", None), key
    assert ds.attrs["precision"] == "float64" and ds.attrs["experiment"] == "E"
    assert ds.attrs["whole_dims"] == list(data.WHOLE_DIMS) and ds.attrs["data_coords"] == ["rho", "conv", "seed"]
    assert ds.u.attrs["long_name"] and ds.syy.attrs["long_name"]


def test_each_shard_reads_the_rows_the_job_used_to_synthesize(experiment):
    """Both conv shards of the experiment read one store; each run's (key, u, y) is bit for bit
    what the job synthesized for it before the data stage (one lax.map over the shard's runs)."""
    cfg, _, opened = experiment
    shards = grid.expand(cfg, "dynamics")["E"]
    assert [s.spec["axes"]["conv"] for s in shards] == [["circular"], ["causal"]]
    common = cfg["dynamics"]
    for s in shards:
        table = runs.run_table(s.spec)
        keys, u, y = job.make_data(s.spec, table, opened)
        old_keys, old_u, old_y = data.synthesize("dynamics", list(table.values["rho"]), table.coords["conv"][0],
                                                 list(table.values["seed"]), n_seq=common["data"]["n_seq"],
                                                 length=common["data"]["length"], teacher=common["teacher"])
        np.testing.assert_array_equal(np.asarray(keys), np.asarray(old_keys))
        np.testing.assert_array_equal(np.asarray(u), np.asarray(old_u))
        np.testing.assert_array_equal(np.asarray(y), np.asarray(old_y))


def test_training_from_the_store_equals_in_job_synthesis(experiment):
    cfg, _, opened = experiment
    spec = grid.expand(cfg, "dynamics")["E"][0].spec
    from_store = job.train_shard(spec, opened)
    in_memory = job.train_shard(spec)
    xr.testing.assert_identical(from_store.drop_attrs(), in_memory.drop_attrs())
    assert from_store.attrs["data_generator_digest"] == opened.attrs["generator_digest"]
    # the trajectory's empirical Syy is the data store's statistic of the same rows
    np.testing.assert_allclose(from_store.syy.squeeze().transpose("rho", "seed").values,
                               opened.syy.sel(conv="circular").transpose("rho", "seed").values, rtol=1e-12)


def test_adding_seeds_or_rho_values_leaves_existing_rows_unchanged(experiment, tmp_path):
    _, _, two = experiment
    three = _write(_config(seeds=3, rho=(0.0, 0.25, 0.5)), tmp_path / "data.zarr").load()
    assert three.seed.values.tolist() == [0, 1, 2]
    old = three.sel(seed=[0, 1], rho=[0.0, 0.5])
    xr.testing.assert_identical(old.drop_attrs(), two.load().drop_attrs())
    assert three.attrs["generator_digest"] == two.attrs["generator_digest"]
    assert three.attrs["config_digest"] != two.attrs["config_digest"]


def test_statistics_are_those_of_the_sequences(experiment):
    _, _, ds = experiment
    ds = ds.load()
    length = ds.sizes["time"]
    w = np.full(ds.sizes["freq"], 2.0)
    w[0] = w[-1] = 1.0  # rfft bins -> all L bins (C1)
    np.testing.assert_allclose((ds.s_uu * w).sum("freq") / length, ds.u_var, rtol=1e-12)  # Parseval
    np.testing.assert_allclose((ds.s_yy * w).sum("freq") / length, ds.syy, rtol=1e-12)
    np.testing.assert_allclose(ds.u_var, (ds.u**2).mean(("sequence", "time")), rtol=1e-12)
    assert abs(float(ds.u_lag1.sel(rho=0.5).mean()) - 0.5) < 0.1 and abs(float(ds.u_lag1.sel(rho=0.0).mean())) < 0.1


def test_a_store_of_other_settings_or_rows_is_refused(experiment):
    cfg, _, opened = experiment
    spec = grid.expand(cfg, "dynamics")["E"][0].spec
    table = runs.run_table(spec)
    spec_teacher = {**spec, "common": {**spec["common"], "teacher": {**spec["common"]["teacher"], "a_star": 0.5}}}
    with pytest.raises(ValueError, match="teacher"):
        job.make_data(spec_teacher, table, opened)
    spec_seeds = {**spec, "common": {**spec["common"], "seeds": 3}}
    with pytest.raises(ValueError, match="lacks rows"):
        job.make_data(spec_seeds, runs.run_table(spec_seeds), opened)


def test_data_needs_the_specs_precision(experiment):
    import jax

    cfg, _, _ = experiment
    with jax.enable_x64(False), pytest.raises(ValueError, match="precision"):
        data.data_dataset(grid.experiment_spec(cfg, "dynamics", "E"))


def test_the_rules_narrowed_spec_gives_the_same_store(experiment):
    """The data rule passes only `STUDY.data_keys` of the experiment spec (its trigger):
    the store made from it is the store made from the whole spec."""
    from ssmflow.studies.dynamics import STUDY

    cfg, _, stored = experiment
    narrow = data.data_dataset(STUDY.data_keys(grid.experiment_spec(cfg, "dynamics", "E")))
    xr.testing.assert_identical(narrow.drop_attrs(), stored.load().drop_attrs())
    assert narrow.attrs["config_digest"] == stored.attrs["config_digest"]
    bigger = cfgmod.validate({**cfg, "dynamics": {**cfg["dynamics"], "experiments": {"E": {
        **cfg["dynamics"]["experiments"]["E"], "axes": {**cfg["dynamics"]["experiments"]["E"]["axes"], "kappa": [0.02, 0.05]}}}}})
    assert STUDY.data_keys(grid.experiment_spec(bigger, "dynamics", "E")) == STUDY.data_keys(grid.experiment_spec(cfg, "dynamics", "E"))
