"""Applying a diagonal SSM to a sequence: the causal convolution paths and the recurrent references.

    (15) y = irfft( rfft(u, n=2L) rfft(Kbar, n=2L), n=2L )[0:L]       (linear, causal)
         y_l = sum_{j <= l} Kbar_{l-j} u_j = (T u)_l,  T_{lj} = Kbar_{l-j}  (Toeplitz product)
    (17) x_l = Abar x_{l-1} + Bbar u_l,  x_{-1} = 0,  y_l = 2 Re(C x_l)

`causal_conv` is the one entry point of the layers: it runs eq. 15 by the path its `conv`
option names (`CONVS`), "auto" choosing by size and backend (`conv_path`). Padding to
2L makes the FFT product a linear (not circular) convolution; "fft_split" runs it over two
halves of the channels, as separate FFT ops that XLA's CPU runtime runs side by side, which
wins for large sequences; the Toeplitz product costs O(L^2) per sequence but is one batched
matrix product, which wins on the CPU for short sequences (BENCHMARKS.md, "S4D convolution
paths"). The recurrences are the references for tests and streaming; the skip term D u is
added by the caller.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmflow._types import Array, Complex, Float

#: the paths of `causal_conv`: "auto" (`conv_path` picks one), the 2L-point FFT product
#: (eq. 15), the same over `FFT_SPLIT_GROUPS` groups of channels, the product with the
#: (L, L) Toeplitz matrix of the kernel
CONVS = ("auto", "fft", "fft_split", "toeplitz")
#: channel groups of "fft_split": fixed (not the machine's core count), so that a run's
#: numbers do not depend on the machine; two is what the 2-core machine measured best
FFT_SPLIT_GROUPS = 2
#: the longest sequence at which "auto" takes the Toeplitz product on the CPU: the S4D
#: block's loss + gradient measured 1-8 % faster than with the FFT at L = 16 and 32, even
#: at 64, slower from 128 on (`bench/conv_paths.py`; BENCHMARKS.md, "S4D convolution
#: paths"); on other backends "auto" is the FFT (unmeasured)
TOEPLITZ_MAX_LENGTH = 32
#: the fewest channels at which "auto" takes "fft_split" on the CPU (above the Toeplitz
#: lengths): 0.82-0.86 of the FFT's time for the S4D block's loss + gradient at H = 64 and
#: L = 128-1024, 0.84-1.04 and mostly even at H = 16 (`bench/conv_paths.py`)
FFT_SPLIT_MIN_CHANNELS = 64


def causal_fft_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"]) -> Float[Array, "*batch time"]:
    """Causal linear convolution y_l = sum_{j <= l} K_{l-j} u_j along the last axis (eq. 15).

    **Arguments:** `u` and `kernel`, broadcastable, last axis L.
    **Returns:** `y` with the last axis L.
    """
    length = u.shape[-1]
    n = 2 * length
    return jnp.fft.irfft(jnp.fft.rfft(u, n=n) * jnp.fft.rfft(kernel, n=n), n=n)[..., :length]


def causal_toeplitz_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"]) -> Float[Array, "*batch time"]:
    """The causal convolution of `causal_fft_conv` as one product y_l = sum_j T_{jl} u_j
    with the upper-triangular Toeplitz matrix T_{jl} = K_{l-j} (0 for j > l).

    T is built without a gather: the kernel padded with L zeros to 2L, tiled L times and
    cut into rows of 2L - 1 shifts each row one place, so row j holds K_{l-j} at column l
    and zeros left of the diagonal (its gradient is a plain sum over the tiles). Memory is
    L^2 per kernel: meant for short sequences (`TOEPLITZ_MAX_LENGTH`).

    **Arguments:** `u` and `kernel`, broadcastable, last axis L.
    **Returns:** `y` with the last axis L.
    """
    length = kernel.shape[-1]
    padded = jnp.pad(kernel, [(0, 0)] * (kernel.ndim - 1) + [(0, length)])
    rows = jnp.tile(padded, length)[..., : length * (2 * length - 1)]
    toeplitz = rows.reshape(*kernel.shape[:-1], length, 2 * length - 1)[..., :length]
    return jnp.einsum("...jl,...j->...l", toeplitz, u)


def causal_fft_conv_split(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"],
                           groups: int = FFT_SPLIT_GROUPS) -> Float[Array, "*batch time"]:
    """`causal_fft_conv` over `groups` slices of the channel axis (the second-to-last),
    concatenated back: each slice's transforms are separate FFT ops, which XLA's CPU runtime
    runs concurrently on its threads, while one batched FFT op over every channel runs no
    faster on two threads than on one (BENCHMARKS.md, "S4D convolution paths"). Every
    channel's numbers are those of `causal_fft_conv`; only reductions that XLA fuses across
    the slices (a kernel's gradient summed over a batch) may round differently.

    **Arguments:** `u` and `kernel`, `(..., channel, L)`, broadcastable (a kernel `(L,)`
    serves every channel; a `u` of one sequence `(L,)` is not split); `groups`: slices.
    **Returns:** `y`, `(..., channel, L)`.
    """
    if u.ndim < 2:  # one channel: nothing to split
        return causal_fft_conv(u, kernel)
    kernel = jnp.broadcast_to(kernel, (*kernel.shape[:-2], u.shape[-2], kernel.shape[-1])) if kernel.ndim < 2 else kernel
    bounds = [round(i * u.shape[-2] / groups) for i in range(groups + 1)]
    parts = [causal_fft_conv(u[..., lo:hi, :], kernel[..., lo:hi, :]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
             if hi > lo]
    return jnp.concatenate(parts, axis=-2)


def check_conv(conv: str) -> None:
    """Raise a ValueError naming `conv`, its value and `CONVS` unless it is one of them."""
    if conv not in CONVS:
        raise ValueError(f"`conv` (={conv!r}) is not a convolution path; expected one of {CONVS}.")


def conv_path(conv: str, length: int, channels: int = 1, backend: str | None = None) -> str:
    """The path `causal_conv` runs: `conv` itself, or for "auto" on the CPU the Toeplitz
    product up to `TOEPLITZ_MAX_LENGTH`, above it "fft_split" from `FFT_SPLIT_MIN_CHANNELS`
    channels on and the FFT below; the FFT on every other backend (not measured there). A
    layer that a caller vmaps over a batch does not see the batch: the rule reads H and L.

    **Arguments:** `conv`: one of `CONVS`; `length`: L; `channels`: H (the axis before
    time); `backend`: a JAX backend name (default: `jax.default_backend()`).
    """
    check_conv(conv)
    if conv != "auto":
        return conv
    if (jax.default_backend() if backend is None else backend) != "cpu":
        return "fft"
    if length <= TOEPLITZ_MAX_LENGTH:
        return "toeplitz"
    return "fft_split" if channels >= FFT_SPLIT_MIN_CHANNELS else "fft"


def causal_conv(u: Float[Array, "*batch time"], kernel: Float[Array, "*batch time"], conv: str = "auto") -> Float[Array, "*batch time"]:
    """The causal convolution y_l = sum_{j <= l} K_{l-j} u_j (eq. 15) by the path `conv`
    (one of `CONVS`; `conv_path` resolves "auto"): `causal_fft_conv`,
    `causal_fft_conv_split` or `causal_toeplitz_conv`.

    **Arguments:** `u` and `kernel`, broadcastable, last axis L (channels, if any, on the
    axis before it); `conv`: the path.
    **Returns:** `y` with the last axis L.
    """
    path = conv_path(conv, u.shape[-1], u.shape[-2] if u.ndim > 1 else 1)
    if path == "toeplitz":
        return causal_toeplitz_conv(u, kernel)
    if path == "fft_split":
        return causal_fft_conv_split(u, kernel)
    return causal_fft_conv(u, kernel)


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
