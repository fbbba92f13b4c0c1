"""SSM convolution kernels of a diagonal system (s4d.md eq. 14).

    Kbar_l = 2 Re( sum_{n < N/2} C_n Bbar_n Abar_n^l ),   l = 0..L-1

`vandermonde_kernel` is the fast path (a factorized Vandermonde product: few
exponentials and one real matrix product per channel); `vandermonde_kernel_naive`
materializes the `(mode, L)` Vandermonde matrix; `dense_kernel` is an independent reference that writes each conjugate
pair as a real 2x2 block, discretizes the block matrix densely (`expm`, or a linear
solve for bilinear) and takes matrix powers, so tests can compare the two to 1e-10.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from ssmflow._types import Array, Complex, Float
from ssmflow.ssm.discretize import discretize


def vandermonde_kernel(log_abar: Complex[Array, "*channel mode"], weights: Complex[Array, "*channel mode"],
                       length: int) -> Float[Array, "*channel time"]:
    """Kbar_l = 2 Re sum_n weights_n exp(l log_abar_n) for l = 0..length-1 (eq. 14).

    The Vandermonde product is factorized with l = q b + r (b = ceil(sqrt(L))):
    exp(l z) = exp(q b z) exp(r z), so only O(N sqrt(L)) exponentials are taken and the
    sum over modes is one real matrix product per channel, `(L/b, N) x (N, b)`. Memory
    is O(N sqrt(L) + L) per channel; no `(mode, L)` matrix is materialized.

    **Arguments:** `log_abar`: log of the discrete eigenvalues `(..., mode)`; `weights`:
    C_n Bbar_n `(..., mode)`; `length`: L.
    **Returns:** the real kernel `(..., L)`.
    """
    block = max(1, math.isqrt(length - 1) + 1) if length > 1 else 1
    n_blocks = -(-length // block)
    real = jnp.real(log_abar).dtype
    inner = jnp.exp(log_abar[..., None] * jnp.arange(block, dtype=real))  # (..., mode, block)
    outer = weights[..., None] * jnp.exp(log_abar[..., None] * (block * jnp.arange(n_blocks, dtype=real)))
    # 2 Re(sum_n outer_nq inner_nr) as one real contraction over (Re, Im) x mode
    left = jnp.concatenate([outer.real, -outer.imag], axis=-2)
    right = jnp.concatenate([inner.real, inner.imag], axis=-2)
    k = 2 * jnp.einsum("...nq,...nr->...qr", left, right)
    return k.reshape(*k.shape[:-2], n_blocks * block)[..., :length]


def vandermonde_kernel_naive(log_abar: Complex[Array, "*channel mode"], weights: Complex[Array, "*channel mode"],
                             length: int) -> Float[Array, "*channel time"]:
    """Eq. 14 with the full `(mode, L)` Vandermonde matrix materialized (debug/reference backend)."""
    powers = jnp.exp(log_abar[..., None] * jnp.arange(length, dtype=jnp.real(log_abar).dtype))
    return 2 * jnp.real(jnp.sum(weights[..., None] * powers, axis=-2))


def ssm_kernel(lam: Complex[Array, "*channel mode"], b: Complex[Array, "*channel mode"],
               c: Complex[Array, "*channel mode"], step: Float[Array, "*channel"] | Float[Array, ""],
               length: int, method: str) -> Float[Array, "*channel time"]:
    """The discrete kernel of (lambda, B, C, Delta): discretize (eqs. 12-13), then eq. 14.

    **Arguments:** `lam`, `b`, `c`: `(..., mode)`; `step`: Delta per channel `(...)`;
    `length`: L; `method`: "zoh" or "bilinear".
    **Returns:** `(..., L)`.
    """
    disc = discretize(lam, b, jnp.asarray(step)[..., None], method)
    return vandermonde_kernel(disc.log_abar, c * disc.bbar, length)


def pair_blocks(lam: Complex[Array, " mode"], b: Complex[Array, " mode"], c: Complex[Array, " mode"]):
    """The real form of N/2 conjugate pairs: A block-diagonal `(N, N)`, B `(N,)`, C `(N,)`.

    Each pair (lambda, conj lambda) becomes [[Re, -Im], [Im, Re]] acting on
    (Re x, Im x); with B = (Re b, Im b) and C = 2 (Re c, -Im c), C e^{tA} B equals
    2 Re(c e^{t lambda} b).
    """
    n = lam.shape[0]
    blocks = jnp.stack([jnp.stack([lam.real, -lam.imag], -1), jnp.stack([lam.imag, lam.real], -1)], -2)
    a = jsl.block_diag(*[blocks[i] for i in range(n)])
    b_real = jnp.stack([b.real, b.imag], -1).reshape(-1)
    c_real = 2 * jnp.stack([c.real, -c.imag], -1).reshape(-1)
    return a, b_real, c_real


def dense_kernel(lam: Complex[Array, " mode"], b: Complex[Array, " mode"], c: Complex[Array, " mode"],
                 step: Float[Array, ""], length: int, method: str) -> Float[Array, " time"]:
    """Reference kernel C Abar^l Bbar with dense real matrices (one channel).

    ZOH: Abar = expm(Delta A), Bbar = A^{-1}(Abar - I) B; bilinear: Abar = (I - Delta A/2)^{-1}(I + Delta A/2),
    Bbar = (I - Delta A/2)^{-1} Delta B. Powers by repeated multiplication (`lax.scan`).

    **Returns:** `(L,)`.
    """
    a, b_real, c_real = pair_blocks(lam, b, c)
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    if method == "zoh":
        abar = jsl.expm(step * a)
        bbar = jnp.linalg.solve(a, (abar - eye) @ b_real)
    elif method == "bilinear":
        left = eye - step / 2 * a
        abar = jnp.linalg.solve(left, eye + step / 2 * a)
        bbar = jnp.linalg.solve(left, step * b_real)
    else:
        raise ValueError(f"`method` (={method!r}) is not a discretization; expected one of ('zoh', 'bilinear').")

    def power(x, _):
        return abar @ x, c_real @ x

    return jax.lax.scan(power, bbar, None, length=length)[1]
