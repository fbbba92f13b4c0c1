"""One toy training job: full-batch GD on least squares for every lr x seed of a shard."""

from __future__ import annotations

import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow import grid, store, train
from ssmflow.config import digest


def train_shard(spec: dict, data: xr.Dataset | None = None) -> xr.Dataset:
    """Every lr x seed of the shard, from the experiment's data store (None: synthesized here)."""
    t0 = time.perf_counter()
    if data is None:
        from toystudy.data import data_dataset

        data = data_dataset(spec)
    common = spec["common"]
    dim = spec["axes"]["dim"][0]
    lrs, seeds = spec["axes"]["lr"], grid.seed_values(spec)
    rows = list(itertools.product(lrs, seeds))
    sel = data.sel(seed=seeds).isel(feature=slice(0, dim)).load()
    x = jnp.asarray(np.stack([sel.x.sel(seed=s).values for _, s in rows]))
    y = jnp.asarray(np.stack([sel.y.sel(seed=s).values for _, s in rows]))
    keys = jnp.stack([train.run_key("toy", {"dim": dim, "lr": lr, "seed": s}) for lr, s in rows])
    runs = {"key": keys, "lam": jnp.asarray([lr for lr, _ in rows]), "x": x, "y": y}
    rec = np.arange(0, common["steps"] + 1, common["record_every"])
    steps = np.tile(rec, (len(rows), 1))

    def init_fn(run):
        return {"w": jnp.zeros(dim)}

    def loss_fn(params, run, key):
        r = run["x"] @ params["w"] - run["y"]
        return 0.5 * jnp.mean(r**2)

    def observe_fn(params, run):
        return {"loss": loss_fn(params, run, None), "w": params["w"]}

    res = train.train_ensemble(init_fn, loss_fn, observe_fn, runs, steps, chunk_steps=common["steps"])
    shape = (1, len(lrs), len(seeds), len(rec))
    ds = xr.Dataset(
        {"loss": (("dim", "lr", "seed", "step"), res.records["loss"].reshape(shape)),
         "w": (("dim", "lr", "seed", "step", "feature"), res.records["w"].reshape(*shape, dim)),
         "diverged_at": (("dim", "lr", "seed"), res.diverged_at.reshape(shape[:3]))},
        coords={"dim": [dim], "lr": lrs, "seed": seeds, "step": rec, "feature": np.arange(dim)},
    )
    ds.attrs = store.provenance(digest(spec), common["precision"], study="toy", experiment=spec["experiment"], shard=spec["shard"],
                                steps_per_second=float(res.steps_per_second), n_steps=int(res.n_steps),
                                wall_seconds=float(time.perf_counter() - t0), device=jax.devices()[0].device_kind)
    return ds
