"""The icl theory store (spec E0, section 12) on the coords of an experiment's trajectories.

For every (d, N) of a linear experiment: trace moments (closed form and Monte Carlo with
SE), the GD risk as a polynomial in a shared eta (population (7) and eval set), eta*_K,
the per-step optimum, the optimal losses (population, eval set, Monte Carlo with SE), the
official-style grid argmin, the exact eval-set one-step minimiser with its bootstrap SE,
the zero predictor, the constructed parameters (17)/(19) at eta*_K and the float64
exactness errors of T1-T6 (`exact_err`), all for K = 1..max_gd_steps (dim `gd_steps`).
For a sine experiment: Monte Carlo references of section 3.3 with SE.

The loss against eta is stored exactly, as polynomial coefficients over `power`
(`gd_loss_eta_coef`, `gd_loss_eta_eval_coef`); `gd_loss_eta` evaluates them on any grid.
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest
from ssmflow.studies.icl import checks
from ssmflow.studies.icl import theory as th
from ssmflow.studies.icl.gauge import sublayer_roles
from ssmflow.studies.icl.model import GDSSM

SCALARS = ("zero_loss_pop", "zero_loss_eval", "zero_loss_mc", "zero_loss_mc_se", "eta_star_eval", "eta_star_eval_se")
PER_K = ("eta_star", "eta_star_grid", "gd_loss_pop", "gd_loss_eval", "gd_loss_ps_pop", "gd_loss_ps_eval", "gd_loss_mc", "gd_loss_mc_se")


def gd_loss_eta(coef: xr.DataArray, eta) -> xr.DataArray:
    """The GD loss at step sizes `eta` (array or DataArray) from stored coefficients over `power`."""
    eta = eta if isinstance(eta, xr.DataArray) else xr.DataArray(np.asarray(eta, dtype=float), dims="eta", coords={"eta": eta})
    return xr.polyval(eta, coef.rename(power="degree").assign_coords(degree=coef.power.values))


def _constructed(ref: th.LinearReference, k: int, n: int, d: int, common: dict) -> GDSSM:
    m = common["model"]
    return GDSSM.constructed(ref.etas(k, search=common["eta_search"]), n, d, c_norm=m["c_norm"], pred_sign=m["pred_sign"],
                             dtype=np.float64)


def linear_point(common: dict, d: int, n: int, variant: str, d_max: int) -> dict[str, np.ndarray]:
    """Every theory variable of one (d, N); parameter arrays NaN-padded to d_max and 2K_max - 1 layers."""
    k_max = common["max_gd_steps"]
    ref = th.linear_reference(common, d, n, variant)
    out = {"mu": ref.mu, "mu_mc": ref.mu_mc, "mu_se": ref.mu_se,
           "gd_loss_eta_coef": ref.poly_pop, "gd_loss_eta_eval_coef": ref.poly_eval, "eta_perstep": ref.eta_perstep}
    out.update({k: getattr(ref, k) for k in PER_K + SCALARS})
    n_layer = 2 * k_max - 1
    wq = np.full((k_max, n_layer, 3, 3), np.nan)
    dd = np.full((k_max, 3), np.nan)
    lam = np.full((k_max, n_layer, d_max, d_max), np.nan)
    cc = np.full((k_max, n_layer, d_max, d_max), np.nan)
    err = np.full((k_max, len(checks.CHECKS)), np.nan)
    for k in range(1, k_max + 1):
        s = 2 * k - 1
        with jax.enable_x64(True):  # the theory store is float64, whatever precision the job trained in
            star = _constructed(ref, k, n, d, common)
            wq[k - 1, :s] = np.asarray(star.wq)
            dd[k - 1] = np.asarray(star.D)
            lam[k - 1, :s, :d, :d] = np.asarray(star.decays())
            cc[k - 1, :s, :d, :d] = np.asarray(star.C)
        e = checks.exact_errors(d, n, k, variant, eta=ref.etas(k)[0], etas_ps=ref.etas(k, per_step=True), n_tasks=20)
        err[k - 1] = [e[c] for c in checks.CHECKS]
    out.update(W_q_star=wq, D_star=dd, Lambda_star=lam, C_star=cc, exact_err=err)
    return out


LINEAR_DIMS = {
    "mu": ("moment",), "mu_mc": ("moment",), "mu_se": ("moment",),
    "gd_loss_eta_coef": ("gd_steps", "power"), "gd_loss_eta_eval_coef": ("gd_steps", "power"),
    "eta_perstep": ("gd_steps", "step_index"), "W_q_star": ("gd_steps", "sublayer", "wa", "wb"), "D_star": ("gd_steps", "tok"),
    "Lambda_star": ("gd_steps", "sublayer", "row", "col"), "C_star": ("gd_steps", "sublayer", "row", "col"),
    "exact_err": ("gd_steps", "check"),
    **{k: ("gd_steps",) for k in PER_K}, **{k: () for k in SCALARS},
}


def linear_theory(traj: xr.Dataset, common: dict) -> xr.Dataset:
    """Theory of a gdssm or baselines experiment on the (d, n_context) of its trajectories."""
    variant = traj.attrs["variant"]
    ds_, ns = [int(v) for v in traj.d.values], [int(v) for v in traj.n_context.values]
    d_max, k_max = max(ds_), common["max_gd_steps"]
    points = {(d, n): linear_point(common, d, n, variant, d_max) for d in ds_ for n in ns}
    data = {}
    for name, dims in LINEAR_DIMS.items():
        stacked = np.stack([np.stack([np.asarray(points[(d, n)][name], dtype=float) for n in ns]) for d in ds_])
        data[name] = (("d", "n_context") + dims, stacked)
    coords = {
        "d": ds_, "n_context": ns, "gd_steps": np.arange(1, k_max + 1), "power": np.arange(2 * k_max + 1),
        "moment": np.arange(2 * k_max + 1), "step_index": np.arange(1, k_max + 1), "sublayer": np.arange(2 * k_max - 1),
        "role": ("sublayer", np.array(sublayer_roles(k_max))), "wa": np.arange(3), "wb": np.arange(3), "tok": np.arange(3),
        "row": np.arange(d_max), "col": np.arange(d_max), "check": np.array(checks.CHECKS, dtype=object),
    }
    return xr.Dataset(data, coords=coords)


def sine_theory(traj: xr.Dataset, common: dict) -> xr.Dataset:
    """Monte Carlo references of section 3.3 for each (sine_draw, n_context) of the trajectories."""
    draws, ns = [str(v) for v in traj.sine_draw.values], [int(v) for v in traj.n_context.values]
    refs = {(dr, n): th.sine_reference(common, n, dr) for dr in draws for n in ns}
    data = {}
    for name in ("zero", "prior", "gd_raw", "gd_affine"):
        for j, suffix in enumerate(("_mc", "_mc_se")):
            data[f"{name}_loss{suffix}"] = (("sine_draw", "n_context"), np.array([[refs[(dr, n)][name][j] for n in ns] for dr in draws]))
    return xr.Dataset(data, coords={"sine_draw": np.array(draws, dtype=object), "n_context": ns})


def theory_dataset(traj: xr.Dataset) -> xr.Dataset:
    """Theory of one icl experiment (module docstring), on its trajectories' task coords."""
    common, kind = traj.attrs["icl"], traj.attrs["kind"]
    ds = sine_theory(traj, common) if kind == "sine" else linear_theory(traj, common)
    ds.attrs = store.provenance(
        traj.attrs.get("config_digest", digest({})), "float64", study="icl", experiment=traj.attrs.get("experiment", ""),
        kind=kind, variant=traj.attrs["variant"], eval_seed=common["eval_seed"], ref_seed=common["ref_seed"], icl=common,
        source="closed forms (7)-(10), Monte Carlo moments and risks, exact eval-set Gram polynomials, checks T1-T6",
    )
    return ds
