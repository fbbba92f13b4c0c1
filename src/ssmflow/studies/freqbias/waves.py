"""The waves experiment (freqbias.md X2): regress the amplitudes of four cosines at widely spread frequencies.

    (16) u(t_l) = sum_k rho_k cos(s_k t_l),  t_l = l Delta             (targets: rho_k)
    (17) a_n = -1/2 + i pi (1.3 + n) alpha,  n = 0..N/2-1
    (18) h = W_e u + b_e;  z = Conv_beta(K, h) + D h;  yhat = mean_l(W_d GELU(z_l) + b_d)

The convolution is circular (the inputs are periodic on the window, F8), B = 1 is absorbed
(F2), ZOH with a fixed Delta; C ~ CN(0, 1). Inputs are generated per batch from the
amplitudes (u = rho @ basis), never stored; the data store (`data.py`) holds the basis,
the test amplitudes and each run's key.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, Complex, Float, PRNGKeyArray
from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.ssm.kernels import vandermonde_kernel
from ssmflow.ssm.sobolev import kappa_from_scale, preset_kappa, sobolev_fft_conv, upstream_emul_conv

N_WAVES = 4


def filter_kappa(filt: str, step: float, s0: float | None = None) -> float:
    """kappa of a waves filter: `band` from the experiment's scale s_0 (rad/unit, eq. 13); `upstream-emul`
    carries the `upstream-waves` scale; any other label is a `ssm.sobolev.PRESETS` preset."""
    if filt == "band":
        if s0 is None:
            raise ValueError("The `band` filter needs its scale `s0` (rad/unit).")
        return kappa_from_scale(step, s0)
    return preset_kappa("upstream-waves" if filt == "upstream-emul" else filt, step)


def waves_init_eigenvalues(state_size: int, alpha: Float[Array, ""] | float) -> Complex[Array, " mode"]:
    """Eq. 17: a_n = -1/2 + i pi (1.3 + n) alpha, n = 0..N/2-1."""
    n = jnp.arange(state_size // 2, dtype=jnp.result_type(float))
    return -0.5 + 1j * jnp.pi * (1.3 + n) * alpha


def cosine_table(frequencies, length: int, step: float) -> np.ndarray:
    """cos(s_k l Delta) for every wave k (rows) and sample l (eq. 16), float64."""
    t = np.arange(length) * step
    return np.cos(np.outer(frequencies, t))


def cosine_basis(frequencies, length: int, step: float) -> Float[Array, "wave time"]:
    """`cosine_table` in the default float precision."""
    return jnp.asarray(cosine_table(frequencies, length, step), jnp.result_type(float))


def amplitude_grid_sample(key: PRNGKeyArray, batch: int, levels: int) -> Float[Array, "batch wave"]:
    """Training amplitudes: uniform draws from the grid {1, ..., levels}/levels per wave (upstream: 0.1..1.0)."""
    return (jax.random.randint(key, (batch, N_WAVES), 1, levels + 1) / levels).astype(jnp.result_type(float))


class WavesModel(eqx.Module):
    """Eq. 18 with H channels of N/2 modes each; every leaf is trained."""

    log_re: Float[Array, "channel mode"]
    im: Float[Array, "channel mode"]
    c_re: Float[Array, "channel mode"]
    c_im: Float[Array, "channel mode"]
    d: Float[Array, ""]
    enc_w: Float[Array, " channel"]
    enc_b: Float[Array, " channel"]
    dec_w: Float[Array, "wave channel"]
    dec_b: Float[Array, " wave"]

    def __init__(self, channels: int, state_size: int, alpha: Float[Array, ""] | float, *, key: PRNGKeyArray):
        k_c, k_d, k_ew, k_eb, k_dw = jax.random.split(key, 5)
        real = jnp.result_type(float)
        lam = jnp.broadcast_to(waves_init_eigenvalues(state_size, alpha), (channels, state_size // 2))
        self.log_re = jnp.log(-lam.real)
        self.im = lam.imag
        c = jax.random.normal(k_c, (2, channels, state_size // 2), dtype=real) * jnp.sqrt(0.5)
        self.c_re, self.c_im = c[0], c[1]
        self.d = jax.random.normal(k_d, (), dtype=real)
        self.enc_w = jax.random.normal(k_ew, (channels,), dtype=real)
        self.enc_b = jax.random.normal(k_eb, (channels,), dtype=real) * 0.1
        self.dec_w = jax.random.normal(k_dw, (N_WAVES, channels), dtype=real) / jnp.sqrt(channels)
        self.dec_b = jnp.zeros((N_WAVES,), real)

    def eigenvalues(self) -> Complex[Array, "channel mode"]:
        return -jnp.exp(self.log_re) + 1j * self.im

    def kernel(self, length: int, step: float) -> Float[Array, "channel time"]:
        """The ZOH kernel of every channel (B = 1)."""
        disc = discretize_zoh(self.eigenvalues(), jnp.ones_like(self.c_re), step)
        return vandermonde_kernel(disc.log_abar, (self.c_re + 1j * self.c_im) * disc.bbar, length)

    def __call__(self, u: Float[Array, "batch time"], *, step: float, beta: Float[Array, ""], kappa: float,
                 emul: bool) -> Float[Array, "batch wave"]:
        """Amplitude estimates of a batch of inputs `(batch, L)` (eq. 18)."""
        length = u.shape[-1]
        h = u[:, None, :] * self.enc_w[:, None] + self.enc_b[:, None]  # (batch, channel, L)
        k = self.kernel(length, step)
        if emul:
            z = upstream_emul_conv(h, k, beta)
        else:
            z = sobolev_fft_conv(h, k, beta, kappa, circular=True)
        v = jax.nn.gelu(z + self.d * h)
        return jnp.einsum("wc,bc->bw", self.dec_w, jnp.mean(v, axis=-1)) + self.dec_b


def param_labels(model: WavesModel) -> WavesModel:
    """"im" on the imaginary parts (their own learning rate), "rest" elsewhere."""
    labels = jax.tree.map(lambda _: "rest", model)
    return eqx.tree_at(lambda m: m.im, labels, replace="im")
