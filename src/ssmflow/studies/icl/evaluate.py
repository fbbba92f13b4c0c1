"""Trained models against theory, per run, for the icl study (spec 14.C-E).

Linear experiments: the final eval loss and its ratio to K-step GD (shared and per-step
eta*, and the 1-step GD loss), to the zero predictor; the final functional alignment
(22)-(24); for GD-SSMs the final gauge-fixed parameter alignment (25) (first sublayer,
yx_1, and the minimum over sublayers); the agreement of the trajectories' GD loss with
the theory store's. Sine experiments: the final loss against the section-3.3 references.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest

LAST = {"step": -1}


def _final(traj: xr.Dataset, name: str) -> xr.DataArray:
    return traj[name].isel(LAST, drop=True)


def linear_metrics(traj: xr.Dataset, theory: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per-run metrics of a gdssm or baselines experiment."""
    k = traj["blocks"] if "blocks" in traj.dims else xr.DataArray(1)
    final = _final(traj, "loss")
    th_gd = theory.gd_loss_eval.sel(gd_steps=k)
    out = {
        "final_loss": final,
        "gd_loss": traj.gd_loss,
        "loss_ratio": final / traj.gd_loss,
        "loss_ratio_ps": final / traj.gd_loss_ps,
        "loss_ratio_1step": final / theory.gd_loss_eval.sel(gd_steps=1, drop=True),
        "zero_ratio": final / traj.zero_loss,
        "gd_loss_vs_theory": np.abs(traj.gd_loss / th_gd - 1.0).drop_vars("gd_steps", errors="ignore"),
        "diverged": traj.diverged_at >= 0,
    }
    for name in ("model_cos", "preds_diff_rel", "model_diff_rel", "model_cos_ps", "preds_diff_rel_ps", "model_diff_rel_ps"):
        out[name] = _final(traj, name)
    if "align_wq" in traj:
        for name in ("align_wq", "align_c", "gain_ratio", "eta_hat"):
            out[name] = _final(traj, name).isel(sublayer=0, drop=True)
        for name in ("align_wq", "align_c"):
            out[f"{name}_min"] = _final(traj, name).min("sublayer")
        out["lambda_mean"] = _final(traj, "lambda_mean").mean("sublayer")
        out["lambda_min"] = _final(traj, "lambda_min").min("sublayer")
        out["align_d"] = _final(traj, "align_d")
    return out


def sine_metrics(traj: xr.Dataset, theory: xr.Dataset) -> dict[str, xr.DataArray]:
    """Per-run metrics of a sine experiment (T19)."""
    final = _final(traj, "loss")
    out = {"final_loss": final, "preds_diff": _final(traj, "preds_diff"), "diverged": traj.diverged_at >= 0}
    for ref in ("zero", "prior", "gd_raw", "gd_affine"):
        out[f"{ref}_ratio"] = final / traj[f"{ref}_loss"]
        out[f"{ref}_loss_mc"] = theory[f"{ref}_loss_mc"]
    return out


def metrics_dataset(traj: xr.Dataset, theory: xr.Dataset) -> xr.Dataset:
    """Per-run metrics of one icl experiment (module docstring)."""
    fn = sine_metrics if traj.attrs["kind"] == "sine" else linear_metrics
    out = xr.Dataset(fn(traj, theory))
    out.attrs = store.provenance(traj.attrs.get("config_digest", digest({})), traj.attrs.get("precision", "float32"),
                                 study="icl", experiment=traj.attrs.get("experiment", ""), kind=traj.attrs["kind"])
    return out
