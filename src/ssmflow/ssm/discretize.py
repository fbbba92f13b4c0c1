"""Discretization of a diagonal SSM, elementwise per mode (s4d.md eqs. 12-13).

Both schemes return the discrete state multiplier as its logarithm, `log_abar`, so that
kernels take powers as exp(l log_abar): for ZOH log_abar = Delta lambda exactly; for
bilinear the principal logarithm of Abar (|Abar| < 1 when Re lambda < 0). Integer powers
do not depend on the branch.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from ssmflow._types import Array, ArrayLike, Complex, Float

METHODS = ("zoh", "bilinear")


class Discrete(NamedTuple):
    """A discretized diagonal system: Abar = exp(log_abar) and Bbar, same shape as lambda."""

    log_abar: Complex[Array, "*channel mode"]
    bbar: Complex[Array, "*channel mode"]

    @property
    def abar(self) -> Complex[Array, "*channel mode"]:
        return jnp.exp(self.log_abar)


def discretize_zoh(lam: Complex[Array, "*channel mode"], b: Complex[Array, "*channel mode"],
                   step: Float[ArrayLike, "*#channel"]) -> Discrete:
    """Zero-order hold (eq. 12): Abar = exp(Delta lambda), Bbar = (exp(Delta lambda) - 1)/lambda B.

    **Arguments:** `lam`, `b`: `(..., mode)`; `step`: Delta, broadcastable to them.
    **Returns:** `Discrete(log_abar, bbar)`, shapes as `lam`.
    """
    z = step * lam
    return Discrete(z, jnp.expm1(z) / lam * b)


def discretize_bilinear(lam: Complex[Array, "*channel mode"], b: Complex[Array, "*channel mode"],
                        step: Float[ArrayLike, "*#channel"]) -> Discrete:
    """Bilinear / Tustin (eq. 13): Abar = (1 + Delta lambda/2)/(1 - Delta lambda/2), Bbar = Delta B/(1 - Delta lambda/2).

    **Arguments:** `lam`, `b`: `(..., mode)`; `step`: Delta, broadcastable to them.
    **Returns:** `Discrete(log_abar, bbar)`, shapes as `lam`.
    """
    half = step * lam / 2
    return Discrete(jnp.log((1 + half) / (1 - half)), step * b / (1 - half))


def discretize(lam: Complex[Array, "*channel mode"], b: Complex[Array, "*channel mode"],
               step: Float[ArrayLike, "*#channel"], method: str) -> Discrete:
    """`discretize_zoh` or `discretize_bilinear` by name (`method` in `METHODS`)."""
    if method == "zoh":
        return discretize_zoh(lam, b, step)
    if method == "bilinear":
        return discretize_bilinear(lam, b, step)
    raise ValueError(f"`method` (={method!r}) is not a discretization; expected one of {METHODS}.")
