"""Per-run metrics of an `s4d` experiment and which initialization wins.

There is no closed-form theory for a trained S4D classifier, so the metrics compare
runs with each other (no theory store). Per run (init, disc, N, seed): the final test
metric and loss, the best validation metric, and the eigenvalue drift. Per (disc, N):
the seed mean and sd of the test metric for every init, its rank among the inits
(1 = best) and its gap to the best init, and per (disc, N, seed) the winning init.
"Best" is the highest accuracy or R^2, and the lowest MSE (adding: `LOWER_IS_BETTER`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest

#: metrics where lower is better (the others: higher is better)
LOWER_IS_BETTER = ("mse",)


def relative_im_drift(traj: xr.Dataset) -> xr.DataArray:
    """Median over (layer, channel, mode) of |Im lambda_end - Im lambda_0| / max(1, |Im lambda_0|) (spec S5)."""
    im0, im1 = traj.lambda_im.isel(step=0, drop=True), traj.lambda_im.isel(step=-1, drop=True)
    rel = np.abs(im1 - im0) / np.maximum(1.0, np.abs(im0))
    return rel.median(("layer", "channel", "mode"), skipna=True)


def metrics_dataset(traj: xr.Dataset, theory: xr.Dataset | None = None) -> xr.Dataset:
    """Per-run metrics and the init ranking (module docstring); `theory` must be None."""
    if theory is not None:
        raise ValueError("the s4d study has no theory store; call metrics_dataset(traj) without `theory`.")
    metric = traj.test_metric
    sign = -1.0 if traj.attrs.get("metric") in LOWER_IS_BETTER else 1.0
    mean, sd = metric.mean("seed"), metric.std("seed", ddof=1)
    score = sign * mean  # higher is better
    rank = 1 + (score.rename(init="other") > score).sum("other")  # 1 = best; ties share a rank
    winner = (sign * metric).fillna(-np.inf).argmax("init")
    best_val = traj.val_metric.min("step") if sign < 0 else traj.val_metric.max("step")
    out = xr.Dataset(
        {
            "test_metric": metric,
            "test_loss": traj.test_loss,
            "best_val_metric": best_val,
            "final_train_loss": traj.train_loss.isel(step=-1, drop=True),
            "im_drift": relative_im_drift(traj),
            "re_drift": (traj.lambda_re.isel(step=-1, drop=True) / traj.lambda_re.isel(step=0, drop=True)).median(("layer", "channel", "mode")),
            "diverged": traj.diverged_at >= 0,
            "test_metric_mean": mean,
            "test_metric_sd": sd,
            "init_rank": rank.where(mean.notnull()),
            "gap_to_best": score.max("init") - score,  # >= 0, in the metric's units
            "seed_winner": xr.DataArray(np.asarray(traj.init.values, dtype=object)[winner.values], dims=winner.dims,
                                        coords=winner.coords),
        }
    )
    out.attrs = store.provenance(traj.attrs.get("config_digest", digest({})), traj.attrs.get("precision", "float32"),
                                 study="s4d", experiment=traj.attrs.get("experiment", ""), task=traj.attrs.get("task", ""),
                                 metric=traj.attrs.get("metric", ""))
    return out
