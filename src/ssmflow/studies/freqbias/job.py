"""One `freqbias` training job: a shard spec in, a labelled trajectory Dataset out.

A waves shard is one Sobolev filter of a waves experiment; its runs are alpha x beta
(or the listed `pairs`) x seed. A denoise shard holds every alpha preset x beta x seed.
All runs of a shard are trained together by the shared engine (`ssmflow.train`); the
parameters are recorded at the recording steps and evaluated on the test set afterwards.
A run's keys come from its own coordinates (experiment, filter, alpha, beta, seed).
The data (waves: the input basis, the test amplitudes and each run's data key; denoise:
the images, the test noise and each run's data key) comes from the experiment's data
store (`data.py`, the data stage).
"""

from __future__ import annotations

import itertools
import logging
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from ssmflow import models, store, train
from ssmflow.config import digest
from ssmflow.ssm.sobolev import preset_kappa
from ssmflow.studies.freqbias import data as fb_data
from ssmflow.studies.freqbias import denoise, geometry, waves

log = logging.getLogger("ssmflow.freqbias")


#: input samples (sequences x length) per evaluation call of a waves shard
EVAL_ELEMENTS = 2**22


def record_schedule(steps: int, points: int) -> np.ndarray:
    """`points` recording steps spread evenly over 0..steps (0 and the end of training included)."""
    return np.unique(np.round(np.linspace(0, steps, points)).astype(np.int64))


def run_grid(spec: dict) -> list[tuple[float | str, float]]:
    """The (alpha, beta) cells a shard trains: the listed `pairs`, or the full product of the axes."""
    axes, pairs = spec["axes"], spec["settings"].get("pairs")
    cells = list(itertools.product(axes["alpha"], axes["beta"]))
    return [c for c in cells if list(c) in [list(p) for p in pairs]] if pairs else cells


def _train(spec: dict, init_fn, loss_fn, optimizer, runs: dict, n_runs: int, rec: np.ndarray):
    common, steps = spec["common"], spec["settings"]["steps"]

    def observe_fn(model, run):
        del run
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
        return {f"param{i:03d}": leaf for i, leaf in enumerate(leaves)}

    def optimizer_fn(run):
        del run
        return optimizer

    n_chunks = max(2, math.ceil(steps / common["chunk_steps"]))
    return train.train_ensemble(init_fn, loss_fn, observe_fn, runs, np.tile(rec, (n_runs, 1)), optimizer_fn=optimizer_fn,
                                chunk_steps=math.ceil((steps + 1) / n_chunks), logger=log, batching=common["batching"])


def _snapshots(res, n_leaves: int) -> list[jax.Array]:
    return [jnp.asarray(res.records[f"param{i:03d}"]) for i in range(n_leaves)]


def _cosine_adamw(lr: float, steps: int) -> optax.GradientTransformation:
    return optax.adamw(optax.cosine_decay_schedule(lr, max(steps, 1)), weight_decay=0.0)


# ------------------------------------------------------------------------------------ waves

def train_waves(spec: dict, data: xr.Dataset) -> xr.Dataset:
    """Train a waves shard (module docstring) from its experiment's data store; return its trajectory Dataset."""
    t0 = time.perf_counter()
    s, common = spec["settings"], spec["common"]
    filt = fb_data.waves_filters(spec)[0]
    length, step = s["length"], s["step"]
    freqs = geometry.wave_frequencies(s["cycles"], length, step)
    basis, test_amp = fb_data.waves_inputs(data)
    emul = filt == "upstream-emul"
    filter_s0 = s.get("filter_s0") if filt == "band" else None
    kappa = waves.filter_kappa(filt, step, filter_s0)
    cells, seeds = run_grid(spec), fb_data.seeds(spec)
    rows = [(a, b, seed) for a, b in cells for seed in seeds]
    real = jnp.result_type(float)
    runs = {
        "key": fb_data.train_keys(data, rows, filt),
        "model_key": jnp.stack([fb_data.run_key(spec, "model", seed, a, b, filt) for a, b, seed in rows]),
        "alpha": jnp.asarray([a for a, _, _ in rows], real),
        "beta": jnp.asarray([b for _, b, _ in rows], real),
    }
    channels, n_state, batch = s["channels"], s["state_size"], s["batch"]

    def init_fn(run):
        return waves.WavesModel(channels, n_state, run["alpha"], key=jax.random.wrap_key_data(run["model_key"]))

    def predict(model, u, beta):
        return model(u, step=step, beta=beta, kappa=kappa, emul=emul)

    def loss_fn(model, run, key):
        amp = waves.amplitude_grid_sample(key, batch, s["amplitude_levels"])
        return jnp.mean((predict(model, amp @ basis, run["beta"]) - amp) ** 2)

    arrays, static = train.model_skeleton(init_fn, jax.tree.map(lambda x: x[0], runs))
    treedef = jax.tree.structure(arrays)
    lr_steps = s["steps"]
    optimizer = optax.multi_transform({"im": _cosine_adamw(s["lr_im"], lr_steps), "rest": _cosine_adamw(s["lr"], lr_steps)},
                                      waves.param_labels)
    rec = record_schedule(s["steps"], s["record_points"])
    res = _train(spec, init_fn, loss_fn, optimizer, runs, len(rows), rec)
    t_train = time.perf_counter() - t0
    snaps = _snapshots(res, treedef.num_leaves)

    @eqx.filter_jit
    def evaluate(leaves, beta, u, amp):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        err = jnp.abs(predict(model, u, beta) - amp)
        lam = model.eigenvalues()
        return dict(test_mae=err.mean(0), test_mse=jnp.mean(err**2), lambda_re=lam.real, lambda_im=lam.imag,
                    c_re=model.c_re, c_im=model.c_im, d_skip=model.d)

    # The test set in blocks of at most EVAL_ELEMENTS input samples (10,000 sequences of
    # L = 8192 at once need 26 GB): sums of the errors per block, the last block padded with
    # copies of its last sequence that the mask leaves out. One block (the default config)
    # is `evaluate` as it is.
    n_test = test_amp.shape[0]
    per_block = min(n_test, max(1, EVAL_ELEMENTS // length))
    blocks = [(test_amp[np.minimum(np.arange(lo, lo + per_block), n_test - 1)],
               jnp.asarray(np.arange(lo, lo + per_block) < n_test, test_amp.dtype)) for lo in range(0, n_test, per_block)]
    test_u = test_amp @ basis if len(blocks) == 1 else None  # (test, time): 2.5 GB in wavesfull

    @eqx.filter_jit
    def block_errors(leaves, beta, amp, mask):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        err = jnp.abs(predict(model, amp @ basis, beta) - amp) * mask[:, None]
        return err.sum(0), jnp.sum(err**2)

    @eqx.filter_jit
    def parameters(leaves):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        lam = model.eigenvalues()
        return dict(lambda_re=lam.real, lambda_im=lam.imag, c_re=model.c_re, c_im=model.c_im, d_skip=model.d)

    def evaluate_all(leaves, beta):
        if len(blocks) == 1:
            return evaluate(leaves, beta, test_u, test_amp)
        abs_sum, sq_sum = 0.0, 0.0
        for amp, mask in blocks:
            a, q = block_errors(leaves, beta, amp, mask)
            abs_sum, sq_sum = abs_sum + np.asarray(a, np.float64), sq_sum + float(q)
        return dict(parameters(leaves), test_mae=abs_sum / n_test, test_mse=sq_sum / test_amp.size)

    out = {}  # name -> (run, record, ...), NaN where a probe did not evaluate (`train.evaluated`)
    for r, j in train.evaluated(itertools.product(range(len(rows)), range(len(rec)))):
        for name, v in evaluate_all([leaf[r, j] for leaf in snaps], runs["beta"][r]).items():
            v = np.asarray(v)
            if name not in out:
                out[name] = np.full((len(rows), len(rec), *v.shape), np.nan, v.dtype)
            out[name][r, j] = v
    final = jax.tree.unflatten(treedef, [leaf[:, -1] for leaf in snaps])
    log.info("trained %d waves runs in %.1f s (%.0f steps/s), evaluated in %.1f s", len(rows), t_train,
             res.steps_per_second, time.perf_counter() - t0 - t_train)

    alphas, betas = list(spec["axes"]["alpha"]), list(spec["axes"]["beta"])
    grid_shape = (1, 1, len(alphas), len(betas), len(seeds))
    index = {(float(a), float(b), seed): (alphas.index(a), betas.index(b), seed) for a, b, seed in rows}

    def on_grid(values, *dims):
        values = np.asarray(values, dtype=float)
        full = np.full(grid_shape + values.shape[1:], np.nan)
        for r, (a, b, seed) in enumerate(rows):
            full[(0, 0, *index[(float(a), float(b), seed)])] = values[r]
        return (("variant", "filter", "alpha", "beta", "seed", *dims), full)

    variables = {
        "train_loss": on_grid(res.records["loss"], "step"),
        "test_mse": on_grid(out["test_mse"], "step"),
        "test_mae": on_grid(out["test_mae"], "step", "wave"),
        "d_skip": on_grid(out["d_skip"], "step"),
        "diverged_at": on_grid(np.where(res.diverged_at >= 0, res.diverged_at, -1)),
        "enc_w": on_grid(final.enc_w, "channel"),
        "enc_b": on_grid(final.enc_b, "channel"),
        "dec_w": on_grid(final.dec_w, "wave", "channel"),
        models.MODEL_VAR: (("variant", "filter", "alpha", "beta", "seed", models.MODEL_DIM),
                           models.placed(models.run_bytes(res.final_params), [(0, 0, *index[(float(a), float(b), seed)]) for a, b, seed in rows],
                                         grid_shape)),
    }
    for name in ("lambda_re", "lambda_im", "c_re", "c_im"):
        variables[name] = on_grid(out[name], "step", "channel", "mode")
    ds = xr.Dataset(
        variables,
        coords={
            "variant": np.array([s["variant"]], dtype=object), "filter": np.array([filt], dtype=object),
            "alpha": np.asarray(alphas, float), "beta": np.asarray(betas, float), "seed": np.asarray(seeds), "step": rec,
            "wave": np.arange(waves.N_WAVES), "channel": np.arange(channels), "mode": np.arange(n_state // 2),
            "wave_freq": (("variant", "wave"), np.asarray([freqs])),
            "kappa": ("filter", [kappa]),  # a coordinate, not only an attr: shards of other filters differ in it
        },
    )
    ds.attrs = store.provenance(
        digest(spec), common["precision"], study=spec["study"], experiment=spec["experiment"], shard=spec["shard"],
        kind="waves", length=length, delta=step, kappa=kappa, **({"filter_s0": float(filter_s0)} if filter_s0 else {}),
        cycles=list(s["cycles"]), steps=s["steps"], batch=batch,
        steps_per_second=float(res.steps_per_second), n_steps=int(res.n_steps), wall_seconds=float(time.perf_counter() - t0),
    )
    return ds


# ---------------------------------------------------------------------------------- denoise

def denoise_setup(s: dict) -> dict:
    """Derived geometry of a denoise config: Delta, kappa, stripe frequencies, alpha values (geometry.py)."""
    cols = s["cols"]
    step = geometry.denoise_step(cols)
    return {"step": step, "kappa": preset_kappa(s["filter"], step), "omega_p": geometry.stripe_omega(cols),
            "stripes": geometry.stripe_frequencies(cols)}


def train_denoise(spec: dict, data: xr.Dataset) -> xr.Dataset:
    """Train a denoise shard (module docstring) from its experiment's data store; return its trajectory Dataset
    (with example reconstructions)."""
    t0 = time.perf_counter()
    s, common = spec["settings"], spec["common"]
    geo = denoise_setup(s)
    step, kappa, n_state = geo["step"], geo["kappa"], s["state_size"]
    real = jnp.result_type(float)
    images = fb_data.denoise_inputs(data)
    x_train = jnp.asarray(images["x_train"], real)
    cells, seeds = run_grid(spec), fb_data.seeds(spec)
    rows = [(a, b, seed) for a, b in cells for seed in seeds]
    alpha_values = {a: geometry.alpha_value(a, s["cols"]) for a in spec["axes"]["alpha"]}
    runs = {
        "key": fb_data.train_keys(data, rows),
        "model_key": jnp.stack([fb_data.run_key(spec, "model", seed, a, b) for a, b, seed in rows]),
        "alpha": jnp.asarray([alpha_values[a] for a, _, _ in rows], real),
        "beta": jnp.asarray([b for _, b, _ in rows], real),
    }
    batch = s["batch"]

    def init_fn(run):
        return denoise.DenoiseModel(n_state, run["alpha"], key=jax.random.wrap_key_data(run["model_key"]))

    def loss_fn(model, run, key):
        x = x_train[jax.random.randint(key, (batch,), 0, x_train.shape[0])]
        lam = denoise.denoise_eigenvalues(n_state, run["alpha"])
        return jnp.mean((model(x, lam, step=step, beta=run["beta"], kappa=kappa) - x) ** 2)

    arrays, static = train.model_skeleton(init_fn, jax.tree.map(lambda x: x[0], runs))
    treedef = jax.tree.structure(arrays)
    rec = record_schedule(s["steps"], s["record_points"])
    res = _train(spec, init_fn, loss_fn, _cosine_adamw(s["lr"], s["steps"]), runs, len(rows), rec)
    t_train = time.perf_counter() - t0
    snaps = _snapshots(res, treedef.num_leaves)

    clean, noises, test_source = images["clean"], images["noises"], images["test_source"]
    sources = [src for src in denoise.SOURCES if src in s["sources"]]
    examples = np.concatenate([np.flatnonzero(test_source == src)[: s["n_examples"]] for src in sources])
    stripe_omega = jnp.asarray([geo["stripes"]["horizontal"], geo["stripes"]["vertical"]], real)

    @eqx.filter_jit
    def evaluate(leaves, alpha, beta, x, noise):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        lam = denoise.denoise_eigenvalues(n_state, alpha)
        return denoise.noise_metrics(model, lam, x, noise, step=step, beta=beta, kappa=kappa)

    @eqx.filter_jit
    def reconstruct(leaves, alpha, beta, x):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        lam = denoise.denoise_eigenvalues(n_state, alpha)
        return model(x, lam, step=step, beta=beta, kappa=kappa), model.response(lam, stripe_omega, step=step, beta=beta, kappa=kappa)

    n_noise, n_src = len(geometry.NOISES), len(sources)
    mse_out = np.full((len(rows), n_noise, n_src), np.nan)
    transmission = np.full_like(mse_out, np.nan)
    mse_ref = np.full((n_noise, n_src), np.nan)
    at_stripes = np.full((len(rows), 2, 2), np.nan)  # (run, phase init/final, stripe H/V)
    recon = {}
    for r, (a, b, seed) in train.evaluated(enumerate(rows)):
        final = [leaf[r, -1] for leaf in snaps]
        for i, noise in enumerate(geometry.NOISES):
            for j, src in enumerate(sources):
                pick = test_source == src
                m_out, m_ref, trans = evaluate(final, runs["alpha"][r], runs["beta"][r], jnp.asarray(clean[pick], real),
                                               jnp.asarray(noises[noise][pick], real))
                mse_out[r, i, j], mse_ref[i, j] = float(m_out), float(m_ref)
                transmission[r, i, j] = float(trans) if noise != "none" else np.nan
        for phase, col in (("init", 0), ("final", -1)):
            at_stripes[r, 0 if phase == "init" else 1] = np.asarray(
                reconstruct([leaf[r, col] for leaf in snaps], runs["alpha"][r], runs["beta"][r], jnp.zeros((1, 2), real))[1]) ** 2
        if seed == 0:
            recon[(a, b)] = np.stack([np.asarray(reconstruct(final, runs["alpha"][r], runs["beta"][r],
                                                             jnp.asarray(clean[examples] + noises[noise][examples], real))[0])
                                      for noise in geometry.NOISES])
    log.info("trained %d denoise runs in %.1f s (%.0f steps/s), evaluated in %.1f s", len(rows), t_train,
             res.steps_per_second, time.perf_counter() - t0 - t_train)

    presets, betas = list(spec["axes"]["alpha"]), list(spec["axes"]["beta"])
    grid_shape = (len(presets), len(betas), len(seeds))

    def on_grid(values, *dims):
        values = np.asarray(values, dtype=float)
        full = np.full(grid_shape + values.shape[1:], np.nan)
        for r, (a, b, seed) in enumerate(rows):
            full[presets.index(a), betas.index(b), seed] = values[r]
        return (("alpha", "beta", "seed", *dims), full)

    params = {name: np.asarray(leaf) for name, leaf in zip(("c_re", "c_im", "gain", "bias"), snaps, strict=True)}
    lam = np.asarray(jnp.stack([denoise.denoise_eigenvalues(n_state, alpha_values[a]) for a in presets]))
    shape_img = (s["rows"], s["cols"])
    output = np.full((len(presets), len(betas), n_noise, len(examples), *shape_img), np.nan)
    for (a, b), v in recon.items():
        output[presets.index(a), betas.index(b)] = v.reshape(n_noise, len(examples), *shape_img)
    variables = {
        "train_loss": on_grid(res.records["loss"], "step"),
        "c_re": on_grid(params["c_re"], "step", "mode"),
        "c_im": on_grid(params["c_im"], "step", "mode"),
        "gain": on_grid(params["gain"], "step"),
        "bias": on_grid(params["bias"], "step"),
        "diverged_at": on_grid(np.where(res.diverged_at >= 0, res.diverged_at, -1)),
        "lambda_re": (("alpha", "mode"), lam.real),
        "lambda_im": (("alpha", "mode"), lam.imag),
        "mse_out": on_grid(mse_out, "noise", "source"),
        "transmission": on_grid(transmission, "noise", "source"),
        "mse_ref": (("noise", "source"), mse_ref),
        "at_stripes": on_grid(at_stripes, "phase", "stripe"),
        "clean": (("example", "row", "col"), clean[examples].reshape(len(examples), *shape_img)),
        "noisy": (("noise", "example", "row", "col"),
                  np.stack([(clean[examples] + noises[n][examples]).reshape(len(examples), *shape_img) for n in geometry.NOISES])),
        "output": (("alpha", "beta", "noise", "example", "row", "col"), output),
        models.MODEL_VAR: (("alpha", "beta", "seed", models.MODEL_DIM),
                           models.placed(models.run_bytes(res.final_params), [(presets.index(a), betas.index(b), seed) for a, b, seed in rows],
                                         grid_shape)),
    }
    ds = xr.Dataset(
        variables,
        coords={
            "alpha": np.array(presets, dtype=object), "alpha_value": ("alpha", np.asarray([alpha_values[a] for a in presets])),
            "beta": np.asarray(betas, float), "seed": np.asarray(seeds), "step": rec, "mode": np.arange(n_state // 2),
            "noise": np.array(geometry.NOISES, dtype=object), "source": np.array(sources, dtype=object),
            "phase": np.array(["init", "final"], dtype=object), "stripe": np.array(["horizontal", "vertical"], dtype=object),
            "example": np.arange(len(examples)), "example_source": ("example", np.asarray(test_source[examples], dtype=object)),
            "row": np.arange(s["rows"]), "col": np.arange(s["cols"]),
        },
    )
    ds.attrs = store.provenance(
        digest(spec), common["precision"], study=spec["study"], experiment=spec["experiment"], shard=spec["shard"],
        kind="denoise", rows=s["rows"], cols=s["cols"], length=s["rows"] * s["cols"], delta=step, kappa=kappa,
        filter=s["filter"], omega_h=geo["stripes"]["horizontal"], omega_v=geo["stripes"]["vertical"], steps=s["steps"],
        batch=batch, n_train=len(x_train), n_test=len(clean),
        steps_per_second=float(res.steps_per_second), n_steps=int(res.n_steps), wall_seconds=float(time.perf_counter() - t0),
    )
    return ds


def model_template(spec: dict):
    """A pytree shaped like one run's trained model of the shard `spec` (arrays as
    `jax.ShapeDtypeStruct`s): what `ssmflow.models.load` fills with a saved run."""
    s, real = spec["settings"], jnp.result_type(float)
    alpha, key = jnp.ones((), real), jax.random.key(0)  # alpha sets values only, not shapes
    if s["kind"] == "waves":
        arrays, static = train.model_skeleton(lambda k: waves.WavesModel(s["channels"], s["state_size"], alpha, key=k), key)
    else:
        arrays, static = train.model_skeleton(lambda k: denoise.DenoiseModel(s["state_size"], alpha, key=k), key)
    return eqx.combine(arrays, static)


def train_shard(spec: dict, data: xr.Dataset | None = None) -> xr.Dataset:
    """Train one freqbias shard, waves or denoise by the experiment's `kind`, from the experiment's data store
    `data` (`data.data_dataset`, opened lazily); without it, the shard's own part is synthesized in memory."""
    if data is None:
        data = fb_data.data_dataset(spec)
    return train_waves(spec, data) if spec["settings"]["kind"] == "waves" else train_denoise(spec, data)
