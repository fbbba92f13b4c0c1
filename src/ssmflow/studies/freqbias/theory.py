"""X1 (freqbias.md section 7): theory and atlas stores, no training.

- `band_dataset`: |Khat|^2 of S4D-Lin-alpha (eq. 8) per alpha, its centroid and tail (eq. 10);
- `locality_dataset`: the gradient weight of eqs. 5 and 7 (continuous) and the discrete probe of test 3d;
- `tv_dataset`: numeric TV of G above Omega against the bound of eq. 4 for random systems;
- `filters_dataset`: the Sobolev weights of every preset, and eq. 15 against the symmetric filter;
- `atlas_dataset`: |G(is)| and |Khat(omega)| of every S4D init at every alpha (`transfer.zarr`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.ssm.init import INITS, diagonal_init
from ssmflow.ssm.kernels import ssm_kernel
from ssmflow.ssm.sobolev import PRESETS, preset_kappa, sobolev_weights, upstream_emul_weights
from ssmflow.ssm.transfer import (band_tail, incoherent_power, spectral_centroid, total_variation, transfer_continuous,
                                  transfer_derivative, transfer_discrete, tv_bound)

LOCALITY_POLE = -0.5 + 10j  # X1: one pair a = -0.5 + 10i, c = 1


def unit_phase_weights(key, modes: int) -> jax.Array:
    """C_n with |C_n| = 1 and uniform random phases (X1 band)."""
    return jnp.exp(2j * jnp.pi * jax.random.uniform(key, (modes,), dtype=jnp.result_type(float)))


def band_power(alpha: float, state_size: int, step: float, omega) -> jax.Array:
    """E|Khat(omega)|^2 (eq. 3) of S4D-Lin-alpha (eq. 8), B = 1, |C| = 1, expected over random phases, ZOH.

    One phase draw can make neighbouring modes cancel inside the band (at alpha = 0.1 the
    modes overlap) and so move the centroid and tail; the expectation over phases is the
    incoherent sum over poles (`ssm.transfer.incoherent_power`).
    """
    lam, b = diagonal_init("lin", None, 1, state_size, imag_scale=alpha)
    disc = discretize_zoh(lam[0], b[0], step)
    return incoherent_power(disc.log_abar, disc.bbar, omega)


def top_mode(alpha: float, state_size: int, step: float) -> float:
    """omega_top = alpha pi (N/2 - 1) Delta (eq. 9)."""
    return alpha * np.pi * (state_size // 2 - 1) * step


def band_dataset(cfg: dict, n_fine: int = 2**16, n_plot: int = 512) -> xr.Dataset:
    """Power on a log grid (plots), centroid and tail on a fine linear grid of [0, pi], per alpha."""
    n, step = cfg["state_size"], cfg["step"]
    fine = jnp.linspace(0.0, jnp.pi, n_fine)
    omega = np.geomspace(1e-5, np.pi, n_plot)
    power, centroid, tail = [], [], []
    for a in cfg["alpha"]:
        p_fine = band_power(a, n, step, fine)
        centroid.append(float(spectral_centroid(fine, p_fine)))
        tail.append(float(band_tail(fine, p_fine, top_mode(a, n, step))))
        power.append(np.asarray(band_power(a, n, step, jnp.asarray(omega))))
    return xr.Dataset(
        {"power": (("alpha", "omega"), np.asarray(power)), "centroid": ("alpha", centroid), "tail": ("alpha", tail),
         "omega_top": ("alpha", [top_mode(a, n, step) for a in cfg["alpha"]])},
        coords={"alpha": np.asarray(cfg["alpha"], float), "omega": omega},
    )


def locality_weight(s, beta: float, s0: float = 1.0, pole: complex = LOCALITY_POLE, c: complex = 1.0):
    """Eq. 7: (1 + |s|/s_0)^beta |c|/((s - y)^2 + x^2)."""
    s = np.asarray(s, float)
    return (1 + np.abs(s) / s0) ** beta * abs(c) / ((s - pole.imag) ** 2 + pole.real**2)


def discrete_probe(omega0, step: float, length: int, pole: complex = LOCALITY_POLE, phases=(1.0, 1j)) -> np.ndarray:
    """Test 3d: |d<r, Kbar>/dy| for r = cos and sin tones at omega0, sqrt(g_cos^2 + g_sin^2), RMS over the phase of c.

    With a real c the two poles of the pair cancel to leading order once omega0 >> y Delta
    (the probe then falls as distance^-3); c = 1 and c = i are the two orthogonal phases, and
    their RMS is the sensitivity a mode with a random C ~ CN(0, 1) sees on average.
    """
    l = jnp.arange(length)

    def loss(y, tone, c):
        k = ssm_kernel(jnp.asarray([pole.real + 1j * y]), jnp.ones(1, complex), c, jnp.asarray(step), length, "zoh")
        return jnp.dot(tone, k)

    grad = jax.jit(jax.grad(loss))
    out = []
    for w in np.asarray(omega0, float):
        sq = [float(grad(jnp.asarray(pole.imag), f(w * l), jnp.asarray([c], complex))) ** 2 for c in phases for f in (jnp.cos, jnp.sin)]
        out.append(np.sqrt(np.sum(sq) / len(phases)))
    return np.asarray(out)


def locality_dataset(cfg: dict) -> xr.Dataset:
    """Continuous weight over (beta, s) for s in [15, 1e4]; discrete probe over omega0 (test 3d)."""
    s = np.geomspace(15.0, 1e4, 256)
    betas = cfg["betas"]
    step, length = cfg["probe_step"], cfg["probe_length"]
    x, y = abs(LOCALITY_POLE.real), LOCALITY_POLE.imag
    omega0 = y * step + np.geomspace(20 * x * step, 0.3 * np.pi, 24)
    return xr.Dataset(
        {"grad_cont": (("beta", "s"), np.stack([locality_weight(s, b) for b in betas])),
         "grad_disc": ("omega0", discrete_probe(omega0, step, length))},
        coords={"beta": np.asarray(betas, float), "s": s, "omega0": omega0},
        attrs={"pole_re": LOCALITY_POLE.real, "pole_im": y, "probe_step": step, "probe_length": length},
    )


def tv_draws(key, draws: int, modes: int = 8):
    """X1 TV systems: x ~ -U[0.1, 1], y ~ U[0, 50], c ~ CN(0, 1), `(draw, mode)`."""
    k_x, k_y, k_c = jax.random.split(key, 3)
    real = jnp.result_type(float)
    x = -jax.random.uniform(k_x, (draws, modes), real, 0.1, 1.0)
    y = jax.random.uniform(k_y, (draws, modes), real, 0.0, 50.0)
    c = (jax.random.normal(k_c, (2, draws, modes), real) * jnp.sqrt(0.5))
    return x + 1j * y, c[0] + 1j * c[1]


def tv_dataset(cfg: dict, n_points: int = 100_000) -> xr.Dataset:
    """Numeric TV on [Omega, 1e6 Omega] (trapezoid, `n_points` log-spaced) and the eq. 4 bound."""
    lam, c = tv_draws(jax.random.key(cfg["seed"]), cfg["tv_draws"])
    numeric, bound = [], []
    for cut in cfg["tv_cutoffs"]:
        s = jnp.geomspace(cut, 1e6 * cut, n_points)
        numeric.append(np.asarray(jax.lax.map(lambda p: total_variation(s, transfer_derivative(p[0], p[1], s)), (lam, c))))
        bound.append(np.asarray(tv_bound(lam, c, cut)))
    return xr.Dataset({"tv_numeric": (("cutoff", "draw"), np.asarray(numeric)), "tv_bound": (("cutoff", "draw"), np.asarray(bound))},
                      coords={"cutoff": np.asarray(cfg["tv_cutoffs"], float), "draw": np.arange(cfg["tv_draws"])})


def filters_dataset(cfg: dict, n_f: int = 257, upstream_length: int = 62832) -> xr.Dataset:
    """w(f) of every preset at the band's Delta for each beta; eq. 15 (upstream-emul) at L = 62832."""
    betas = cfg["betas"]
    n_fft = 2 * (n_f - 1)
    f = np.arange(n_f) / n_fft
    weight = [[np.asarray(sobolev_weights(n_fft, b, preset_kappa(p, cfg["step"]))) for b in betas] for p in PRESETS]
    m = np.round(f * upstream_length).astype(int)
    emul = [np.asarray(upstream_emul_weights(upstream_length, b))[m] for b in betas]
    sym = [np.asarray(sobolev_weights(upstream_length, b, preset_kappa("upstream-waves", 1e-4)))[m] for b in betas]
    return xr.Dataset(
        {"weight": (("preset", "beta", "f"), np.asarray(weight)), "weight_emul": (("beta", "f"), np.asarray(emul)),
         "weight_sym_upstream": (("beta", "f"), np.asarray(sym))},
        coords={"preset": np.array(list(PRESETS), dtype=object), "beta": np.asarray(betas, float), "f": f},
    )


def theory_dataset(cfg: dict) -> xr.Dataset:
    """The X1 store: band, gradient locality, TV and filter weights on their own dims."""
    band = band_dataset(cfg)
    filters = filters_dataset(cfg).rename(beta="filter_beta")
    locality = locality_dataset(cfg)
    out = xr.merge([band, locality, tv_dataset(cfg), filters], compat="override")
    out.attrs.update(locality.attrs)
    return out


def atlas_dataset(cfg: dict, n_freq: int = 512) -> xr.Dataset:
    """|G(is)| (continuous) and |Khat(omega)| (ZOH, eq. 3) of every S4D init at every alpha (|C| = 1, one phase draw),
    with the centroid and the tail above the top mode of the phase-averaged power (as `band_power`)."""
    n, step = cfg["state_size"], cfg["step"]
    key = jax.random.key(cfg["seed"])
    omega = np.geomspace(1e-4, np.pi, n_freq)
    fine = jnp.linspace(0.0, jnp.pi, 2**15)
    c = unit_phase_weights(key, n // 2)
    mag_g, mag_k, centroid, tail = [], [], [], []
    for name in INITS:
        rows = [[], [], [], []]
        for a in cfg["alpha"]:
            lam, b = diagonal_init(name, jax.random.fold_in(key, 1), 1, n, imag_scale=a)
            disc = discretize_zoh(lam[0], b[0], step)
            rows[0].append(np.abs(np.asarray(transfer_continuous(lam[0], c * b[0], omega / step))))
            rows[1].append(np.abs(np.asarray(transfer_discrete(disc.log_abar, c * disc.bbar, omega))))
            p_fine = incoherent_power(disc.log_abar, b[0] * disc.bbar, fine)
            rows[2].append(float(spectral_centroid(fine, p_fine)))
            rows[3].append(float(band_tail(fine, p_fine, float(jnp.max(lam.imag)) * step)))
        for out, row in zip((mag_g, mag_k, centroid, tail), rows, strict=True):
            out.append(row)
    return xr.Dataset(
        {"mag_continuous": (("init", "alpha", "omega"), np.asarray(mag_g)),
         "mag_discrete": (("init", "alpha", "omega"), np.asarray(mag_k)),
         "centroid": (("init", "alpha"), np.asarray(centroid)), "tail": (("init", "alpha"), np.asarray(tail))},
        coords={"init": np.array(list(INITS), dtype=object), "alpha": np.asarray(cfg["alpha"], float), "omega": omega,
                "s": ("omega", omega / step)},
        attrs={"state_size": n, "delta": step},
    )
