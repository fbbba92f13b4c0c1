"""Per-run metrics of a freqbias experiment and the study-level expectations E1-E3 (freqbias.md section 10).

Waves: the final test MAE per wave, its seed mean, the top wave's MAE relative to the
baseline (alpha = 1, beta = 0) and the drift of the eigenvalues' imaginary parts (E2:
`e2_below_wave3`, no mode of the run ends above the third wave's frequency; meaningful where the
modes start below it, e.g. at alpha = 1).
E1 flags (seed means, top wave = the highest frequency):
- `e1_baseline_grows`: at the baseline MAE_4 > MAE_3 > MAE_2;
- `e1_vs_baseline`: per (alpha, beta), MAE_4 below (True) or above (False) the baseline;
- `e1_vs_beta0`: per (alpha, beta), MAE_4 below the same alpha at beta = 0.

Denoising: mse_out and the transmission T per noise and source, their seed means, and the
ratio T_V/T_H (E3: < 1 removes the high-frequency vertical stripes, > 1 the horizontal ones).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest

BASELINE = {"alpha": 1.0, "beta": 0.0}


def waves_metrics(traj: xr.Dataset) -> xr.Dataset:
    """Per-run waves metrics and the E1 flags (module docstring)."""
    wave_freq = traj.wave_freq
    traj = traj.drop_vars("wave_freq")  # (variant, wave): would clash once a wave is selected
    final = traj.test_mae.isel(step=-1, drop=True)
    mean = final.mean("seed")
    top = int(traj.wave.values[-1])
    mae4 = mean.sel(wave=top, drop=True)
    out = {
        "test_mae": final,
        "test_mae_mean": mean,
        "test_mae_sd": final.std("seed", ddof=1),
        "final_train_loss": traj.train_loss.isel(step=-1, drop=True),
        "im_drift": np.abs(traj.lambda_im.isel(step=-1, drop=True) - traj.lambda_im.isel(step=0, drop=True)).max(("channel", "mode")),
        "im_drift_rel": (np.abs(traj.lambda_im.isel(step=-1, drop=True) / traj.lambda_im.isel(step=0, drop=True) - 1))
        .median(("channel", "mode")),
        "max_im_final": traj.lambda_im.isel(step=-1, drop=True).max(("channel", "mode")),
        "e2_below_wave3": traj.lambda_im.isel(step=-1, drop=True).max(("channel", "mode")) < wave_freq.isel(wave=2, drop=True),
        "diverged": traj.diverged_at >= 0,
    }
    if 0.0 in traj.beta.values:
        out["e1_vs_beta0"] = mae4 < mae4.sel(beta=0.0, drop=True)
    if BASELINE["alpha"] in traj.alpha.values and BASELINE["beta"] in traj.beta.values:
        base = mean.sel(**BASELINE, drop=True)
        out["top_mae_vs_baseline"] = mae4 / base.sel(wave=top, drop=True)
        out["e1_vs_baseline"] = mae4 < base.sel(wave=top, drop=True)
        out["e1_baseline_grows"] = (base.isel(wave=-1) > base.isel(wave=-2)) & (base.isel(wave=-2) > base.isel(wave=-3))
    return xr.Dataset(out)


def denoise_metrics(traj: xr.Dataset) -> xr.Dataset:
    """Per-run denoising metrics: mse_out and transmission per noise and source, T_V/T_H (E3)."""
    trans = traj.transmission.sel(noise=["horizontal", "vertical"])
    mean = trans.mean("seed")
    return xr.Dataset({
        "mse_out": traj.mse_out,
        "mse_ref": traj.mse_ref,
        "transmission": traj.transmission,
        "mse_out_mean": traj.mse_out.mean("seed"),
        "transmission_mean": traj.transmission.mean("seed"),
        "tv_over_th": mean.sel(noise="vertical", drop=True) / mean.sel(noise="horizontal", drop=True),
        "removes_vertical": mean.sel(noise="vertical", drop=True) < mean.sel(noise="horizontal", drop=True),
        "final_train_loss": traj.train_loss.isel(step=-1, drop=True),
        "diverged": traj.diverged_at >= 0,
    })


def metrics_dataset(traj: xr.Dataset, theory: xr.Dataset | None = None) -> xr.Dataset:
    """The metrics of a waves or denoise trajectory store (by its `kind` attr); `theory` must be None."""
    if theory is not None:
        raise ValueError("the freqbias experiments have no theory store on their coords; call metrics_dataset(traj).")
    out = waves_metrics(traj) if traj.attrs.get("kind") == "waves" else denoise_metrics(traj)
    out.attrs = store.provenance(traj.attrs.get("config_digest", digest({})), traj.attrs.get("precision", "float32"),
                                 study="freqbias", experiment=traj.attrs.get("experiment", ""), kind=traj.attrs.get("kind", ""))
    return out
