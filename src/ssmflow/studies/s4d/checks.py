"""Kernel identities that gate `s4d` training (rule `s4d_checks`), in float64.

Each check computes one quantity two independent ways and compares the largest error
(relative to the largest value) with a tolerance: the Vandermonde kernel against dense
real matrix powers and against the `lax.scan` recurrence, for every init and both
discretizations; the FFT convolution padded to 2L against direct convolution; and the
S4D-LegS eigenvalues against `numpy.linalg.eigvals` of the LegS normal part.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssmflow.ssm.conv import causal_fft_conv, scan_recurrence
from ssmflow.ssm.discretize import METHODS, discretize
from ssmflow.ssm.hippo import legs_normal_eig, legs_normal_part
from ssmflow.ssm.init import INITS, diagonal_init
from ssmflow.ssm.kernels import dense_kernel, vandermonde_kernel

STATE, LENGTH, STEP = 16, 256, 0.03
_dense = jax.jit(dense_kernel, static_argnames=("length", "method"))
_scan = jax.jit(scan_recurrence)


def _check(name: str, value: float, tol: float) -> dict:
    return {"name": name, "value": float(value), "tol": tol, "passed": bool(np.isfinite(value) and value <= tol)}


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def check_kernels() -> list[dict]:
    """Vandermonde (eq. 14) = dense C Abar^l Bbar = scan (eq. 17), every init and method, to 1e-10."""
    out = []
    key_c, key_u = jax.random.split(jax.random.key(3))
    c = jax.random.normal(key_c, (STATE // 2,)) + 1j * jax.random.normal(jax.random.fold_in(key_c, 1), (STATE // 2,))
    u = jax.random.normal(key_u, (LENGTH,))
    for name in INITS:
        lam, b = diagonal_init(name, jax.random.key(0), 1, STATE)
        for method in METHODS:
            disc = discretize(lam[0], b[0], STEP, method)
            kernel = vandermonde_kernel(disc.log_abar, c * disc.bbar, LENGTH)
            dense = _dense(lam[0], b[0], c, jnp.asarray(STEP), length=LENGTH, method=method)
            out.append(_check(f"kernel = dense, {name}, {method}", _rel(kernel, dense), 1e-10))
            scan = _scan(disc.abar, disc.bbar, c, u)
            out.append(_check(f"FFT conv = scan, {name}, {method}", _rel(causal_fft_conv(u, kernel), scan), 1e-10))
    return out


def check_convolution() -> list[dict]:
    """FFT convolution padded to 2L = numpy's direct convolution, to 1e-10."""
    rng = np.random.default_rng(0)
    u, k = rng.standard_normal(LENGTH), rng.standard_normal(LENGTH)
    direct = np.convolve(u, k)[:LENGTH]
    return [_check("FFT conv (2L) = direct conv", _rel(causal_fft_conv(jnp.asarray(u), jnp.asarray(k)), direct), 1e-10)]


def check_legs() -> list[dict]:
    """S4D-LegS eigenvalues (eigh of -iS) = positive-Im eigenvalues of A_LegS + P P^T (eigvals)."""
    eig = legs_normal_eig(64)
    ev = np.linalg.eigvals(legs_normal_part(64))
    ref = np.sort(ev.imag[ev.imag > 0])
    return [_check("LegS Im = eigvals of normal part", _rel(eig.mu, ref), 1e-8),
            _check("LegS Re = -1/2", float(np.max(np.abs(ev.real + 0.5))), 1e-8)]


def run_checks() -> dict:
    """Run every check; `passed` is False if any fails."""
    checks = check_kernels() + check_convolution() + check_legs()
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
