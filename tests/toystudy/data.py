"""The toy's data: per seed a Gaussian design and noisy linear targets (float64)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow import grid, store
from ssmflow.config import digest


def data_dataset(spec: dict) -> xr.Dataset:
    """X (seed, sample, feature) and y (seed, sample) for every seed, max(dim) features."""
    common = spec["common"]
    n, d = common["n_samples"], max(spec["axes"]["dim"])
    seeds = grid.seed_values(spec)
    xs, ys = [], []
    for seed in seeds:  # each seed's rows from its own generator: adding a seed changes no other row
        rng = np.random.default_rng([seed, 12345])
        x = rng.standard_normal((n, d))
        w = rng.standard_normal(d)
        xs.append(x)
        ys.append(x @ w + common["noise_std"] * rng.standard_normal(n))
    ds = xr.Dataset(
        {"x": (("seed", "sample", "feature"), np.asarray(xs)), "y": (("seed", "sample"), np.asarray(ys))},
        coords={"seed": seeds, "sample": np.arange(n), "feature": np.arange(d)},
    )
    ds.attrs.update(store.provenance(digest(spec), "float64", study="toy", experiment=spec["experiment"]))
    ds.attrs["whole_dims"] = ["seed", "sample", "feature"]
    return ds
