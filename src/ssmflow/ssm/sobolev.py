"""The Sobolev filter: a zero-phase weight (1 + kappa |f|)^beta on the convolution spectrum (freqbias.md section 6).

    (12) y = irfft( w * rfft(u, n) * rfft(Kbar, n), n )[0:L],   w_m = (1 + kappa |f_m|)^beta,  f_m = m/n
    (13) kappa = 2 pi / (Delta s_0)   <=>   w = (1 + |s|/s_0)^beta
    (15) official waves script, emulated: full length-L FFT times (1 + m/1e4)^beta, m = 0..L-1, real part

w depends on |f| only, so the filtered output is real without taking a real part; for
beta != 0 it is not causal (F6), so a recurrent mode must refuse it (`check_causal`).
n = 2L (linear convolution, the default) or n = L (circular, for inputs periodic on
the window, F8). beta = 0 gives w = 1 exactly, so the output is bit-identical to
`ssm.conv.causal_fft_conv`. The skip term D u is added by the caller, unfiltered.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from ssmflow._types import Array, ArrayLike, Complex, Float
from ssmflow.ssm.conv import scan_recurrence

#: filter presets (F5): the continuous scale s_0 (kappa = 2 pi / (Delta s_0)) or a fixed kappa
PRESETS = {
    "paper": {"s0": 1.0},
    "upstream-waves": {"s0": 1e4},
    "upstream-denoise": {"kappa": 52.4288},
    "lra": {"kappa": 1.0},
}
#: how the filtered convolution is computed: the symmetric filter of eq. 12, or the official waves FFT (eq. 15)
MODES = ("symmetric", "upstream-emul")
UPSTREAM_SCALE = 1e4  # the m/1e4 of the official waves script


def kappa_from_scale(step: float, s0: float) -> float:
    """kappa = 2 pi / (Delta s_0) (eq. 13)."""
    if not (step > 0 and s0 > 0):
        raise ValueError(f"`step` (={step}) and `s0` (={s0}) must be > 0.")
    return 2 * math.pi / (step * s0)


def preset_kappa(preset: str, step: float) -> float:
    """The kappa of a named preset (`PRESETS`) at step size Delta."""
    if preset not in PRESETS:
        raise ValueError(f"`preset` (={preset!r}) is not a Sobolev filter preset; expected one of {sorted(PRESETS)}.")
    spec = PRESETS[preset]
    return spec["kappa"] if "kappa" in spec else kappa_from_scale(step, spec["s0"])


def sobolev_weights(n_fft: int, beta: Float[ArrayLike, "*#channel"], kappa: float) -> Float[Array, "*channel bin"]:
    """w_m = (1 + kappa m/n_fft)^beta on the rfft bins m = 0..n_fft/2 (eq. 12)."""
    f = jnp.arange(n_fft // 2 + 1) / n_fft
    return (1 + kappa * f) ** jnp.asarray(beta)[..., None]


def sobolev_fft_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"], beta: Float[ArrayLike, "*#batch"],
                     kappa: float, *, circular: bool = False) -> Float[Array, "*batch time"]:
    """The filtered convolution of eq. 12 along the last axis: linear (n = 2L) or circular (n = L).

    **Arguments:** `u`, `kernel`: broadcastable, last axis L; `beta`: the exponent, broadcast
    over the leading axes (a float or per channel); `kappa`: the filter scale (eq. 13);
    `circular`: n = L instead of 2L.
    **Returns:** `y` with the last axis L.
    """
    length = u.shape[-1]
    n = length if circular else 2 * length
    spectrum = jnp.fft.rfft(u, n=n) * jnp.fft.rfft(kernel, n=n)
    return jnp.fft.irfft(spectrum * sobolev_weights(n, beta, kappa), n=n)[..., :length]


def upstream_emul_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"],
                       beta: Float[ArrayLike, "*#batch"]) -> Float[Array, "*batch time"]:
    """The official waves filter (F7): Re ifft( fft(u) fft(K) (1 + m/1e4)^beta ), m = 0..L-1, circular."""
    length = u.shape[-1]
    weight = (1 + jnp.arange(length) / UPSTREAM_SCALE) ** jnp.asarray(beta)[..., None]
    return jnp.real(jnp.fft.ifft(jnp.fft.fft(u) * jnp.fft.fft(kernel) * weight))


def upstream_emul_weights(length: int, beta: float) -> Float[Array, " bin"]:
    """The effective symmetric weight of `upstream_emul_conv` on the rfft bins (eq. 15):
    W_0 = 1, W_m = ((1 + m/1e4)^beta + (1 + (L - m)/1e4)^beta)/2."""
    m = jnp.arange(length // 2 + 1)
    w = ((1 + m / UPSTREAM_SCALE) ** beta + (1 + (length - m) / UPSTREAM_SCALE) ** beta) / 2
    return w.at[0].set(1.0)


def check_causal(beta: float) -> None:
    """Raise for beta != 0: the filtered layer is not causal, so it has no recurrent mode (F6)."""
    if beta != 0:
        raise ValueError(f"`beta` (={beta}) != 0: the Sobolev-filtered layer is non-causal (zero-phase filter), "
                         "so it has no recurrent mode; use the convolution, or beta = 0.")


def recurrent_apply(abar: Complex[Array, " mode"], bbar: Complex[Array, " mode"], c: Complex[Array, " mode"],
                    u: Float[Array, " time"], beta: float) -> Float[Array, " time"]:
    """The recurrent mode of a (filtered) diagonal SSM: `ssm.conv.scan_recurrence`, refused for beta != 0 (F6)."""
    check_causal(beta)
    return scan_recurrence(abar, bbar, c, u)
