"""The freqbias data stage: the synthesized data of one experiment, as one labelled Dataset.

**waves** (X2). Training inputs are drawn fresh at every step (no signals are stored):
batch t of a run has amplitudes `waves.amplitude_grid_sample(fold_in(train_key, t), batch,
levels)`, uniform on the grid {1..levels}/levels per wave, and inputs u = amplitudes @ basis.
The store holds the generator (`basis` (wave, time), float64, the cosines of eq. 16;
`amplitude_level` (level), the grid), each run's `train_key` (filter, alpha, beta, seed,
key_word) and the fixed test set `test_amplitude` (test, wave) ~ U(0, 1)^4 from `test_seed`.

**denoise** (X3). The bundled images and the test noise: `train_images` (train_image,
row, col) and `test_images` (test_image, row, col) in [0, 1] (the splits; coords
`*_source`, `*_origin`), the stripe noise `test_noise` (noise, test_image, row, col) in model
units (2 n of eq. 19; the model sees 2 v - 1 + noise) with its amplitudes `rho`, and each
run's `train_key` (alpha, beta, seed, key_word): batch t draws `batch` training images
uniformly with `randint(fold_in(train_key, t), ...)`.

Keys come from each run's own coordinates (`train.run_key`), so a seed's rows depend on
that seed alone. `waves_inputs`, `denoise_inputs` and `train_keys` read a shard's part back.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow import store, train
from ssmflow.config import digest
from ssmflow.studies.freqbias import denoise, geometry, waves

#: dims each chunk of the data store holds whole; the optional ones too where a chunk stays under the cap
WHOLE_DIMS = ("wave", "time", "level", "test", "row", "col", "seed", "key_word")
OPTIONAL_WHOLE = ("test_image", "train_image", "noise")


def seeds(spec: dict) -> list[int]:
    """The seeds of a spec's runs (`grid.seed_values`: a subset when the others are reused)."""
    from ssmflow import grid

    return grid.seed_values(spec)


def run_key(spec: dict, stream: str, seed: int, alpha, beta, filt: str | None = None) -> jax.Array:
    """The key of one run's `stream` ("train": its batches, "model": its init) from its coordinates."""
    coords = {"experiment": spec["experiment"], "alpha": alpha if isinstance(alpha, str) else float(alpha), "beta": float(beta),
              "seed": seed, "stream": stream}
    if filt is not None:
        coords["filter"] = filt
    return train.run_key(spec["study"], coords)


def waves_filters(spec: dict) -> list[str]:
    return list(spec["axes"].get("filter", ["paper"]))


def whole_dims(ds: xr.Dataset) -> list[str]:
    """The store's chunk layout: WHOLE_DIMS, plus those of OPTIONAL_WHOLE that fit the chunk cap."""
    return store.fitting_whole_dims(ds, WHOLE_DIMS, OPTIONAL_WHOLE)


def _keys(spec: dict, grid: dict[str, list], filt_dim: bool) -> np.ndarray:
    """train_key over the product of `grid` (filter?, alpha, beta), then seed and key_word."""
    names = list(grid)
    out = None
    for idx in itertools.product(*(range(len(v)) for v in grid.values())):
        point = {n: grid[n][i] for n, i in zip(names, idx, strict=True)}
        ks = np.stack([np.asarray(run_key(spec, "train", seed, point["alpha"], point["beta"],
                                          point["filter"] if filt_dim else None)) for seed in seeds(spec)])
        if out is None:
            out = np.zeros(tuple(len(v) for v in grid.values()) + ks.shape, ks.dtype)
        out[idx] = ks
    return out


# ------------------------------------------------------------------------------------ waves

def waves_data(spec: dict) -> xr.Dataset:
    s, common = spec["settings"], spec["common"]
    length, step, levels = s["length"], s["step"], s["amplitude_levels"]
    freqs = geometry.wave_frequencies(s["cycles"], length, step)
    real = jnp.result_type(float)
    test_amp = np.asarray(jax.random.uniform(jax.random.key(s["test_seed"]), (s["n_test"], waves.N_WAVES), dtype=real))
    grid = {"filter": waves_filters(spec), "alpha": [float(a) for a in spec["axes"]["alpha"]],
            "beta": [float(b) for b in spec["axes"]["beta"]]}
    keys = _keys(spec, grid, filt_dim=True)
    ds = xr.Dataset(
        {
            "basis": (("wave", "time"), waves.cosine_table(freqs, length, step),
                      {"description": "cos(s_k l Delta) (eq. 16): an input is u = amplitudes @ basis"}),
            "amplitude_level": (("level",), np.arange(1, levels + 1) / levels,
                                {"description": "training amplitudes are drawn uniformly from these levels, per wave"}),
            "test_amplitude": (("test", "wave"), test_amp,
                               {"description": f"the fixed test set: amplitudes ~ U(0, 1)^4 from test_seed={s['test_seed']}"}),
            "train_key": (("filter", "alpha", "beta", "seed", "key_word"), keys,
                          {"description": "each run's data key (uint32 key data): batch t is drawn from fold_in(train_key, t)"}),
        },
        coords={
            "wave": np.arange(waves.N_WAVES), "wave_freq": ("wave", np.asarray(freqs)), "time": np.arange(length),
            "t": ("time", np.arange(length) * step), "level": np.arange(levels), "test": np.arange(s["n_test"]),
            "filter": np.array(grid["filter"], dtype=object), "alpha": np.asarray(grid["alpha"]), "beta": np.asarray(grid["beta"]),
            "seed": np.asarray(seeds(spec)), "key_word": np.arange(keys.shape[-1]),
        },
    )
    ds.attrs.update(store.provenance(digest(spec), common["precision"], study=spec["study"], experiment=spec["experiment"]))
    ds.attrs.update(
        kind="waves", length=length, delta=step, cycles=list(s["cycles"]), amplitude_levels=levels, batch=s["batch"],
        n_test=s["n_test"], test_seed=s["test_seed"],
        contents="The input generator (cosine basis, amplitude grid), each run's data key and the fixed test amplitudes.",
        fresh_samples=(f"Training inputs are drawn fresh at every step, not stored: batch t of a run has amplitudes "
                       f"waves.amplitude_grid_sample(fold_in(train_key, t), {s['batch']}, {levels}) = randint(key, "
                       f"({s['batch']}, 4), 1, {levels + 1}) / {levels} (the grid amplitude_level, per wave), in the "
                       "training precision, and inputs u = amplitudes @ basis. train_key is each run's key, from its "
                       "coordinates (experiment, filter, alpha, beta, seed, stream='train'; ssmflow.train.run_key); "
                       "cells outside `pairs` (if set) are not trained."),
    )
    ds.attrs["whole_dims"] = whole_dims(ds)
    return ds


def waves_inputs(data: xr.Dataset) -> tuple[jax.Array, jax.Array]:
    """(basis (wave, time), test amplitudes (test, wave)) in the training precision."""
    real = jnp.result_type(float)
    part = data[["basis", "test_amplitude"]].load()
    return jnp.asarray(part.basis.values, real), jnp.asarray(part.test_amplitude.values, real)


# ---------------------------------------------------------------------------------- denoise

def test_noise(s: dict, n_images: int, omega_p: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Noise of each condition in model units (2 n, eq. 19), `(image, row, col)`, and its amplitudes rho
    ~ U(0, 0.5) per image (fixed seed `noise_seed`; 0 for none)."""
    rng = np.random.default_rng(s["noise_seed"])
    noise = {"none": np.zeros((n_images, s["rows"], s["cols"]))}
    rho = {"none": np.zeros(n_images)}
    for orientation in ("horizontal", "vertical"):
        rho[orientation] = rng.uniform(0, 0.5, n_images)
        noise[orientation] = 2 * denoise.stripe_noise(orientation, rho[orientation], s["rows"], s["cols"], omega_p)
    return noise, rho


def denoise_data(spec: dict) -> xr.Dataset:
    s, common = spec["settings"], spec["common"]
    train_set, test_set = denoise.load_images(s, "train"), denoise.load_images(s, "test")
    omega_p = geometry.stripe_omega(s["cols"])
    noise, rho = test_noise(s, len(test_set.images), omega_p)
    presets, betas = list(spec["axes"]["alpha"]), [float(b) for b in spec["axes"]["beta"]]
    keys = _keys(spec, {"alpha": presets, "beta": betas}, filt_dim=False)
    ds = xr.Dataset(
        {
            "train_images": (("train_image", "row", "col"), train_set.images, {"description": "training images in [0, 1]"}),
            "test_images": (("test_image", "row", "col"), test_set.images, {"description": "test images in [0, 1]"}),
            "test_noise": (("noise", "test_image", "row", "col"), np.stack([noise[n] for n in geometry.NOISES]),
                      {"description": "stripe noise in model units (2 n, eq. 19): the noisy input is 2 v - 1 + noise"}),
            "rho": (("noise", "test_image"), np.stack([rho[n] for n in geometry.NOISES]),
                    {"description": f"stripe amplitude per image, U(0, 0.5) from noise_seed={s['noise_seed']}"}),
            "train_key": (("alpha", "beta", "seed", "key_word"), keys,
                          {"description": "each run's data key (uint32 key data): batch t is drawn from fold_in(train_key, t)"}),
        },
        coords={
            "train_source": ("train_image", train_set.source), "train_origin": ("train_image", train_set.origin),
            "test_source": ("test_image", test_set.source), "test_origin": ("test_image", test_set.origin),
            "train_image": np.arange(len(train_set.images)), "test_image": np.arange(len(test_set.images)),
            "row": np.arange(s["rows"]), "col": np.arange(s["cols"]), "noise": np.array(geometry.NOISES, dtype=object),
            "alpha": np.array(presets, dtype=object),
            "alpha_value": ("alpha", np.asarray([geometry.alpha_value(a, s["cols"]) for a in presets])),
            "beta": np.asarray(betas), "seed": np.asarray(seeds(spec)), "key_word": np.arange(keys.shape[-1]),
        },
    )
    ds.attrs.update(store.provenance(digest(spec), common["precision"], study=spec["study"], experiment=spec["experiment"]))
    ds.attrs.update(
        kind="denoise", rows=s["rows"], cols=s["cols"], omega_p=omega_p, noise_seed=s["noise_seed"], batch=s["batch"],
        sources=list(s["sources"]), n_train=len(train_set.images), n_test=len(test_set.images),
        contents=("The bundled scikit-image images (faces of lfw_subset and random crops of the natural test images, "
                  "resized to rows x cols) split into train and test, the test stripe noise and each run's data key."),
        fresh_samples=(f"Training batches are drawn fresh at every step: batch t of a run is the {s['batch']} training "
                       "images train_images[randint(fold_in(train_key, t), (batch,), 0, n_train)], flattened row-major "
                       "and mapped v -> 2 v - 1, in the training precision. train_key is each run's key, from its "
                       "coordinates (experiment, alpha, beta, seed, stream='train'; ssmflow.train.run_key)."),
    )
    ds.attrs["whole_dims"] = whole_dims(ds)
    return ds


def denoise_inputs(data: xr.Dataset) -> dict[str, np.ndarray]:
    """The images and noise, as training uses them: flattened, model units, float64."""
    part = data[["train_images", "test_images", "test_noise"]].load()
    n_train, n_test = part.sizes["train_image"], part.sizes["test_image"]
    return {
        "x_train": 2 * part.train_images.values.reshape(n_train, -1) - 1,
        "clean": 2 * part.test_images.values.reshape(n_test, -1) - 1,
        "test_source": np.asarray(part.test_source.values, dtype=object),
        "noises": {n: part.test_noise.sel(noise=n).values.reshape(n_test, -1) for n in geometry.NOISES},
    }


# ------------------------------------------------------------------------------------- both

def train_keys(data: xr.Dataset, rows: list[tuple], filt: str | None = None) -> jax.Array:
    """The data keys of the runs (alpha, beta, seed) in `rows`, stacked in that order."""
    keys = data.train_key if filt is None else data.train_key.sel(filter=filt)
    keys = keys.load()
    return jnp.stack([jnp.asarray(keys.sel(alpha=a, beta=float(b), seed=seed).values) for a, b, seed in rows])


def data_dataset(spec: dict) -> xr.Dataset:
    """The experiment's data store (module docstring) from its experiment spec (or a shard's)."""
    return waves_data(spec) if spec["settings"]["kind"] == "waves" else denoise_data(spec)
