"""Transfer functions of the trained models, from their stored parameters (freqbias.md section 9, `transfer.zarr`).

Eq. 3 on the recorded eigenvalues and C at init and at the end of training:
- waves: |Khat(omega)| and |w(omega) Khat(omega)| per channel, 512 log-spaced omega in [1e-5, pi];
- denoising: |g w(omega) Khat(omega)| on 4096 omega in [0, pi], and its square at the two stripe frequencies.

w is the run's Sobolev weight (1 + kappa |omega|/(2 pi))^beta; for the `upstream-emul` filter it
is the symmetric weight of the `upstream-waves` scale (its effective weight differs, eq. 15).
The rule `freqbias_transfer` writes `results/freqbias/<experiment>/transfer.zarr`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.ssm.transfer import transfer_discrete

PHASES = ("init", "final")


def _khat(lam, c, step: float, omega) -> np.ndarray:
    """Khat over the last axis `omega` for eigenvalues and C of shape (..., mode), B = 1, ZOH."""
    lam, c = jnp.asarray(lam), jnp.asarray(c)
    disc = discretize_zoh(lam, jnp.ones_like(lam), step)
    return np.asarray(transfer_discrete(disc.log_abar, c * disc.bbar, jnp.asarray(omega)))


def _weight(omega, beta, kappa) -> np.ndarray:
    """(1 + kappa |omega|/(2 pi))^beta; beta and kappa broadcast against omega's leading axes."""
    return (1 + np.asarray(kappa)[..., None] * np.abs(omega) / (2 * np.pi)) ** np.asarray(beta)[..., None]


def waves_transfer(traj: xr.Dataset, n_omega: int = 512) -> xr.Dataset:
    """mag_kernel and mag_filtered over (variant, filter, alpha, beta, seed, phase, channel, omega)."""
    omega = np.geomspace(1e-5, np.pi, n_omega)
    ends = traj[["lambda_re", "lambda_im", "c_re", "c_im"]].isel(step=[0, -1]).rename(step="phase")
    ends = ends.assign_coords(phase=np.array(PHASES, dtype=object))
    lam = np.nan_to_num((ends.lambda_re + 1j * ends.lambda_im).values, nan=-1.0)
    c = np.nan_to_num((ends.c_re + 1j * ends.c_im).values)
    khat = _khat(lam, c, float(traj.attrs["delta"]), omega)  # (variant, filter, alpha, beta, seed, phase, channel, omega)
    beta = traj.beta.values[None, None, None, :, None, None, None]
    # kappa per filter (a coordinate on `filter`; stores written before it was one carry it as an attr)
    kappa = traj["kappa"].values if "kappa" in traj.coords else np.full(traj.sizes["filter"], float(traj.attrs["kappa"]))
    kappa = np.asarray(kappa, float)[None, :, None, None, None, None, None]
    mag = np.abs(khat)
    missing = np.isnan(ends.lambda_re.values[..., :1])  # cells not run stay NaN
    dims = (*ends.lambda_re.dims[:-1], "omega")
    coords = {k: v for k, v in ends.coords.items() if k not in ("step", "mode")}
    return xr.Dataset(
        {"mag_kernel": (dims, np.where(missing, np.nan, mag)),
         "mag_filtered": (dims, np.where(missing, np.nan, mag * _weight(omega, beta, kappa)))},
        coords={**coords, "omega": omega},
        attrs={"kind": "waves", "delta": traj.attrs["delta"]},
    )


def denoise_transfer(traj: xr.Dataset, n_omega: int = 4096) -> xr.Dataset:
    """mag = |g w Khat| over (alpha, beta, seed, phase, omega), and at_stripes = mag^2 at omega_H, omega_V."""
    omega = np.linspace(0.0, np.pi, n_omega)
    ends = traj[["c_re", "c_im", "gain"]].isel(step=[0, -1]).rename(step="phase")
    lam = (traj.lambda_re + 1j * traj.lambda_im).values[:, None, None, None, :]  # (alpha, 1, 1, 1, mode)
    c = np.nan_to_num((ends.c_re + 1j * ends.c_im).values)  # (alpha, beta, seed, phase, mode)
    khat = _khat(np.broadcast_to(lam, c.shape), c, float(traj.attrs["delta"]), omega)
    beta = traj.beta.values[None, :, None, None]
    mag = np.abs(ends.gain.values[..., None] * _weight(omega, beta, float(traj.attrs["kappa"])) * khat)
    return xr.Dataset(
        {"mag": (("alpha", "beta", "seed", "phase", "omega"), mag), "at_stripes": traj.at_stripes},
        coords={"alpha": traj.alpha.values, "alpha_value": ("alpha", traj.alpha_value.values), "beta": traj.beta.values,
                "seed": traj.seed.values, "phase": np.array(PHASES, dtype=object), "omega": omega},
        attrs={"kind": "denoise", "delta": traj.attrs["delta"], "kappa": traj.attrs["kappa"],
               "omega_h": traj.attrs["omega_h"], "omega_v": traj.attrs["omega_v"]},
    )


def theory_dataset(traj: xr.Dataset) -> xr.Dataset:
    """The trained-model transfer store of a waves or denoise trajectory store (by its `kind` attr)."""
    return waves_transfer(traj) if traj.attrs.get("kind") == "waves" else denoise_transfer(traj)
