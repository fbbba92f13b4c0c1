"""Identities that gate `freqbias` training (rule `freqbias_checks`), in float64.

The analytic DTFT (eq. 3) against the FFT of a long kernel, the Sobolev filter at beta = 0
against the unfiltered convolution (bit-identical), and the upstream waves filter at
beta = 1 against its constant symmetric weight (eq. 15).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssmflow.ssm.conv import causal_fft_conv
from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.ssm.init import INITS, diagonal_init
from ssmflow.ssm.kernels import vandermonde_kernel
from ssmflow.ssm.sobolev import UPSTREAM_SCALE, sobolev_fft_conv, upstream_emul_conv
from ssmflow.ssm.transfer import kernel_response, rfft_omega, transfer_discrete

STATE, STEP = 16, 0.05


def _check(name: str, value: float, tol: float) -> dict:
    return {"name": name, "value": float(value), "tol": tol, "passed": bool(np.isfinite(value) and value <= tol)}


def check_transfer() -> list[dict]:
    """Eq. 3 = rfft(Kbar, 8L) for every init, L with max|Abar|^L < 1e-8, to 1e-6 relative."""
    out = []
    c = jnp.exp(2j * jnp.pi * jax.random.uniform(jax.random.key(1), (STATE // 2,)))
    for name in INITS:
        lam, b = diagonal_init(name, jax.random.key(0), 1, STATE)
        disc = discretize_zoh(lam[0], b[0], STEP)
        length = int(np.ceil(np.log(1e-8) / float(jnp.max(disc.log_abar.real))))
        w = c * disc.bbar
        fft = kernel_response(vandermonde_kernel(disc.log_abar, w, length), 8 * length)
        exact = transfer_discrete(disc.log_abar, w, rfft_omega(8 * length))
        out.append(_check(f"DTFT = FFT of long kernel, {name}", float(jnp.max(jnp.abs(fft - exact)) / jnp.max(jnp.abs(exact))), 1e-6))
    return out


def check_filters() -> list[dict]:
    """beta = 0 is bit-identical to the unfiltered convolution; eq. 15 at beta = 1."""
    rng = np.random.default_rng(0)
    u, k = jnp.asarray(rng.standard_normal(512)), jnp.asarray(rng.standard_normal(512))
    plain = causal_fft_conv(u, k)
    same = float(jnp.max(jnp.abs(sobolev_fft_conv(u, k, 0.0, 123.0) - plain)))
    length = u.shape[0]
    gain = 1 + length / (2 * UPSTREAM_SCALE)
    spec = jnp.fft.rfft(u) * jnp.fft.rfft(k)
    ref = jnp.fft.irfft(spec * jnp.full(spec.shape, gain).at[0].set(1.0), n=length)
    emul = float(jnp.max(jnp.abs(upstream_emul_conv(u, k, 1.0) - ref)) / jnp.max(jnp.abs(ref)))
    return [_check("Sobolev beta = 0 bit-identical", same, 0.0), _check("upstream-emul = constant gain (eq. 15)", emul, 1e-10)]


def run_checks() -> dict:
    """Run every check; `passed` is False if any fails."""
    checks = check_transfer() + check_filters()
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
