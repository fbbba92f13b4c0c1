"""Adding seeds trains only the new seeds (ssmflow.reuse): the combined shard store equals a
from-scratch one, bit for bit with `batching: map`; any other change reuses nothing."""

from __future__ import annotations

import copy

import xarray as xr

from ssmflow import reuse, store
from toystudy import data as toy_data
from toystudy import job as toy_job

TIMING = ("created", "wall_seconds", "steps_per_second", "reused_seeds", "reused_seeds_batching")
CODE = ("toystudy.job", "toystudy.data")


def toy_spec(seeds: int, lr=(0.05, 0.2)) -> dict:
    return {"study": "toy", "experiment": "fit", "shard": "dim=3", "axes": {"dim": [3], "lr": list(lr)},
            "settings": {}, "common": {"precision": "float64", "seeds": seeds, "n_samples": 32, "noise_std": 0.1,
                                       "steps": 50, "record_every": 10}}


def trainer(calls: list):
    def train(spec):
        calls.append(spec.get("train_seeds"))
        return toy_job.train_shard(spec, toy_data.data_dataset(toy_spec(spec["common"]["seeds"], spec["axes"]["lr"])))
    return train


def run(spec, root, calls):
    ds = reuse.train_reusing(spec, trainer(calls), CODE, root=root)
    out = root / "out" / f"{len(calls)}.zarr"
    store.write_atomic(ds, out, whole=("step", "seed", "feature"))
    reuse.keep(spec, out, CODE, root=root)
    return store.open_store(out).load()


def same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert {k: v for k, v in a.attrs.items() if k not in TIMING} == {k: v for k, v in b.attrs.items() if k not in TIMING}


def test_raising_seeds_trains_only_the_new_seed(tmp_path):
    calls = []
    run(toy_spec(2), tmp_path, calls)
    grown = run(toy_spec(3), tmp_path, calls)
    assert calls == [None, [2]] and grown.attrs["reused_seeds"] == [0, 1]
    scratch = toy_job.train_shard(toy_spec(3), toy_data.data_dataset(toy_spec(3)))
    store.write_atomic(scratch, tmp_path / "scratch.zarr", whole=("step", "seed", "feature"))
    same(grown, store.open_store(tmp_path / "scratch.zarr").load())


def test_fewer_seeds_train_nothing(tmp_path):
    calls = []
    run(toy_spec(3), tmp_path, calls)
    fewer = run(toy_spec(2), tmp_path, calls)
    assert calls == [None] and fewer.seed.values.tolist() == [0, 1]


def test_another_setting_reuses_nothing(tmp_path):
    calls = []
    run(toy_spec(2), tmp_path, calls)
    run(toy_spec(3, lr=(0.05, 0.1)), tmp_path, calls)  # another learning rate: another base
    spec = copy.deepcopy(toy_spec(3))
    spec["common"]["steps"] = 60
    run(spec, tmp_path, calls)
    assert calls == [None, None, None]
    kept = list((tmp_path / "toy/fit/dim=3").iterdir())
    assert len(kept) == 1  # one archive per shard: the current setting's


def test_an_edited_training_module_reuses_nothing(tmp_path, monkeypatch):
    calls = []
    run(toy_spec(2), tmp_path, calls)
    monkeypatch.setattr(reuse.codedeps, "source_digest", lambda *m: "edited")
    run(toy_spec(3), tmp_path, calls)
    assert calls == [None, None]
