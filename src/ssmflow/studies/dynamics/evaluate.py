"""Simulation against theory, per run, for the `dynamics` study.

Metrics (dims: the run dims): the max pointwise relative and absolute (/p*) error of p
between GD and the flow theory, the max relative error against the exact GD map, the
measured half-time t_half = k_half lam against the predicted one, the steps to 50 % and
90 % of p* (measured first crossing k_half, k_90 against the theory's t_half_th / lam,
t_90_th / lam: a common step axis where lam is shared, lr_mode fixed), the final distance
to p*, and for stacks/lazy runs the fitted terminal time constant (spec T12).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest


def fitted_time_constant(traj: xr.Dataset, lo: float = 1e-3, hi: float = 0.3) -> xr.DataArray:
    """T = -1/slope of ln|p - p*| against t over records with lo < |p-p*|/|p0-p*| < hi (T12)."""
    gap = np.abs(traj.p - traj.p_star)
    frac = gap / np.abs(traj.p.isel(step=0) - traj.p_star)
    use = (frac > lo) & (frac < hi) & np.isfinite(traj.t)

    def fit(t, g, m):
        if m.sum() < 3:
            return np.nan
        slope = np.polyfit(t[m], np.log(g[m]), 1)[0]
        return -1.0 / slope

    return xr.apply_ufunc(fit, traj.t, gap, use, input_core_dims=[["step"]] * 3, vectorize=True)


def _last_finite(x: np.ndarray) -> float:
    ok = np.flatnonzero(np.isfinite(x))
    return x[ok[-1]] if len(ok) else np.nan


def metrics_dataset(traj: xr.Dataset, theory: xr.Dataset) -> xr.Dataset:
    """Per-run metrics of GD against theory (see module docstring)."""
    live = np.isfinite(traj.p) & np.isfinite(theory.p)
    rel = (np.abs(traj.p - theory.p) / np.abs(theory.p)).where(live)
    absn = (np.abs(traj.p - theory.p) / np.abs(theory.p_star)).where(live)
    rel_map = (np.abs(traj.p - theory.p_map) / np.abs(theory.p_map)).where(live & np.isfinite(theory.p_map))
    last = xr.apply_ufunc(_last_finite, traj.p, input_core_dims=[["step"]], vectorize=True)
    out = xr.Dataset(
        {
            "max_rel_err_p": rel.max("step"),
            "max_abs_err_p": absn.max("step"),
            "max_rel_err_map": rel_map.max("step"),
            "t_half": traj.t_half,
            "t_half_th": theory.t_half_th,
            "t_half_rel_err": np.abs(traj.t_half - theory.t_half_th) / theory.t_half_th,
            "t_90": traj.t_90,
            "t_90_th": theory.t_90_th,
            "t_90_rel_err": np.abs(traj.t_90 - theory.t_90_th) / theory.t_90_th,
            "k_half": traj.k_half,
            "k_half_th": theory.t_half_th / traj.lam,
            "k_90": traj.k_90,
            "k_90_th": theory.t_90_th / traj.lam,
            "final_rel_gap": np.abs(last - traj.p_star) / np.abs(traj.p_star),
            "tau_fit": fitted_time_constant(traj),
            "tau_term": theory.tau_term,
            "kappa_eff": traj.lam / (2 * theory.tau_term),
            "lam": traj.lam,
            "diverged": traj.diverged,
        }
    )
    out.attrs = store.provenance(traj.attrs.get("config_digest", digest({})), traj.attrs.get("precision", "float64"),
                                 study="dynamics", experiment=traj.attrs.get("experiment", ""))
    return out
