"""Applying a diagonal SSM to a sequence: FFT convolution and the recurrent reference paths.

    (15) y = irfft( rfft(u, n=2L) rfft(Kbar, n=2L), n=2L )[0:L]       (linear, causal)
    (17) x_l = Abar x_{l-1} + Bbar u_l,  x_{-1} = 0,  y_l = 2 Re(C x_l)

Padding to 2L makes the FFT product a linear (not circular) convolution. The recurrences
are the references for tests and streaming; the skip term D u is added by the caller.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmflow._types import Array, Complex, Float


def causal_fft_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"]) -> Float[Array, "*batch time"]:
    """Causal linear convolution y_l = sum_{j <= l} K_{l-j} u_j along the last axis (eq. 15).

    **Arguments:** `u` and `kernel`, broadcastable, last axis L.
    **Returns:** `y` with the last axis L.
    """
    length = u.shape[-1]
    n = 2 * length
    return jnp.fft.irfft(jnp.fft.rfft(u, n=n) * jnp.fft.rfft(kernel, n=n), n=n)[..., :length]


def scan_recurrence(abar: Complex[Array, " mode"], bbar: Complex[Array, " mode"], c: Complex[Array, " mode"],
                    u: Float[Array, " time"]) -> Float[Array, " time"]:
    """y_l = 2 Re(C x_l) with x_l = Abar x_{l-1} + Bbar u_l, by `jax.lax.scan` (eq. 17).

    **Arguments:** `abar`, `bbar`, `c`: `(mode,)`; `u`: `(L,)`.
    **Returns:** `(L,)`.
    """

    def step(x_prev, u_l):
        x_l = abar * x_prev + bbar * u_l
        return x_l, 2 * jnp.real(jnp.sum(c * x_l))

    return jax.lax.scan(step, jnp.zeros_like(bbar), u)[1]


def associative_recurrence(abar: Complex[Array, " mode"], bbar: Complex[Array, " mode"], c: Complex[Array, " mode"],
                           u: Float[Array, " time"]) -> Float[Array, " time"]:
    """The recurrence of `scan_recurrence` by `jax.lax.associative_scan` (parallel prefix).

    The operator (a_i, b_i) . (a_j, b_j) = (a_j a_i, a_j b_i + b_j) composes two steps.
    """

    def combine(first, second):
        a_i, b_i = first
        a_j, b_j = second
        return a_j * a_i, a_j * b_i + b_j

    elems = (jnp.broadcast_to(abar, (u.shape[0], abar.shape[0])), u[:, None] * bbar)
    _, x = jax.lax.associative_scan(combine, elems)
    return 2 * jnp.real(x @ c)
