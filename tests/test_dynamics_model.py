"""The dynamics study's linear SSM and its losses (studies/dynamics/model.py), float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.studies.dynamics.data import teacher_dataset
from ssmflow.studies.dynamics.model import LinearSSM, bin_fit, spectral_loss, spectral_loss_from_fit, time_loss

LENGTH = 128


def _data(seed: int, a_star: float, noise_std: float = 0.0):
    return teacher_dataset(jax.random.key(seed), n_seq=8, length=LENGTH, rho=0.0, a_star=a_star, g_star=0.8,
                           noise_std=noise_std, mode="circular")


def _model(a, b, c) -> LinearSSM:
    return LinearSSM(a=jnp.array([[a]]), b=jnp.array([[b]]), c=jnp.array([[c]]), conv="circular", train_a=False)


@pytest.mark.parametrize("a_star", [0.0, 0.6, 0.9])
def test_loss_at_the_noiseless_optimum_is_zero_not_negative(a_star):
    # the model equals the teacher (a = a*, c b = g*): the loss is 0 up to rounding, and the
    # recorded loss must not be negative (the expanded form gave -1e-17 for a third of these)
    for seed in range(20):
        u, y = _data(seed, a_star)
        loss = float(spectral_loss_from_fit(_model(a_star, 1.0, 0.8), *bin_fit(jnp.fft.rfft(u), jnp.fft.rfft(y)), LENGTH))
        assert 0.0 <= loss < 1e-15, (seed, loss)


def test_loss_from_the_fit_equals_the_time_and_spectral_losses():
    # three ways to one number (noisy data, a model away from the teacher); rtol 1e-12:
    # float64 sums of L = 128 bins and 8 sequences, no cancellation at this distance
    u, y = _data(3, 0.6, noise_std=0.1)
    model = _model(0.3, 0.7, -0.4)
    uf, yf = jnp.fft.rfft(u), jnp.fft.rfft(y)
    fit = float(spectral_loss_from_fit(model, *bin_fit(uf, yf), LENGTH))
    np.testing.assert_allclose(fit, float(time_loss(model, u, y)), rtol=1e-12)
    np.testing.assert_allclose(fit, float(spectral_loss(model, uf, yf, LENGTH)), rtol=1e-12)
