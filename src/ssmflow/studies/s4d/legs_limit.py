"""The LegS kernel limit (s4d.md section 7): the S4D-LegS basis against the exact LegS basis.

The diagonal system (A^(N), c B_LegS), A^(N) the normal part of HiPPO-LegS, has the basis

    x^(N)(t) = U e^{t Lambda} U* (c B_LegS) = 2 Re sum_{mu > 0} U_k e^{t lambda} (U* c B)     (eq. 9)

which for c = 1/2 converges weakly to phi_k(t) = [e^{tA} B]_k (eq. 20): raw samples stay
O(1) wrong (modes with Re = -1/2 and Im up to ~N^2/pi never decay), while step-averaged
values (eq. 22) and the response to a smooth input (eq. 23) converge. c = 1 (the
un-halved B) is the negative control. All in float64 NumPy on the host.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import xarray as xr
from scipy.integrate import IntegrationWarning, quad

from ssmflow.ssm.hippo import LegSEig, legs_basis, legs_normal_eig, legs_normal_part

MEASURES = ("pointwise", "avg", "smooth")
KINDS = ("analytic", "pointwise", "avg")


def time_grid(dt: float, t_max: float) -> np.ndarray:
    """t_m = m dt on [0, t_max)."""
    return np.arange(int(round(t_max / dt))) * dt


def relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    """||x - ref||_F / ||ref||_F over (k, t) jointly (eqs. 21-23)."""
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def _weights(eig: LegSEig, order: int, b_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Kept eigenvalues `(mode, 1)` and the weights U_k (U* c B) `(order, mode)`."""
    return (-0.5 + 1j * eig.mu)[:, None], eig.vectors[:order] * (b_scale * eig.b_proj)


def diagonal_basis(eig: LegSEig, t: np.ndarray, order: int, b_scale: float) -> np.ndarray:
    """Pointwise x_k^(N)(t) from the N/2 kept modes with 2 Re (eq. 9); `(order, time)`."""
    lam, weights = _weights(eig, order, b_scale)
    return 2 * np.real(weights @ np.exp(lam * t))


def diagonal_basis_avg(eig: LegSEig, t: np.ndarray, dt: float, order: int, b_scale: float) -> np.ndarray:
    """Step-averaged (1/dt) int_{t_m}^{t_m+dt} x^(N), per mode in closed form (eq. 22); `(order, time)`."""
    lam, weights = _weights(eig, order, b_scale)
    return 2 * np.real(weights @ ((np.exp(lam * (t + dt)) - np.exp(lam * t)) / (lam * dt)))


def diagonal_response(eig: LegSEig, t: np.ndarray, order: int, b_scale: float, freq: float) -> np.ndarray:
    """r(t) = int_0^t x^(N)(t - s) cos(freq s) ds, per mode (1/2) sum_sigma (e^{i sigma t} - e^{lambda t})/(i sigma - lambda) (eq. 23)."""
    lam, weights = _weights(eig, order, b_scale)
    per_mode = 0.5 * sum((np.exp(1j * s * t) - np.exp(lam * t)) / (1j * s - lam) for s in (freq, -freq))
    return 2 * np.real(weights @ per_mode)


def dense_basis(state_size: int, t: np.ndarray, order: int, b_scale: float) -> np.ndarray:
    """x^(N)(t_m) from the dense real normal part: expm(dt A^(N)) applied m times to c B_LegS.

    Independent of the eigendecomposition; `t` must be a uniform grid from 0.
    """
    dt = t[1] - t[0]
    step = scipy.linalg.expm(dt * legs_normal_part(state_size))
    x = b_scale * np.sqrt(2 * np.arange(state_size) + 1.0)
    out = np.empty((order, t.size))
    for m in range(t.size):
        out[:, m] = x[:order]
        x = step @ x
    return out


def analytic_avg(t: np.ndarray, dt: float, order: int, nodes: int = 16) -> np.ndarray:
    """(1/dt) int_{t_m}^{t_m+dt} phi_k by Gauss-Legendre with `nodes` nodes per step; `(order, time)`."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    pts = t[:, None] + dt * (1 + x) / 2
    return (legs_basis(pts.ravel(), order).reshape(order, t.size, nodes) * w).sum(-1) / 2


def analytic_response(t: np.ndarray, order: int, freq: float) -> np.ndarray:
    """int_0^t phi_k(t - s) cos(freq s) ds by adaptive quadrature (rtol 1e-12); `(order, time)`."""

    def one(k: int, tm: float) -> float:
        def integrand(s: float) -> float:
            return legs_basis(np.array([tm - s]), order)[k, 0] * np.cos(freq * s)

        return quad(integrand, 0.0, tm, epsrel=1e-12, epsabs=1e-14, limit=200)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        return np.array([[one(k, tm) for tm in t] for k in range(order)])


def convergence_dataset(state_sizes: list[int], dts: list[float], *, t_max: float = 2.0, order: int = 4,
                        freq: float = 3.0, b_scales: tuple[float, ...] = (0.5, 1.0)) -> xr.Dataset:
    """The kernel-limit store `legs_convergence.zarr` (s4d.md section 11).

    **Arguments:** `state_sizes`: N values (even); `dts`: step-average widths (the first
    is also the grid of the pointwise and smooth measures); `t_max`: end of [0, t_max);
    `order`: basis functions k = 0..order-1; `freq`: input frequency of eq. 23;
    `b_scales`: c values (1/2 halved, 1 negative control).
    **Returns:** `rel_error` (N, measure, dt, c), NaN where a measure has no dt;
    `basis` (N, kind, k, t) for c = 1/2 on the first grid; `dense_error` (N, c): max
    |modes - dense expm| relative to max |x|.
    """
    t = time_grid(dts[0], t_max)
    phi = legs_basis(t, order)
    smooth_ref = analytic_response(t, order, freq)
    avg_refs = {dt: analytic_avg(time_grid(dt, t_max), dt, order) for dt in dts}
    err = np.full((len(state_sizes), len(MEASURES), len(dts), len(b_scales)), np.nan)
    dense = np.full((len(state_sizes), len(b_scales)), np.nan)
    basis = np.full((len(state_sizes), len(KINDS), order, t.size), np.nan)
    for i, n in enumerate(state_sizes):
        eig = legs_normal_eig(n)
        dense_unit = dense_basis(n, t, order, 1.0)
        for j, c in enumerate(b_scales):
            x = diagonal_basis(eig, t, order, c)
            err[i, 0, 0, j] = relative_error(x, phi)
            dense[i, j] = float(np.max(np.abs(x - c * dense_unit)) / np.max(np.abs(x)))
            for d, dt in enumerate(dts):
                err[i, 1, d, j] = relative_error(diagonal_basis_avg(eig, time_grid(dt, t_max), dt, order, c), avg_refs[dt])
            err[i, 2, 0, j] = relative_error(diagonal_response(eig, t, order, c, freq), smooth_ref)
            if c == 0.5:
                basis[i] = [phi, x, diagonal_basis_avg(eig, t, dts[0], order, c)]
    return xr.Dataset(
        {
            "rel_error": (("N", "measure", "dt", "c"), err),
            "dense_error": (("N", "c"), dense),
            "basis": (("N", "kind", "k", "t"), basis),
        },
        coords={"N": np.asarray(state_sizes), "measure": np.array(MEASURES, dtype=object), "dt": np.asarray(dts, float),
                "c": np.asarray(b_scales, float), "kind": np.array(KINDS, dtype=object), "k": np.arange(order), "t": t},
        attrs={"t_max": t_max, "freq": freq, "order": order},
    )


def convergence_store(section: dict) -> xr.Dataset:
    """The kernel-limit store from the config's `s4d.kernel_limit` section (N, dt, t_max)."""
    return convergence_dataset(section["N"], section["dt"], t_max=section["t_max"])
