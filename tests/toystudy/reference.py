"""The toy's theory: GD on a quadratic in closed form, on the trajectories' coords."""

from __future__ import annotations

import numpy as np
import xarray as xr


def theory_dataset(traj: xr.Dataset, data: xr.Dataset) -> xr.Dataset:
    """loss(dim, lr, seed, step) of w_t = w_ls + (I - lr H)^t (0 - w_ls), exactly (float64)."""
    out = np.full(traj.loss.shape, np.nan)
    for i, dim in enumerate(traj.dim.values):
        for k, seed in enumerate(traj.seed.values):
            x = data.x.sel(seed=seed).values[:, :dim]
            y = data.y.sel(seed=seed).values
            n = len(y)
            h = x.T @ x / n
            w_ls = np.linalg.lstsq(x, y, rcond=None)[0]
            evals, evecs = np.linalg.eigh(h)
            for j, lr in enumerate(traj.lr.values):
                for s, step in enumerate(traj.step.values):
                    w = w_ls - evecs @ (((1 - lr * evals) ** step) * (evecs.T @ w_ls))
                    out[i, j, k, s] = 0.5 * np.mean((x @ w - y) ** 2)
    ds = xr.Dataset({"loss": (traj.loss.dims, out)}, coords={d: traj[d] for d in traj.loss.dims})
    ds.attrs = {"config_digest": traj.attrs["config_digest"], "precision": "float64"}
    return ds
