"""ssmflow.ssm.kernels / conv / discretize: every kernel path against an independent one.

Tolerances: 1e-10 in float64 (the paths differ only by rounding, ~1e-13 here); 1e-3
relative L2 in float32 (phase error grows with l Delta |Im lambda|, s4d.md section 5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.ssm import conv, discretize, init, kernels

N, L = 64, 1024
INITS = sorted(init.INITS)
METHODS = discretize.METHODS


def _system(name: str, seed: int = 0):
    """One channel: lambda, B of an init; random C; one random Delta ~ log-uniform [1e-3, 1e-1]."""
    k_c, k_dt, k_init = jax.random.split(jax.random.key(seed), 3)
    lam, b = init.diagonal_init(name, k_init, 1, N)
    c = jax.random.normal(k_c, (N // 2,)) + 1j * jax.random.normal(jax.random.fold_in(k_c, 1), (N // 2,))
    step = 10 ** jax.random.uniform(k_dt, (), minval=-3.0, maxval=-1.0)
    return lam[0], b[0], c, step


def _rel_max(a, b) -> float:
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", INITS)
def test_vandermonde_kernel_matches_dense_matrix_powers(name, method):
    lam, b, c, step = _system(name)
    k = kernels.ssm_kernel(lam, b, c, step, L, method)
    dense = jax.jit(kernels.dense_kernel, static_argnames=("length", "method"))(lam, b, c, step, length=L, method=method)
    assert _rel_max(k, dense) < 1e-10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", INITS)
def test_fft_convolution_matches_scan_and_associative_scan(name, method):
    lam, b, c, step = _system(name, seed=1)
    u = jax.random.normal(jax.random.key(5), (L,))
    d = 0.7
    disc = discretize.discretize(lam, b, step, method)
    y_conv = conv.causal_fft_conv(u, kernels.vandermonde_kernel(disc.log_abar, c * disc.bbar, L)) + d * u
    y_scan = jax.jit(conv.scan_recurrence)(disc.abar, disc.bbar, c, u) + d * u
    y_assoc = jax.jit(conv.associative_recurrence)(disc.abar, disc.bbar, c, u) + d * u
    assert _rel_max(y_conv, y_scan) < 1e-10
    assert _rel_max(y_assoc, y_scan) < 1e-10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["legs", "inv", "lin"])
def test_float32_kernel_path_is_accurate_to_1e_3(name, method):
    lam, b, c, step = _system(name, seed=2)
    u = jax.random.normal(jax.random.key(6), (L,))
    ref = conv.causal_fft_conv(u, kernels.ssm_kernel(lam, b, c, step, L, method))
    y32 = conv.causal_fft_conv(u.astype(jnp.float32), kernels.ssm_kernel(
        lam.astype(jnp.complex64), b.astype(jnp.complex64), c.astype(jnp.complex64), step.astype(jnp.float32), L, method))
    assert y32.dtype == jnp.float32
    assert float(jnp.linalg.norm(y32 - ref) / jnp.linalg.norm(ref)) < 1e-3


@pytest.mark.parametrize("name", INITS)
def test_conjugate_pair_kernel_equals_full_complex_sum_and_is_real(name):
    """2 Re over N/2 modes = the N-mode complex sum with explicit conjugates, whose Im is ~0."""
    lam, b, c, step = _system(name, seed=3)
    disc = discretize.discretize_zoh(lam, b, step)
    log_full = jnp.concatenate([disc.log_abar, jnp.conj(disc.log_abar)])
    w_full = jnp.concatenate([c * disc.bbar, jnp.conj(c * disc.bbar)])
    full = jnp.sum(w_full[:, None] * jnp.exp(log_full[:, None] * jnp.arange(L)), axis=0)
    half = kernels.vandermonde_kernel(disc.log_abar, c * disc.bbar, L)
    assert float(jnp.max(jnp.abs(full.imag)) / jnp.max(jnp.abs(full.real))) < 1e-12
    assert _rel_max(half, full.real) < 1e-10


@pytest.mark.parametrize("length", [1, 2, 7, 100, 1024])
def test_factorized_vandermonde_matches_materialized_matrix(length):
    lam, b, c, step = _system("inv", seed=4)
    disc = discretize.discretize_bilinear(lam, b, step)
    fast = kernels.vandermonde_kernel(disc.log_abar, c * disc.bbar, length)
    naive = kernels.vandermonde_kernel_naive(disc.log_abar, c * disc.bbar, length)
    assert fast.shape == (length,) and _rel_max(fast, naive) < 1e-12


def test_fft_convolution_is_linear_not_circular():
    """Padding to 2L gives numpy's direct convolution; the same product at n = L wraps around."""
    rng = np.random.default_rng(0)
    u, k = rng.standard_normal(L), rng.standard_normal(L)
    direct = np.convolve(u, k)[:L]
    assert _rel_max(conv.causal_fft_conv(jnp.asarray(u), jnp.asarray(k)), jnp.asarray(direct)) < 1e-10
    circular = np.fft.irfft(np.fft.rfft(u) * np.fft.rfft(k), n=L)
    assert np.max(np.abs(circular - direct)) > 1e-3


def test_zoh_and_bilinear_agree_as_step_goes_to_zero():
    lam, b, c, _ = _system("lin")
    gaps = []
    for step in (1e-2, 1e-3):
        kz = kernels.ssm_kernel(lam, b, c, step, 256, "zoh")
        kb = kernels.ssm_kernel(lam, b, c, step, 256, "bilinear")
        gaps.append(_rel_max(kb, kz))
    assert gaps[1] < gaps[0] / 50  # second order in Delta


def test_unknown_method_error_lists_allowed():
    with pytest.raises(ValueError, match=r"`method` \(='foh'\) is not a discretization; expected one of \('zoh', 'bilinear'\)"):
        discretize.discretize(jnp.ones(2) * -1.0 + 0j, jnp.ones(2) + 0j, 0.1, "foh")
