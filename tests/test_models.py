"""Trained models as artifacts (`ssmflow.models`): saved in the shard store, exported per
run as `eqx.tree_serialise_leaves` files with the hyperparameters, rebuilt exactly."""

from __future__ import annotations

import json

import equinox as eqx
import numpy as np
import pytest
from conftest import quadratic_ensemble, tiny_config
from test_icl_config import icl_config

from ssmflow import config as cfgmod
from ssmflow import grid, models, store, train
from ssmflow.freshness import JOB_SPEC_ATTR


@pytest.fixture(autouse=True)
def _restore_precision():
    """`models.load` sets JAX's precision to the model's (float32 for icl): restore the suite's."""
    yield
    train.set_precision("float64")


def test_each_runs_bytes_give_back_its_final_parameters_exactly(tmp_path):
    res = train.train_ensemble(*quadratic_ensemble((1.0, 0.5, 0.25), n_steps=50), chunk_steps=16)
    rows = models.run_bytes(res.final_params)
    assert rows.dtype == np.uint8 and rows.shape[0] == 3
    for i in range(3):
        path = tmp_path / f"{i}.eqx"
        path.write_bytes(rows[i].tobytes())
        back = eqx.tree_deserialise_leaves(path, {"w": np.float64(0.0)})
        assert float(back["w"]) == float(np.asarray(res.final_params["w"])[i])  # bit for bit
    # the runs trained differently (else the check above could not tell runs apart)
    assert len({float(w) for w in np.asarray(res.final_params["w"])}) == 3


@pytest.fixture(scope="module")
def icl_shard(tmp_path_factory):
    """A tiny icl shard (2 seeds, 300 steps) trained, written and reopened as the train rule does."""
    from ssmflow.studies.icl import job

    cfg = icl_config(E1={"kind": "gdssm", "axes": {"d": [3], "n_context": [4], "blocks": [1]}})
    cfg["icl"].update(seeds=2, eval_tasks=100, steps=300, eval_every=100, chunk_steps=100, ref_draws=2000)
    spec = grid.expand(cfgmod.validate(cfg), "icl")["E1"][0].spec
    ds = job.train_shard(spec)
    ds.attrs[JOB_SPEC_ATTR] = json.dumps(spec, sort_keys=True)
    root = tmp_path_factory.mktemp("models")
    path = store.write_atomic(ds, root / "shard.zarr", whole=("step", "seed", "sublayer", "row", "col"))
    return root, spec, store.open_store(path).load()


def test_a_shard_store_holds_each_runs_model_in_one_chunk(icl_shard):
    _, _, ds = icl_shard
    var = ds[models.MODEL_VAR]
    assert var.dims == ("d", "n_context", "blocks", "seed", models.MODEL_DIM) and var.dtype == np.uint8
    assert var.encoding["chunks"][-1] == var.sizes[models.MODEL_DIM]  # a run's bytes are one chunk, not one per byte
    gathered = store.gather([], parts=[ds])
    assert models.MODEL_VAR not in gathered and models.MODEL_DIM not in gathered.dims  # the trajectories stay as they were


def test_exported_models_rebuild_the_trained_runs(icl_shard):
    """Each exported run rebuilds (from its spec, by the study's template) a model whose
    parameters sit one optimizer step from the last recorded snapshot (recorded before the
    last update), and far from the initial one: its own run, trained, in the right leaves."""
    from ssmflow.studies.icl import job

    root, spec, ds = icl_shard
    out = models.export([ds], root / "models", "icl", "E1")
    idx = models.index(out)
    assert [r["coords"] for r in idx["runs"]] == [{"d": 3, "n_context": 4, "blocks": 1, "seed": s} for s in (0, 1)]
    assert idx["runs"][0]["spec"] == spec and idx["missing"] == []
    lr = spec["common"]["optimizer"]["lr"]
    for seed in (0, 1):
        model = models.load(out, seed=seed)
        got = job.param_records(model)
        last = ds.sel(seed=seed).isel(step=-1)
        first = ds.sel(seed=seed).isel(step=0)
        for rec, name in ((".wq", "W_q"), (".C", "C"), (".D", "D")):
            a = np.asarray(got[rec]).reshape(-1)
            near = np.abs(a - last[name].values.reshape(-1)[: a.size])
            far = np.abs(a - first[name].values.reshape(-1)[: a.size])
            assert np.nanmax(near) <= 1.5 * lr, (seed, name, np.nanmax(near))
            assert np.nanmax(far) > 10 * lr, (seed, name, np.nanmax(far))
    with pytest.raises(ValueError, match="2 runs .* match"):
        models.load(out, d=3)


def test_a_folder_without_an_index_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a models folder"):
        models.index(tmp_path)


def test_a_shard_without_models_is_listed_as_missing(icl_shard, tmp_path):
    _, _, ds = icl_shard
    out = models.export([ds.drop_vars(models.MODEL_VAR)], tmp_path / "models", "icl", "E1")
    assert models.index(out)["runs"] == [] and models.index(out)["missing"] == [ds.attrs["shard"]]
    assert not list(tmp_path.glob("models.tmp-*"))  # the temporary folder is gone


def test_a_stage_key_is_not_in_the_training_spec():
    """An experiment's `ood` block (a stage's settings) stays out of the shard spec, so editing
    it retrains nothing; the stage gets it through `grid.stage_settings`."""
    from ssmflow import study

    cfg = icl_config(E1={"kind": "gdssm", "axes": {"d": [3], "n_context": [4], "blocks": [1]},
                         "ood": {"input": [0.5, 1.0], "weight": [2.0]}})
    valid = cfgmod.validate(cfg)
    spec = grid.expand(valid, "icl")["E1"][0].spec
    assert "ood" not in spec["settings"] and "ood" not in grid.experiment_spec(valid, "icl", "E1")["settings"]
    stage = study.get("icl").stage("ood")
    assert grid.stage_settings(valid, "icl", "E1", stage) == {"input": [0.5, 1.0], "weight": [2.0]}
    assert stage.applies(valid["icl"]["experiments"]["E1"])
    del cfg["icl"]["experiments"]["E1"]["ood"]
    assert not stage.applies(cfgmod.validate(cfg)["icl"]["experiments"]["E1"])


def _shard_models(ds, spec, tmp_path):
    """Each run of a freshly trained shard Dataset, exported and rebuilt by its study's template."""
    ds.attrs[JOB_SPEC_ATTR] = json.dumps(spec, sort_keys=True)
    ds.attrs.setdefault("shard", spec["shard"])
    out = models.export([ds], tmp_path / spec["shard"], spec["study"], spec["experiment"])
    return [(run, models.load_entry(out, run)) for run in models.index(out)["runs"]]


def test_every_studys_template_rebuilds_its_runs(tmp_path):
    """dynamics and freqbias (waves, denoise): every saved run loads into its study's
    `model_template` with the trained values, e.g. the final gain p of a dynamics run
    is its last record but for the one update after it."""
    from test_freqbias_data import small_config

    from ssmflow.studies.dynamics import job as dyn_job
    from ssmflow.studies.freqbias import job as fb_job
    cfg = cfgmod.validate(tiny_config())
    spec = grid.expand(cfg, "dynamics")["F1"][0].spec
    ds = dyn_job.train_shard(spec)
    loaded = _shard_models(ds, spec, tmp_path)
    assert len(loaded) == ds.p.isel(step=0).size
    for run, model in loaded:
        sel = {k: v for k, v in run["coords"].items()}
        p = ds.p.sel(sel).values
        last = p[np.isfinite(p)][-1]
        assert abs(float(model.gain()) - last) <= 1e-3 * max(1.0, abs(last)), (sel, float(model.gain()), last)
    fb = small_config()
    for exp in ("waves", "denoise"):
        spec = grid.expand(fb, "freqbias")[exp][0].spec
        train.set_precision(spec["common"]["precision"])  # the last load set the one of its model
        ds = fb_job.train_shard(spec)
        loaded = _shard_models(ds, spec, tmp_path)
        assert len(loaded) == int(ds.train_loss.isel(step=0).notnull().sum())  # the trained grid points (waves: pairs)
        for run, model in loaded:
            sel = {k: v for k, v in run["coords"].items()}
            # the last record is the state before the last update (of a decayed, small step)
            if exp == "waves":
                np.testing.assert_allclose(np.asarray(model.dec_w), ds.dec_w.sel(sel).values, atol=0.02)
            else:
                np.testing.assert_allclose(np.asarray(model.c_re), ds.c_re.sel(sel).isel(step=-1).values, atol=0.02)


def test_a_shard_with_a_run_dim_called_model_keeps_its_models(tmp_path):
    """icl's baselines have a run dim `model` (lsa, lti_ssm): the saved models' variable must
    not collide with it, and each baseline rebuilds from its own spec."""
    from ssmflow.studies.icl import job

    cfg = icl_config(E5={"kind": "baselines", "axes": {"model": ["lsa"], "d": [3], "n_context": [4]}})
    cfg["icl"].update(seeds=1, eval_tasks=100, steps=20, eval_every=10, chunk_steps=10, ref_draws=2000)
    spec = grid.expand(cfgmod.validate(cfg), "icl")["E5"][0].spec
    ds = job.train_shard(spec)
    assert ds["model"].values.tolist() == ["lsa"] and models.MODEL_VAR != "model"
    (run, model), = _shard_models(ds, spec, tmp_path)
    assert run["coords"] == {"model": "lsa", "d": 3, "n_context": 4, "seed": 0}
    assert type(model).__name__ == "LSA"
