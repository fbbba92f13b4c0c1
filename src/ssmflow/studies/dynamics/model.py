"""Linear SSMs of the `dynamics` study as Equinox modules (spec section 2.1, 3.5, 3.6).

`LinearSSM` is a stack of `depth` layers, each a real diagonal SSM with no feedthrough:
x_t = A x_{t-1} + B u_t, y_t = C x_t, so layer l has transfer function
H_l(w) = sum_n c_ln b_ln G_{a_ln}(w) and the stack has H = prod_l H_l (eq. 20).
`param="tied"` shares one scalar b and c across the states of a layer (B = b 1_N,
C = c 1_N^T); `"untied"` has per-state entries. The poles `a` are fixed (C3) unless
`train_a` (F5), in which case they get gradients too.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ssmflow._types import Array, Complex, Float
from ssmflow.studies.dynamics.data import causal_convolve, one_pole_transfer, rfft_weights

PARAMS = ("tied", "untied")


class LinearSSM(eqx.Module):
    """A stack of real diagonal linear SSM layers (no D), fixed or trainable poles.

    **Fields:** `a` (layer, state) poles; `b`, `c` (layer, width), width = 1 if tied
    else state; `conv` 'circular' | 'causal'; `train_a` whether the poles are trained.
    """

    a: Float[Array, "layer state"]
    b: Float[Array, "layer width"]
    c: Float[Array, "layer width"]
    conv: str = eqx.field(static=True)
    train_a: bool = eqx.field(static=True)

    def __check_init__(self):
        if self.conv not in ("circular", "causal"):
            raise ValueError(f"`conv` (={self.conv!r}) must be 'circular' or 'causal'.")
        if self.b.shape != self.c.shape or self.b.shape[-1] not in (1, self.a.shape[-1]):
            raise ValueError(f"`b` {self.b.shape} and `c` {self.c.shape} must be (layer, 1) or (layer, state={self.a.shape[-1]}).")

    @property
    def poles(self) -> Float[Array, "layer state"]:
        return self.a if self.train_a else jax.lax.stop_gradient(self.a)

    def products(self) -> Float[Array, "layer state"]:
        """p_ln = c_ln b_ln for every state (tied: broadcast over states)."""
        return jnp.broadcast_to(self.c * self.b, self.a.shape)

    def gain(self) -> Float[Array, ""]:
        """The total gain p: sum_n c_n b_n for one layer, the product over layers (eq. 2, 20)."""
        return jnp.prod(jnp.sum(self.products(), axis=-1))

    def transfer(self, length: int) -> Complex[Array, " freq"]:
        """H(w_k) = prod_l sum_n p_ln G_{a_ln}(w_k) on the rfft bins of length L."""
        g = jax.vmap(jax.vmap(lambda a: one_pole_transfer(a, length)))(self.poles)  # layer state freq
        return jnp.prod(jnp.sum(self.products()[..., None] * g, axis=1), axis=0)

    def layer_kernels(self, length: int) -> Float[Array, "layer time"]:
        """Impulse responses K_j = sum_n p_n a_n^j of each layer, j = 0..L-1."""
        j = jnp.arange(length)
        powers = jnp.where(j == 0, 1.0, self.poles[..., None] ** jnp.maximum(j, 1))
        return jnp.sum(self.products()[..., None] * powers, axis=1)

    def __call__(self, u: Float[Array, "... time"]) -> Float[Array, "... time"]:
        """The model output yhat for input sequences u (last axis is time)."""
        length = u.shape[-1]
        if self.conv == "circular":
            return jnp.fft.irfft(jnp.fft.rfft(u) * self.transfer(length), length)
        for kernel in self.layer_kernels(length):
            u = causal_convolve(u, kernel)
        return u


def time_loss(model: LinearSSM, u, y) -> Float[Array, ""]:
    """Loss (C4) in the time domain: (1/(2PL)) sum_{p,t} (y - yhat)^2."""
    return 0.5 * jnp.mean((y - model(u)) ** 2)


def spectral_loss(model: LinearSSM, uf, yf, length: int) -> Float[Array, ""]:
    """Loss (C4) by Parseval from rfft'd data: (1/(2PL^2)) sum_{p,k} |Y - H U|^2.

    Exact in circular mode, and the form trained on there (no FFT per step).

    **Arguments:** `uf`, `yf` (P, L//2+1) = rfft of u, y; `length` L.
    """
    resid = yf - model.transfer(length)[None] * uf
    power = jnp.real(resid) ** 2 + jnp.imag(resid) ** 2
    return 0.5 * jnp.sum(rfft_weights(length) * jnp.mean(power, axis=0)) / length**2


def bin_fit(uf, yf):
    """Per-bin least-squares fit Y = G U over the sequences, what the circular loss needs.

    S_uu = <|U|^2>, the filter G = <Y conj(U)> / S_uu and the residual power
    R = <|Y - G U|^2> (a bin without input power has G = 0, R = <|Y|^2>).

    **Arguments:** `uf`, `yf` (P, L//2+1) = rfft of u, y.
    **Returns:** three arrays (L//2+1,): `s_uu`, `g` (complex), `r`.
    """
    s_uu = jnp.mean(jnp.real(uf) ** 2 + jnp.imag(uf) ** 2, axis=0)
    s_yu = jnp.mean(yf * jnp.conj(uf), axis=0)
    powered = s_uu > 0
    g = jnp.where(powered, s_yu / jnp.where(powered, s_uu, 1.0), 0.0)
    resid = yf - g[None] * uf
    r = jnp.mean(jnp.real(resid) ** 2 + jnp.imag(resid) ** 2, axis=0)
    return s_uu, g, r


def spectral_loss_from_fit(model: LinearSSM, s_uu, g, r, length: int) -> Float[Array, ""]:
    """`spectral_loss` with the mean over sequences taken first (same value, P times cheaper).

    (1/(2L^2)) sum_k w_k [S_uu |H - G|^2 + R] with `bin_fit`'s S_uu, G, R: the average of
    |Y - H U|^2 over sequences, since H does not depend on the sequence and the cross term
    <(Y - G U) conj(U)> is zero by the choice of G. Every term is >= 0, so rounding cannot
    take the loss below zero (the expanded S_yy - 2 Re(conj(H) S_yu) + |H|^2 S_uu reached
    -1e-17 at a noiseless teacher's optimum).
    """
    d = model.transfer(length) - g
    per_bin = s_uu * (jnp.real(d) ** 2 + jnp.imag(d) ** 2) + r
    return 0.5 * jnp.sum(rfft_weights(length) * per_bin) / length**2
