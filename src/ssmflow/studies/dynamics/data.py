"""Teacher-SSM data for the `dynamics` study (spec section 2.3).

Inputs are white or AR(1) with unit marginal variance; the teacher is a one-pole SSM
H_*(w) = g* G_{a*}(w) applied in the model's convolution mode (C2), plus optional
white output noise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmflow._types import Array, Float, PRNGKeyArray

CONV_MODES = ("circular", "causal")


def ar1_inputs(key: PRNGKeyArray, n_seq: int, length: int, rho) -> Float[Array, "seq time"]:
    """AR(1) sequences with unit marginal variance: u_t = rho u_{t-1} + sqrt(1-rho^2) eps_t.

    `rho = 0` gives white noise. u_0 ~ N(0, 1) (stationary start).

    **Arguments:** `key`; `n_seq` (P) and `length` (L); `rho` scalar in (-1, 1).
    **Returns:** array (P, L).
    """
    eps = jax.random.normal(key, (length, n_seq))
    scale = jnp.sqrt(1.0 - rho**2)

    def step(prev, e):
        u = rho * prev + scale * e
        return u, u

    _, rest = jax.lax.scan(step, eps[0], eps[1:])
    return jnp.concatenate([eps[:1], rest], axis=0).T


def one_pole_kernel(a, length: int) -> Float[Array, "time"]:
    """Impulse response a^j, j = 0..L-1, of G_a(w) = 1 / (1 - a e^{-iw}) (eq. 4)."""
    j = jnp.arange(length)
    return jnp.where(j == 0, 1.0, a ** jnp.maximum(j, 1))


def one_pole_transfer(a, length: int):
    """G_a(w_k) = 1 / (1 - a e^{-i w_k}) on the rfft bins w_k = 2 pi k / L (eq. 4)."""
    w = 2 * jnp.pi * jnp.arange(length // 2 + 1) / length
    return 1.0 / (1.0 - a * jnp.exp(-1j * w))


def rfft_weights(length: int) -> Float[Array, "freq"]:
    """Weights that turn a sum over rfft bins into the sum over all L DFT bins (C1)."""
    w = jnp.full(length // 2 + 1, 2.0)
    w = w.at[0].set(1.0)
    if length % 2 == 0:
        w = w.at[-1].set(1.0)
    return w


def causal_convolve(u: Float[Array, "... time"], kernel: Float[Array, "time"]) -> Float[Array, "... time"]:
    """Causal convolution y_t = sum_{j<=t} K_j u_{t-j}, by FFT zero-padded to 2L."""
    length = u.shape[-1]
    n = 2 * length
    return jnp.fft.irfft(jnp.fft.rfft(u, n) * jnp.fft.rfft(kernel, n), n)[..., :length]


def filter_one_pole(u: Float[Array, "... time"], a, mode: str) -> Float[Array, "... time"]:
    """z = G_a u in the given convolution mode (C2)."""
    length = u.shape[-1]
    if mode == "circular":
        return jnp.fft.irfft(jnp.fft.rfft(u) * one_pole_transfer(a, length), length)
    if mode == "causal":
        return causal_convolve(u, one_pole_kernel(a, length))
    raise ValueError(f"`conv` (={mode!r}) must be one of {CONV_MODES}.")


def teacher_dataset(
    key: PRNGKeyArray,
    *,
    n_seq: int,
    length: int,
    rho,
    a_star,
    g_star,
    noise_std,
    mode: str,
) -> tuple[Float[Array, "seq time"], Float[Array, "seq time"]]:
    """Inputs u and teacher outputs y = g* G_{a*} u + noise, both (P, L)."""
    k_u, k_n = jax.random.split(key)
    u = ar1_inputs(k_u, n_seq, length, rho)
    y = g_star * filter_one_pole(u, a_star, mode)
    y = y + noise_std * jax.random.normal(k_n, y.shape)
    return u, y
