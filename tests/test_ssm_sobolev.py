"""ssmflow.ssm.sobolev: the Sobolev filter (freqbias.md tests 5-7), float64.

Tolerances: bitwise at beta = 0 (w = 1 exactly); 1e-12 against the full complex FFT with
mirrored weights (rounding of two FFT paths); 1e-6 relative for dy/dbeta against central
differences (h = 1e-5: truncation ~1e-10); 1e-10 for eq. 15.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.ssm import conv, sobolev

L = 256
KAPPA = 40.0


@pytest.fixture
def signals():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.standard_normal((3, L))), jnp.asarray(rng.standard_normal((3, L)) * np.exp(-np.arange(L) / 30))


@pytest.mark.parametrize("circular", [False, True])
def test_beta_zero_is_bit_identical_to_the_unfiltered_convolution(signals, circular):
    u, k = signals
    y = sobolev.sobolev_fft_conv(u, k, 0.0, KAPPA, circular=circular)
    n = L if circular else 2 * L
    plain = conv.causal_fft_conv(u, k) if not circular else jnp.fft.irfft(jnp.fft.rfft(u, n=n) * jnp.fft.rfft(k, n=n), n=n)
    assert bool(jnp.all(y == plain))
    traced = jax.jit(lambda b: sobolev.sobolev_fft_conv(u, k, b, KAPPA, circular=circular))(jnp.asarray(0.0))
    assert bool(jnp.all(traced == plain))  # a traced beta = 0 too


@pytest.mark.parametrize("beta", [-1.0, 0.5, 1.0])
def test_filtered_output_equals_full_fft_with_mirrored_weights(signals, beta):
    u, k = signals
    n = 2 * L
    m = np.arange(n)
    f = np.minimum(m, n - m) / n  # |f| of every bin of the full FFT
    w = (1 + KAPPA * f) ** beta
    full = np.fft.ifft(np.fft.fft(np.asarray(u), n=n) * np.fft.fft(np.asarray(k), n=n) * w)
    assert np.max(np.abs(full.imag)) < 1e-12 * np.max(np.abs(full.real))  # symmetric weight: real output
    y = sobolev.sobolev_fft_conv(u, k, beta, KAPPA)
    assert float(jnp.max(jnp.abs(y - full.real[:, :L]))) < 1e-12 * float(jnp.max(jnp.abs(y)))


def test_zero_kernel_leaves_exactly_the_skip(signals):
    u, _ = signals
    d = 0.37
    y = sobolev.sobolev_fft_conv(u, jnp.zeros_like(u), 1.0, KAPPA) + d * u
    assert bool(jnp.all(y == d * u))


def test_gradient_in_beta_is_finite_at_zero_and_matches_finite_differences(signals):
    u, k = signals

    def out(b):
        return jnp.sum(jnp.sin(sobolev.sobolev_fft_conv(u, k, b, KAPPA)))

    g = float(jax.grad(out)(0.0))
    h = 1e-5
    fd = float((out(h) - out(-h)) / (2 * h))
    assert np.isfinite(g) and abs(g - fd) <= 1e-6 * abs(fd)


@pytest.mark.parametrize("preset", sorted(sobolev.PRESETS))
def test_presets_map_to_kappa_by_eq13(preset):
    step = 1e-4
    spec = sobolev.PRESETS[preset]
    expected = spec["kappa"] if "kappa" in spec else 2 * math.pi / (step * spec["s0"])
    assert sobolev.preset_kappa(preset, step) == pytest.approx(expected, rel=1e-15)
    if "s0" in spec:  # w = (1 + |s|/s_0)^beta at s = 2 pi f / Delta
        f = 0.1
        w = float(sobolev.sobolev_weights(10, 1.0, sobolev.preset_kappa(preset, step))[1])
        assert w == pytest.approx(1 + (2 * math.pi * f / step) / spec["s0"], rel=1e-12)


def test_upstream_emulation_at_beta_one_is_a_constant_gain(signals):
    u, k = signals
    y = sobolev.upstream_emul_conv(u, k, 1.0)
    spec = jnp.fft.rfft(u) * jnp.fft.rfft(k)
    weight = jnp.full(spec.shape[-1], 1 + L / (2 * sobolev.UPSTREAM_SCALE)).at[0].set(1.0)
    ref = jnp.fft.irfft(spec * weight, n=L)
    assert float(jnp.max(jnp.abs(y - ref))) < 1e-10 * float(jnp.max(jnp.abs(ref)))
    assert np.allclose(sobolev.upstream_emul_weights(L, 1.0), weight, rtol=1e-12)


@pytest.mark.parametrize("beta", [-1.0, 1.0])
def test_filter_is_not_causal(beta):
    impulse = jnp.zeros(L).at[L // 2].set(1.0)
    k = jnp.exp(-jnp.arange(L) / 20.0)
    y = sobolev.sobolev_fft_conv(impulse, k, beta, KAPPA)
    assert float(jnp.max(jnp.abs(y[: L // 2]))) > 1e-6 * float(jnp.max(jnp.abs(y)))


def test_unfiltered_layer_is_causal_and_recurrent_mode_refuses_beta():
    impulse = jnp.zeros(L).at[L // 2].set(1.0)
    k = jnp.exp(-jnp.arange(L) / 20.0)
    y = sobolev.sobolev_fft_conv(impulse, k, 0.0, KAPPA)
    assert float(jnp.max(jnp.abs(y[: L // 2]))) <= 1e-12 * float(jnp.max(jnp.abs(y)))
    abar, bbar, c = jnp.asarray([0.9 + 0.1j]), jnp.asarray([1.0 + 0j]), jnp.asarray([0.5 + 0j])
    assert sobolev.recurrent_apply(abar, bbar, c, impulse, 0.0).shape == (L,)
    with pytest.raises(ValueError, match="non-causal"):
        sobolev.recurrent_apply(abar, bbar, c, impulse, 1.0)
