"""The toy's metrics: simulation against the closed form, per run."""

from __future__ import annotations

import numpy as np
import xarray as xr


def metrics_dataset(traj: xr.Dataset, theory: xr.Dataset) -> xr.Dataset:
    rel = np.abs(traj.loss - theory.loss) / np.abs(theory.loss)
    return xr.Dataset({"max_rel_err_loss": rel.max("step"), "final_loss": traj.loss.isel(step=-1)})
