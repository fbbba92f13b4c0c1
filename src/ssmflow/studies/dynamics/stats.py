"""Sufficient statistics of the `dynamics` study (spec eqs. 6-7).

sigma_n = <y z_n>, eta_nm = <z_n z_m>, Syy = <y^2>, with z_n = G_{a_n} u the input
filtered by state n in the model's convolution mode, <.> the mean over sequences and
time. For a stack of one-state layers, z is u filtered by every layer's pole in turn.
"""

from __future__ import annotations

import jax.numpy as jnp

from ssmflow._types import Array, Float
from ssmflow.studies.dynamics.data import filter_one_pole, one_pole_transfer


def filtered_inputs(u: Float[Array, "seq time"], poles: Float[Array, "layer state"], mode: str) -> Float[Array, "state seq time"]:
    """The regressors z_n of (6): per state for one layer; u through every layer for a stack."""
    if poles.shape[0] == 1:
        return jnp.stack([filter_one_pole(u, a, mode) for a in poles[0]])
    z = u
    for a in poles[:, 0]:
        z = filter_one_pole(z, a, mode)
    return z[None]


def empirical_stats(u, y, poles, mode: str):
    """Empirical (sigma_n, eta_nm, Syy) of eq. (6), the canonical definition (both modes).

    **Arguments:** `u`, `y` (P, L); `poles` (layer, state); `mode` 'circular' | 'causal'.
    **Returns:** sigma (state,), eta (state, state), syy scalar.
    """
    z = filtered_inputs(u, poles, mode)
    sigma = jnp.mean(z * y[None], axis=(1, 2))
    eta = jnp.einsum("npt,mpt->nm", z, z) / (u.shape[0] * u.shape[1])
    return sigma, eta, jnp.mean(y**2)


def spectral_stats(u, y, poles_1layer: Float[Array, " state"]):
    """sigma_n and eta_nm from the spectra, eq. (7) (exact in circular mode).

    **Arguments:** `u`, `y` (P, L); `poles_1layer` (state,).
    **Returns:** sigma (state,), eta (state, state).
    """
    n_seq, length = u.shape
    uf, yf = jnp.fft.fft(u), jnp.fft.fft(y)
    s_uu = jnp.mean(jnp.abs(uf) ** 2, axis=0) / length
    s_yu = jnp.mean(yf * jnp.conj(uf), axis=0) / length
    w = 2 * jnp.pi * jnp.arange(length) / length
    g = 1.0 / (1.0 - poles_1layer[:, None] * jnp.exp(-1j * w)[None])
    sigma = jnp.mean(jnp.real(jnp.conj(g) * s_yu[None]), axis=1)
    eta = jnp.mean(jnp.real(jnp.conj(g)[:, None] * g[None]) * s_uu[None, None], axis=2)
    return sigma, eta


def quadratic_loss(p_n, sigma, eta, syy):
    """Loss as a quadratic form in p_n for fixed A, eq. (10)."""
    return 0.5 * (syy - 2 * jnp.dot(p_n, sigma) + p_n @ eta @ p_n)


__all__ = ["empirical_stats", "filtered_inputs", "one_pole_transfer", "quadratic_loss", "spectral_stats"]
