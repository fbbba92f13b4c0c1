"""ssmflow.ssm.conv: every path of `causal_conv` against the `lax.scan` recurrence (float64,
1e-10) and against the FFT path (float32, 1e-4), values and gradients; the "auto" rule; errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from ssmflow.ssm import conv, discretize, init, kernels, layers

N, L = 16, 96
PATHS = ("fft", "fft_split", "toeplitz")


def _rel_max(a, b) -> float:
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def _params(seed: int = 0) -> dict:
    """Real leaves of one channel (S4D-Lin lambda and B, random C, Delta = 0.05)."""
    k_init, k_c = jax.random.split(jax.random.key(seed))
    lam, b = init.diagonal_init("lin", k_init, 1, N)
    c = jax.random.normal(k_c, (2, N // 2))
    return dict(log_re=jnp.log(-lam[0].real), im=lam[0].imag, b_re=b[0].real, b_im=b[0].imag, c_re=c[0], c_im=c[1],
                log_step=jnp.log(jnp.asarray(0.05)))


def _system(p: dict):
    lam = -jnp.exp(p["log_re"]) + 1j * p["im"]
    return discretize.discretize(lam, p["b_re"] + 1j * p["b_im"], jnp.exp(p["log_step"]), "zoh"), p["c_re"] + 1j * p["c_im"]


def _by_path(path: str):
    """y = K * u by `causal_conv(path)`, K from the leaves (Vandermonde kernel, eq. 14)."""

    def apply(p, u):
        disc, c = _system(p)
        return conv.causal_conv(u, kernels.vandermonde_kernel(disc.log_abar, c * disc.bbar, u.shape[-1]), path)

    return apply


def _by_scan(p, u):
    disc, c = _system(p)
    return jax.vmap(conv.scan_recurrence, in_axes=(None, None, None, 0))(disc.abar, disc.bbar, c, u)


@pytest.mark.parametrize("path", PATHS)
def test_every_path_matches_scan_recurrence_with_gradients(path):
    """float64, three sequences through one channel's kernel: y and the gradients of <w, y>
    w.r.t. u and every SSM leaf, to 1e-10."""
    p = _params()
    u = jax.random.normal(jax.random.key(1), (3, L))
    w = jax.random.normal(jax.random.key(2), (3, L))
    y, ref = jax.jit(_by_path(path))(p, u), jax.jit(_by_scan)(p, u)
    assert _rel_max(y, ref) < 1e-10
    grads = jax.jit(jax.grad(lambda p, u: jnp.sum(w * _by_path(path)(p, u)), argnums=(0, 1)))(p, u)
    ref_grads = jax.jit(jax.grad(lambda p, u: jnp.sum(w * _by_scan(p, u)), argnums=(0, 1)))(p, u)
    for name, g, r in zip(["u", *p], [grads[1], *grads[0].values()], [ref_grads[1], *ref_grads[0].values()], strict=True):
        assert _rel_max(g, r) < 1e-10, name


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [32, 64, 200])
def test_every_path_matches_fft_in_float32_with_gradients(path, length):
    """float32, (H, L) batches: y and the gradients w.r.t. u and the kernel, to 1e-4 of the FFT path."""
    u = jax.random.normal(jax.random.key(3), (4, length), jnp.float32)
    k = jax.random.normal(jax.random.key(4), (4, length), jnp.float32) * jnp.exp(-0.05 * jnp.arange(length, dtype=jnp.float32))
    w = jax.random.normal(jax.random.key(5), (4, length), jnp.float32)
    y, ref = conv.causal_conv(u, k, path), conv.causal_fft_conv(u, k)
    assert y.dtype == jnp.float32
    assert _rel_max(y, ref) < 1e-4
    grads = jax.grad(lambda u, k: jnp.sum(w * conv.causal_conv(u, k, path)), argnums=(0, 1))(u, k)
    ref_grads = jax.grad(lambda u, k: jnp.sum(w * conv.causal_fft_conv(u, k)), argnums=(0, 1))(u, k)
    for g, r in zip(grads, ref_grads, strict=True):
        assert _rel_max(g, r) < 1e-4


def test_auto_picks_by_length_and_channels_on_cpu_only():
    wide = conv.FFT_SPLIT_MIN_CHANNELS
    assert conv.conv_path("auto", conv.TOEPLITZ_MAX_LENGTH, wide, "cpu") == "toeplitz"
    assert conv.conv_path("auto", conv.TOEPLITZ_MAX_LENGTH + 1, wide - 1, "cpu") == "fft"
    assert conv.conv_path("auto", 1024, wide, "cpu") == "fft_split"
    assert conv.conv_path("auto", 16, wide, "gpu") == conv.conv_path("auto", 1024, wide, "gpu") == "fft"
    assert conv.conv_path("toeplitz", 4096, 1, "gpu") == "toeplitz"
    # the default config's S4D models (H = 16, L = 128 and 256) keep the FFT path
    assert conv.conv_path("auto", 128, 16, "cpu") == conv.conv_path("auto", 256, 16, "cpu") == "fft"


def test_split_fft_keeps_every_channel_of_the_fft():
    """Uneven groups (5 channels in 2) and more groups than channels give the FFT path's numbers."""
    u = jax.random.normal(jax.random.key(8), (2, 5, 40))
    k = jax.random.normal(jax.random.key(9), (5, 40))
    ref = conv.causal_fft_conv(u, k)
    for groups in (2, 3, 7):
        assert _rel_max(conv.causal_fft_conv_split(u, k, groups), ref) < 1e-14


def test_unknown_path_error_names_option_value_and_allowed():
    u = jnp.ones((8,))
    with pytest.raises(ValueError, match=r"`conv` \(='chunked'\).*'auto', 'fft', 'fft_split', 'toeplitz'"):
        conv.causal_conv(u, u, "chunked")
    with pytest.raises(ValueError, match=r"`conv` \(='chunked'\).*'auto', 'fft', 'fft_split', 'toeplitz'"):
        layers.DiagonalSSM(2, 4, conv="chunked", key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`conv` \(='toeplitz'\).*sobolev='learnable'"):
        layers.DiagonalSSM(2, 4, sobolev="learnable", conv="toeplitz", key=jax.random.key(0))


@pytest.mark.parametrize("path", PATHS)
def test_layer_path_matches_fft_layer_with_gradients(path):
    """The DiagonalSSM with `conv=path` equals the FFT one (same leaves), with the gradient of
    every leaf (float64, 1e-10); "auto" runs the Toeplitz product up to `TOEPLITZ_MAX_LENGTH`
    and the FFT above it."""
    ref = layers.DiagonalSSM(4, N, init="legs", conv="fft", key=jax.random.key(6))
    ssm = layers.DiagonalSSM(4, N, init="legs", conv=path, key=jax.random.key(6))
    u = jax.random.normal(jax.random.key(7), (4, 48))

    def loss(m, u):
        return jnp.sum(jnp.sin(m(u)))

    assert _rel_max(ssm(u), ref(u)) < 1e-10
    grads, ref_grads = eqx.filter_grad(loss)(ssm, u), eqx.filter_grad(loss)(ref, u)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        assert _rel_max(g, r) < 1e-10
    auto = layers.DiagonalSSM(4, N, init="legs", key=jax.random.key(6))
    short = str(jax.make_jaxpr(auto)(u[:, : conv.TOEPLITZ_MAX_LENGTH]))
    assert "dot_general" in short and "fft" not in short
    assert "fft" in str(jax.make_jaxpr(auto)(u))
