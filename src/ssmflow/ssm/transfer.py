"""Transfer functions of diagonal SSMs and the frequency-bias measures (freqbias.md sections 3-5).

    (2)  G(is) = sum_j [ w_j/(is - a_j) + conj(w_j)/(is - conj(a_j)) ] + D
    (3)  Khat(omega) = sum_j [ W_j/(1 - Abar_j e^{-i omega}) + conj(W_j)/(1 - conj(Abar_j) e^{-i omega}) ]
    (5)  dG(is)/dy_j = i w_j/(is - a_j)^2
    (10) centroid = int omega |Khat|^2 / int |Khat|^2;  tail = energy above omega_top / total

w_j = C_j B_j (continuous) and W_j = C_j Bbar_j (discrete), one per conjugate pair as in
`ssm.kernels`; Khat is the DTFT of the infinite kernel Kbar_l = 2 Re(sum_j W_j Abar_j^l)
(without D). Units: s in rad per unit time, omega = s Delta in rad per sample.
"""

from __future__ import annotations

import jax.numpy as jnp

from ssmflow._types import Array, ArrayLike, Complex, Float


def transfer_continuous(lam: Complex[Array, "*channel mode"], weights: Complex[Array, "*channel mode"],
                        s: Float[ArrayLike, " freq"], d: Float[ArrayLike, "*#channel"] = 0.0) -> Complex[Array, "*channel freq"]:
    """G(is) of eq. 2, summed over every conjugate pair.

    **Arguments:** `lam`: eigenvalues a_j `(..., mode)` (Re < 0); `weights`: C_j B_j, same
    shape; `s`: angular frequencies `(freq,)`; `d`: the skip D (broadcast per channel).
    **Returns:** `(..., freq)` complex.
    """
    iss = 1j * jnp.asarray(s)[..., None, :]
    lam, weights = lam[..., None], weights[..., None]
    g = jnp.sum(weights / (iss - lam) + jnp.conj(weights) / (iss - jnp.conj(lam)), axis=-2)
    return g + jnp.asarray(d)[..., None]


def transfer_gradient_im(lam: Complex[Array, " mode"], weights: Complex[Array, " mode"],
                         s: Float[ArrayLike, " freq"]) -> Complex[Array, "mode freq"]:
    """dG(is)/dy_j = i w_j/(is - a_j)^2 (eq. 5), the kept pole of each pair only, `(mode, freq)`."""
    return 1j * weights[:, None] / (1j * jnp.asarray(s)[None, :] - lam[:, None]) ** 2


def transfer_discrete(log_abar: Complex[Array, "*channel mode"], weights: Complex[Array, "*channel mode"],
                      omega: Float[ArrayLike, " freq"]) -> Complex[Array, "*channel freq"]:
    """Khat(omega) of eq. 3: the DTFT of the discrete kernel of (Abar = exp(log_abar), W = C Bbar).

    **Arguments:** `log_abar`: `(..., mode)` (from `ssm.discretize`); `weights`: C Bbar,
    same shape; `omega`: rad/sample `(freq,)`.
    **Returns:** `(..., freq)` complex.
    """
    z = jnp.exp(-1j * jnp.asarray(omega))[..., None, :]
    abar, weights = jnp.exp(log_abar)[..., None], weights[..., None]
    return jnp.sum(weights / (1 - abar * z) + jnp.conj(weights) / (1 - jnp.conj(abar) * z), axis=-2)


def incoherent_power(log_abar: Complex[Array, "*channel mode"], weights: Complex[Array, "*channel mode"],
                     omega: Float[ArrayLike, " freq"]) -> Float[Array, "*channel freq"]:
    """E|Khat(omega)|^2 over independent uniform phases of the weights: the sum of |pole term|^2 over
    every pole (both of each pair), so no phase draw can make modes cancel or add up."""
    z = jnp.exp(-1j * jnp.asarray(omega))[..., None, :]
    abar, power = jnp.exp(log_abar)[..., None], jnp.abs(weights[..., None]) ** 2
    return jnp.sum(power / jnp.abs(1 - abar * z) ** 2 + power / jnp.abs(1 - jnp.conj(abar) * z) ** 2, axis=-2)


def kernel_response(kernel: Float[Array, "*channel time"], n_fft: int) -> Complex[Array, "*channel bin"]:
    """rfft(Kbar, n_fft): the response of a finite kernel on the bins omega_m = 2 pi m / n_fft."""
    return jnp.fft.rfft(kernel, n=n_fft)


def rfft_omega(n_fft: int) -> Float[Array, " bin"]:
    """The angular frequencies 2 pi m / n_fft (rad/sample) of the rfft bins m = 0..n_fft/2 (F1)."""
    return 2 * jnp.pi * jnp.arange(n_fft // 2 + 1) / n_fft


def _trapezoid(y: Float[Array, "*batch freq"], x: Float[Array, " freq"]) -> Float[Array, "*batch"]:
    return jnp.sum((y[..., 1:] + y[..., :-1]) * jnp.diff(x), axis=-1) / 2


def spectral_centroid(omega: Float[Array, " freq"], power: Float[Array, "*batch freq"]) -> Float[Array, "*batch"]:
    """int omega P d omega / int P d omega (eq. 10), trapezoid rule on the given grid."""
    return _trapezoid(omega * power, omega) / _trapezoid(power, omega)


def band_tail(omega: Float[Array, " freq"], power: Float[Array, "*batch freq"],
              cutoff: Float[ArrayLike, "*#batch"]) -> Float[Array, "*batch"]:
    """Fraction of the energy int P d omega above `cutoff` (eq. 10), trapezoid rule."""
    above = jnp.where(omega >= jnp.asarray(cutoff)[..., None], power, 0.0)
    return _trapezoid(above, omega) / _trapezoid(power, omega)


def total_variation(s: Float[Array, " freq"], dg_ds: Complex[Array, "*batch freq"]) -> Float[Array, "*batch"]:
    """Numeric TV of G on the grid `s`: the trapezoid integral of |dG/ds| (eq. 4, left side)."""
    return _trapezoid(jnp.abs(dg_ds), s)


def transfer_derivative(lam: Complex[Array, "*batch mode"], weights: Complex[Array, "*batch mode"],
                        s: Float[ArrayLike, " freq"]) -> Complex[Array, "*batch freq"]:
    """dG(is)/ds = -i sum_p w_p/(is - a_p)^2 over every pole p (both of each pair)."""
    iss = 1j * jnp.asarray(s)[..., None, :]
    lam, weights = lam[..., None], weights[..., None]
    return -1j * jnp.sum(weights / (iss - lam) ** 2 + jnp.conj(weights) / (iss - jnp.conj(lam)) ** 2, axis=-2)


def tv_bound(lam: Complex[Array, "*batch mode"], weights: Complex[Array, "*batch mode"],
             omega_cut: Float[ArrayLike, "*#batch"]) -> Float[Array, "*batch"]:
    """Eq. 4: sum_p (|w_p|/|x_p|)(pi/2 - arctan((Omega - y_p)/|x_p|)) over every pole p (y_p = +-y_j)."""
    x = jnp.abs(lam.real)
    cut = jnp.asarray(omega_cut)[..., None]
    per_sign = [jnp.abs(weights) / x * (jnp.pi / 2 - jnp.arctan((cut - sign * lam.imag) / x)) for sign in (1, -1)]
    return jnp.sum(per_sign[0] + per_sign[1], axis=-1)
