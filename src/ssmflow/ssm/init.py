"""Diagonal initializations of S4D (Gu et al. 2022, section 4; shared spec s4d.md eqs. 5-11).

Every init returns the N/2 kept eigenvalues lambda_n (one per conjugate pair, Im >= 0)
and input weights B_n of each channel, as complex arrays of shape `(channel, mode)`:

    S4D-LegS:  lambda = -1/2 + i mu (mu > 0 of the LegS normal part), B = (1/2) U* B_LegS
    S4D-Inv:   lambda_n = -1/2 + i (N/pi) (N/(2n+1) - 1)
    S4D-Lin:   lambda_n = -1/2 + i pi n
    S4D-Real:  lambda_n = -(n+1)
    random:    lambda_n = -1/2 + i pi (N/2) U_n,  U_n ~ Uniform[0, 1] per (channel, mode)
    rand-lognormal: lambda_n = -1/2 + i exp(Z_n),  Z_n ~ Normal(0, 1) per (channel, mode)
               (the official code's `rand`, spec D7; outside the paper's grid)

B = 1 except for LegS, whose B has two versions (`legs_b`, spec D5): `paper`, the halved
projection (1/2) U* B_LegS of eq. 9 that the LegS kernel limit needs, and `official`, the
official code's unhalved projection with Im(B) clipped to [-2, 2] (state-spaces/s4
`dplr()`, `hippo.nplr(..., B_clip=2.0)`). Two knobs apply to every init: `imag_scale`
(the alpha of the frequency-bias study) multiplies Im(lambda), `real_scale` multiplies
Re(lambda).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, Complex, Float, PRNGKeyArray
from ssmflow.ssm.hippo import legs_normal_eig


class DiagonalInit(NamedTuple):
    """Initial eigenvalues and input weights of every channel, each `(channel, mode)` complex."""

    lam: Complex[Array, "channel mode"]
    b: Complex[Array, "channel mode"]


def _modes(state_size: int) -> np.ndarray:
    if state_size < 2 or state_size % 2:
        raise ValueError(f"`state_size` (={state_size}) must be an even integer >= 2 (N/2 conjugate-pair modes).")
    return np.arange(state_size // 2, dtype=float)


def _assemble(re: np.ndarray | Array, im: np.ndarray | Array, b: np.ndarray | Array, channels: int,
              imag_scale: float, real_scale: float) -> DiagonalInit:
    """Broadcast per-mode values to `(channel, mode)` and apply the two scales."""
    ctype = jnp.result_type(complex)
    lam = real_scale * jnp.asarray(re) + 1j * imag_scale * jnp.asarray(im)
    shape = (channels, jnp.shape(lam)[-1])
    return DiagonalInit(jnp.broadcast_to(lam, shape).astype(ctype), jnp.broadcast_to(jnp.asarray(b), shape).astype(ctype))


def s4d_lin_init(key: PRNGKeyArray | None, channels: int, state_size: int, *, imag_scale: float = 1.0,
                 real_scale: float = 1.0) -> DiagonalInit:
    """S4D-Lin (eq. 6): lambda_n = -1/2 + i pi n, B = 1."""
    del key
    n = _modes(state_size)
    return _assemble(-0.5 * np.ones_like(n), np.pi * n, np.ones_like(n), channels, imag_scale, real_scale)


def s4d_inv_init(key: PRNGKeyArray | None, channels: int, state_size: int, *, imag_scale: float = 1.0,
                 real_scale: float = 1.0) -> DiagonalInit:
    """S4D-Inv (eq. 7): lambda_n = -1/2 + i (N/pi)(N/(2n+1) - 1), B = 1."""
    del key
    n = _modes(state_size)
    im = state_size / np.pi * (state_size / (2 * n + 1) - 1)
    return _assemble(-0.5 * np.ones_like(n), im, np.ones_like(n), channels, imag_scale, real_scale)


def s4d_real_init(key: PRNGKeyArray | None, channels: int, state_size: int, *, imag_scale: float = 1.0,
                  real_scale: float = 1.0) -> DiagonalInit:
    """S4D-Real (eq. 10): lambda_n = -(n+1), the eigenvalues of A_LegS; B = 1."""
    del key
    n = _modes(state_size)
    return _assemble(-(n + 1), np.zeros_like(n), np.ones_like(n), channels, imag_scale, real_scale)


def s4d_random_init(key: PRNGKeyArray, channels: int, state_size: int, *, imag_scale: float = 1.0,
                    real_scale: float = 1.0) -> DiagonalInit:
    """Random imaginary parts band-matched to S4D-Lin (eq. 11, spec D7).

    lambda_n = -1/2 + i pi (N/2) U_n with U_n ~ Uniform[0, 1] i.i.d. per (channel, mode); B = 1.
    """
    n = _modes(state_size)
    u = jax.random.uniform(key, (channels, n.size), dtype=jnp.result_type(float))
    return _assemble(-0.5 * jnp.ones_like(u), np.pi * (state_size / 2) * u, np.ones_like(n), channels, imag_scale, real_scale)


def s4d_rand_lognormal_init(key: PRNGKeyArray, channels: int, state_size: int, *, imag_scale: float = 1.0,
                            real_scale: float = 1.0) -> DiagonalInit:
    """The official code's random init (`rand`, spec D7): lambda_n = -1/2 + i exp(Z_n), Z_n ~ N(0, 1)
    i.i.d. per (channel, mode); B = 1."""
    n = _modes(state_size)
    z = jax.random.normal(key, (channels, n.size), dtype=jnp.result_type(float))
    return _assemble(-0.5 * jnp.ones_like(z), jnp.exp(z), np.ones_like(n), channels, imag_scale, real_scale)


#: the official code's clip of Im(B) for LegS (`hippo.nplr(..., B_clip=2.0)`)
LEGS_B_CLIP = 2.0
LEGS_B = ("paper", "official")


def _check_legs_b(legs_b: str) -> None:
    if legs_b not in LEGS_B:
        raise ValueError(f"`legs_b` (={legs_b!r}) must be one of {LEGS_B}.")


def legs_input_weights(b_proj: np.ndarray, legs_b: str = "paper", b_scale: float = 0.5) -> np.ndarray:
    """B of S4D-LegS on the kept modes from the projection U* B_LegS (`LegSEig.b_proj`):
    `paper`, b_scale U* B_LegS (b_scale = 1/2 is eq. 9, spec D5, what the LegS kernel limit
    needs; 1 its negative control); `official`, U* B_LegS unhalved with Im(B) clipped to
    [-LEGS_B_CLIP, LEGS_B_CLIP], as the official code initializes it (b_scale unused)."""
    _check_legs_b(legs_b)
    if legs_b == "paper":
        return b_scale * b_proj
    return b_proj.real + 1j * np.clip(b_proj.imag, -LEGS_B_CLIP, LEGS_B_CLIP)


def s4d_legs_init(key: PRNGKeyArray | None, channels: int, state_size: int, *, imag_scale: float = 1.0,
                  real_scale: float = 1.0, b_scale: float = 0.5, legs_b: str = "paper") -> DiagonalInit:
    """S4D-LegS (eq. 9): the eigenvalues -1/2 + i mu (mu > 0) of the LegS normal part and
    the B that `legs_b` and `b_scale` choose (`legs_input_weights`)."""
    del key
    eig = legs_normal_eig(state_size)
    return _assemble(-0.5 * np.ones_like(eig.mu), eig.mu, legs_input_weights(eig.b_proj, legs_b, b_scale), channels,
                     imag_scale, real_scale)


INITS: dict[str, Callable[..., DiagonalInit]] = {
    "legs": s4d_legs_init,
    "inv": s4d_inv_init,
    "lin": s4d_lin_init,
    "real": s4d_real_init,
    "random": s4d_random_init,
}
#: inits outside the paper's five (the studies' atlases and checks cover `INITS`): the official code's random init
OFFICIAL_INITS: dict[str, Callable[..., DiagonalInit]] = {"rand-lognormal": s4d_rand_lognormal_init}
ALL_INITS = {**INITS, **OFFICIAL_INITS}


def diagonal_init(name: str, key: PRNGKeyArray, channels: int, state_size: int, *, imag_scale: float = 1.0,
                  real_scale: float = 1.0, legs_b: str = "paper") -> DiagonalInit:
    """The init called `name` (one of `ALL_INITS`) for `channels` channels of state size N;
    `legs_b` chooses S4D-LegS's B (`legs_input_weights`; the other inits have B = 1)."""
    if name not in ALL_INITS:
        raise ValueError(f"`init` (={name!r}) is not an S4D initialization; expected one of {sorted(ALL_INITS)}.")
    _check_legs_b(legs_b)  # for every init: a wrong value is an error even where it is not used
    extra = {"legs_b": legs_b} if name == "legs" else {}
    return ALL_INITS[name](key, channels, state_size, imag_scale=imag_scale, real_scale=real_scale, **extra)


def init_log_step(key: PRNGKeyArray, channels: int, dt_min: float, dt_max: float) -> Float[Array, " channel"]:
    """log Delta ~ Uniform[log dt_min, log dt_max], one per channel (eq. 5)."""
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"step range needs 0 < `dt_min` (={dt_min}) <= `dt_max` (={dt_max}).")
    u = jax.random.uniform(key, (channels,), dtype=jnp.result_type(float))
    return np.log(dt_min) + u * (np.log(dt_max) - np.log(dt_min))
