"""The denoising setup (freqbias.md tests 8-9) at the spec's geometry (256 x 128, N = 128, Delta = 1e-4), float64."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.ssm.sobolev import preset_kappa
from ssmflow.studies.freqbias import denoise, geometry

ROWS, COLS, N = 256, 128, 128


def test_geometry_reduces_to_the_spec_at_width_128():
    assert geometry.denoise_step(COLS) == pytest.approx(1e-4, rel=1e-12)
    assert geometry.stripe_omega(COLS) == pytest.approx(2.99433, abs=1e-5)
    assert geometry.alpha_value("flip", COLS) == pytest.approx(490.52, rel=1e-12)
    assert geometry.stripe_frequencies(COLS)["horizontal"] == pytest.approx(0.023393, abs=1e-6)


def test_eq20_init_holds_exactly():
    alpha = geometry.alpha_value("raw", COLS)
    lam = denoise.denoise_eigenvalues(N, alpha)
    n = np.arange(1, N // 2)
    assert lam[0] == -np.exp(-5.0) and np.all(np.asarray(lam[1:]) == -3.0 + 1j * alpha * n)
    model = denoise.DenoiseModel(N, alpha, key=jax.random.key(0))
    assert model.c_re[0] == 0 and model.c_im[0] == 0  # C_0 = 0
    assert model.gain == 1 and model.bias == 0
    z = np.hypot(model.c_re[1:], model.c_im[1:]) / (alpha * n / 1000)
    assert 0.1 < np.mean(z**2) < 3  # |z_n|^2 has mean 1 (CN(0, 1))


def test_flip_puts_the_top_mode_near_nyquist():
    top = geometry.alpha_value("flip", COLS) * (N // 2 - 1) * geometry.denoise_step(COLS)
    assert 0.95 * np.pi < top < np.pi


def test_stripes_have_the_stated_sequence_frequencies():
    omega_p, length = geometry.stripe_omega(COLS), ROWS * COLS
    rho = np.ones(1)
    vertical = denoise.stripe_noise("vertical", rho, ROWS, COLS, omega_p).ravel()
    power = np.abs(np.fft.rfft(vertical)) ** 2
    assert power.max() / power.sum() >= 0.999
    assert 2 * np.pi * power.argmax() / length == pytest.approx(omega_p, rel=1e-12)
    horizontal = denoise.stripe_noise("horizontal", rho, ROWS, COLS, omega_p).ravel()
    power_h = np.abs(np.fft.rfft(horizontal)) ** 2
    assert 2 * np.pi * power_h.argmax() / length == pytest.approx(omega_p / COLS, rel=1e-12)  # the fundamental


@pytest.mark.parametrize("preset", geometry.ALPHA_PRESETS)
def test_vertical_transmission_at_init_matches_the_transfer_function(preset):
    """T_V on images equals |g w Khat(omega_V)|^2 within 25 % (the start-up transient), beta = 0."""
    cfg = {"rows": ROWS, "cols": COLS, "sources": ["faces"], "faces_train": 80, "faces_test": 4}
    images = denoise.load_images(cfg, "test").images
    step, omega_p = geometry.denoise_step(COLS), geometry.stripe_omega(COLS)
    alpha = geometry.alpha_value(preset, COLS)
    kappa = preset_kappa("upstream-denoise", step)
    model = denoise.DenoiseModel(N, alpha, key=jax.random.key(1))
    lam = denoise.denoise_eigenvalues(N, alpha)
    clean = jnp.asarray(2 * images.reshape(len(images), -1) - 1)
    noise = jnp.asarray(2 * denoise.stripe_noise("vertical", np.linspace(0.1, 0.5, len(images)), ROWS, COLS, omega_p).reshape(len(images), -1))
    _, _, trans = denoise.noise_metrics(model, lam, clean, noise, step=step, beta=0.0, kappa=kappa)
    expected = float(model.response(lam, jnp.asarray([omega_p]), step=step, beta=0.0, kappa=kappa)[0]) ** 2
    assert abs(float(trans) / expected - 1) < 0.25, (float(trans), expected)


def test_images_are_bundled_and_load_without_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("an image tried to download")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in denoise.NATURAL_IMAGES:
        img = denoise.natural_image(name)
        assert img.ndim == 2 and 0 <= img.min() and img.max() <= 1
    from skimage.data import lfw_subset

    assert lfw_subset().shape[0] >= denoise.N_FACES


def test_default_training_reaches_the_least_squares_optimum_of_its_class(default_config):
    """Issue 12: eq. 21 is linear in (g C, b), so the lowest training MSE any training of the class can
    reach is a least-squares problem (optimum.py). The default config's denoise training (its geometry,
    lr and steps, seed 0) must come within 30 % of it; at lr 0.01 flip stopped at 2.9x (beta = -1) and
    1.6x (beta = 1) and its outputs were blurred beyond what the class forces (bench/denoise_blur.py)."""
    from ssmflow import config as cfgmod
    from ssmflow import grid
    from ssmflow.studies.freqbias import data as fb_data
    from ssmflow.studies.freqbias import job, optimum

    spec = grid.expand(cfgmod.validate(default_config), "freqbias")["denoise"][0].spec
    spec["common"]["seeds"] = 1
    cells = [("raw", 0.0), ("flip", -1.0), ("flip", 1.0)]
    spec["settings"]["pairs"] = [list(c) for c in cells]
    s = spec["settings"]
    data = fb_data.denoise_data(spec)
    x = fb_data.denoise_inputs(data)["x_train"]
    ds = job.train_shard(spec, data).isel(step=-1)
    geo = job.denoise_setup(s)
    for a, b in cells:
        spectra = optimum.unit_kernel_spectra(s["state_size"], geometry.alpha_value(a, s["cols"]), geo["step"], x.shape[-1])
        w = optimum.sobolev_weights(x.shape[-1], b, geo["kappa"])
        best = np.mean((optimum.apply(x, optimum.fit(x, x, spectra, w), spectra, w) - x) ** 2)
        run = ds.sel(alpha=a, beta=b, seed=0)
        theta = optimum.model_theta(run.c_re.values, run.c_im.values, float(run.gain), float(run.bias))
        trained = np.mean((optimum.apply(x, theta, spectra, w) - x) ** 2)
        assert best <= trained * (1 + 1e-6), (a, b, best, trained)  # nothing beats the optimum of the class
        assert trained <= 1.3 * best, (a, b, trained, best)


def test_least_squares_optimum_matches_the_model_and_beats_perturbations():
    """optimum.apply is the study's DenoiseModel for the same (C, g, b), and optimum.fit is a minimum."""
    from ssmflow.studies.freqbias import optimum

    rows, cols, n = 16, 8, 8
    step, kappa = geometry.denoise_step(cols), preset_kappa("upstream-denoise", geometry.denoise_step(cols))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, rows * cols)).cumsum(-1) * 0.1
    alpha = geometry.alpha_value("flip", cols)
    for beta in (0.0, 1.0):
        model = denoise.DenoiseModel(n, alpha, key=jax.random.key(1))
        model = eqx.tree_at(lambda m: (m.gain, m.bias), model, (jnp.asarray(1.7), jnp.asarray(-0.2)))
        lam = denoise.denoise_eigenvalues(n, alpha)
        want = np.asarray(model(jnp.asarray(x), lam, step=step, beta=beta, kappa=kappa))
        spectra = optimum.unit_kernel_spectra(n, alpha, step, rows * cols)
        w = optimum.sobolev_weights(rows * cols, beta, kappa)
        theta = optimum.model_theta(model.c_re, model.c_im, float(model.gain), float(model.bias))
        np.testing.assert_allclose(optimum.apply(x, theta, spectra, w), want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        best = optimum.fit(x, x, spectra, w)

        def loss(t, spectra=spectra, w=w):
            return np.mean((optimum.apply(x, t, spectra, w) - x) ** 2)

        for _ in range(5):
            assert loss(best) <= loss(best + 1e-3 * np.abs(best).max() * rng.normal(size=best.shape))
        assert loss(best) <= loss(theta)
