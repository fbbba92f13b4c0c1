"""ssmflow.ssm.transfer: the transfer function against independent computations (freqbias.md tests 1-4), float64.

Tolerances are the spec's: 1e-6 relative for the DTFT against the FFT of a kernel truncated
where max|Abar|^L < 1e-8; the ZOH bound |Khat(s Delta) - (G - D)| <= |s| Delta |G - D| (the
leading error is |s| Delta/2); 1e-10 for autodiff against eq. 5; slopes within 0.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.ssm import discretize, init, kernels, transfer
from ssmflow.studies.freqbias import theory

INITS = sorted(init.INITS)


def _weights(n_modes: int, seed: int = 0):
    k = jax.random.key(seed)
    return jax.random.normal(k, (n_modes,)) + 1j * jax.random.normal(jax.random.fold_in(k, 1), (n_modes,))


@pytest.mark.parametrize("name", INITS)
def test_dtft_matches_fft_of_a_long_kernel(name):
    lam, b = init.diagonal_init(name, jax.random.key(0), 1, 16)
    disc = discretize.discretize_zoh(lam[0], b[0], 0.05)
    length = int(np.ceil(np.log(1e-8) / float(jnp.max(disc.log_abar.real))))
    assert float(jnp.max(jnp.abs(disc.abar))) ** length < 1e-8
    w = _weights(8) * disc.bbar
    n_fft = 8 * length
    fft = transfer.kernel_response(kernels.vandermonde_kernel(disc.log_abar, w, length), n_fft)
    exact = transfer.transfer_discrete(disc.log_abar, w, transfer.rfft_omega(n_fft))
    assert float(jnp.max(jnp.abs(fft - exact)) / jnp.max(jnp.abs(exact))) < 1e-6


@pytest.mark.parametrize("name", ["lin", "inv", "random"])
def test_zoh_dtft_approaches_the_continuous_transfer_function(name):
    step = 0.005
    lam, b = init.diagonal_init(name, jax.random.key(0), 1, 8)
    lam, b = lam[0], b[0]
    assert float(jnp.max(jnp.abs(lam))) * step <= 0.1
    c, d = _weights(4), 0.7
    s = jnp.geomspace(1.0, 0.1 / step, 200)
    g = transfer.transfer_continuous(lam, c * b, s, d)
    disc = discretize.discretize_zoh(lam, b, step)
    k = transfer.transfer_discrete(disc.log_abar, c * disc.bbar, s * step)
    err, bound = jnp.abs(k - (g - d)), s * step * jnp.abs(g - d)
    assert bool(jnp.all(err <= bound)), float(jnp.max(err / bound))


def test_tv_is_below_the_bound_for_every_draw():
    ds = theory.tv_dataset({"seed": 0, "tv_draws": 100, "tv_cutoffs": [60.0, 100.0, 300.0, 1000.0]})
    assert (ds.tv_numeric <= ds.tv_bound * (1 + 1e-6)).all()
    assert float((ds.tv_numeric / ds.tv_bound).max()) > 0.05  # the check is not vacuous


def test_autodiff_gradient_of_g_matches_eq5():
    lam, c = jnp.asarray([-0.5 + 10j, -0.3 + 3j]), _weights(2)
    s = jnp.geomspace(0.5, 1e3, 64)

    def g_of_y(y):
        return transfer.transfer_continuous(lam.real + 1j * y, c, s)

    jac = jax.jacfwd(lambda y: g_of_y(y).real)(lam.imag) + 1j * jax.jacfwd(lambda y: g_of_y(y).imag)(lam.imag)
    exact = transfer.transfer_gradient_im(lam, c, s).T
    # eq. 5 is the kept pole; the conjugate pole adds -i conj(c)/(is - conj(a))^2 (y enters it with a minus sign)
    exact = exact + (-1j * jnp.conj(c)[:, None] / (1j * s[None, :] - jnp.conj(lam)[:, None]) ** 2).T
    assert float(jnp.max(jnp.abs(jac - exact))) < 1e-10 * float(jnp.max(jnp.abs(exact)))


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_gradient_weight_decays_as_distance_squared():
    pole, c = theory.LOCALITY_POLE, 1.0
    x = abs(pole.real)
    dist = np.geomspace(10 * x, 1e3 * x, 100)
    weight = np.abs(np.asarray(transfer.transfer_gradient_im(jnp.asarray([pole]), jnp.asarray([c + 0j]), pole.imag + dist)))[0]
    assert abs(_slope(dist, weight) + 2) <= 0.1


@pytest.mark.parametrize("beta", [-1.0, 0.0, 1.0])
def test_sobolev_filter_shifts_the_locality_slope_by_beta(beta):
    s = np.geomspace(100.0, 1e4, 100)
    assert abs(_slope(s, theory.locality_weight(s, beta, s0=1.0)) - (beta - 2)) <= 0.15


def test_discrete_probe_gradient_decays_as_distance_squared():
    step, length = 1e-3, 2**16
    pole = theory.LOCALITY_POLE
    dist = np.geomspace(20 * abs(pole.real) * step, 0.3 * np.pi, 16)
    grad = theory.discrete_probe(pole.imag * step + dist, step, length)
    assert abs(_slope(dist, grad) + 2) <= 0.15, _slope(dist, grad)


def test_alpha_sets_the_band():
    ds = theory.band_dataset({"state_size": 64, "step": 1e-3, "alpha": [0.1, 0.3, 1.0, 3.0, 10.0], "seed": 0})
    assert (ds.centroid.diff("alpha") > 0).all(), ds.centroid.values
    assert (ds["tail"] < 0.10).all(), ds["tail"].values
