"""One `s4d` training job: a shard spec in, a labelled trajectory Dataset out.

A shard is one (N, disc) pair of an experiment (and, in an X4 ablation experiment, one
real-part transform); its runs are init x seed (x B trained or frozen), trained
together by the shared engine (`ssmflow.train`) in one compiled scan. The engine records
every parameter at the recording steps; afterwards this job evaluates each snapshot on
the validation set (and the last one on the test set) and extracts what the study
stores: eigenvalues lambda, the products C B, Delta and D of every mode over training.

Data: the task's splits come from the experiment's data store (`data.data_dataset`,
written once by the data stage and shared by the shards); minibatches (sdigits) and
generated batches (delay) are drawn per step from the run's training-stream key.

Pairing: the model key depends on (experiment, N, seed) and the training stream
(minibatches, dropout) on (experiment, seed) only, so the inits and both
discretizations of a seed start from the same C, D, Delta and linear layers and see
the same data; so do a seed's runs with B trained and frozen, and with each real-part
transform (every transform starts from the same lambda).
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
import xarray as xr

from ssmflow import grid, models, store, train
from ssmflow.config import digest
from ssmflow.ssm.layers import S4DModel
from ssmflow.ssm.optim import s4d_optimizer
from ssmflow.studies.s4d import ABLATION_AXES, BATCHED_OPTION_AXES, LRA_AXES, OPTION_AXES
from ssmflow.studies.s4d import data as s4d_data
from ssmflow.studies.s4d.tasks import Split, Task, task_info

log = logging.getLogger("ssmflow.s4d")

EVAL_CHUNK = 64  # samples per forward pass when evaluating snapshots


def record_schedule(steps: int, points: int) -> np.ndarray:
    """`points` recording steps spread evenly over 0..steps-1 (first and last included)."""
    return np.unique(np.round(np.linspace(0, steps - 1, points)).astype(np.int64))


def real_transform(spec: dict) -> str:
    """The shard's real-part transform: its `real_transform` axis value, else the default (exp)."""
    return str(spec["axes"].get("real_transform", [ABLATION_AXES["real_transform"]])[0])


def sobolev(spec: dict) -> str:
    """The shard's Sobolev filter (freqbias X4): its `sobolev` axis value, else off."""
    return str(spec["axes"].get("sobolev", [LRA_AXES["sobolev"]])[0])


def alpha_values(spec: dict) -> list[float]:
    """The shard's Im(lambda) scales alpha (freqbias X4, batched): its `alpha` axis, else [1]."""
    return [float(v) for v in spec["axes"].get("alpha", [LRA_AXES["alpha"]])]


def b_values(spec: dict) -> list[str]:
    """The shard's choices of B (trained, frozen), batched: its `B` axis, else [trained]."""
    return [str(v) for v in spec["axes"].get("B", [ABLATION_AXES["B"]])]


def build_model(task: Task, spec: dict, init: str, key, alpha: float = 1.0) -> S4DModel:
    """The initial model of one run (`alpha`: its Im(lambda) scale, freqbias X4)."""
    model, exp = spec["common"]["model"], spec["settings"]
    return S4DModel(
        task.d_in, task.d_out, channels=model["channels"], state_size=int(spec["axes"]["N"][0]), depth=model["depth"],
        init=init, method=spec["axes"]["disc"][0], dt_min=model["dt_min"], dt_max=model["dt_max"],
        dropout=exp["dropout"], pooling=task.pooling, legs_b=model["legs_b"], imag_scale=alpha,
        real_transform=real_transform(spec), sobolev=sobolev(spec), bidirectional=exp.get("bidirectional", False), key=key,
    )


def model_template(spec: dict) -> S4DModel:
    """A model shaped like one run's trained model of the shard `spec` (arrays as
    `jax.ShapeDtypeStruct`s; every init of a shard has the same shapes): what
    `ssmflow.models.load` fills with a saved run."""
    task = task_info(spec["settings"])
    arrays, static = train.model_skeleton(lambda k: build_model(task, spec, spec["axes"]["init"][0], k), jax.random.key(0))
    return eqx.combine(arrays, static)


def run_keys(spec: dict, seed: int) -> tuple[jax.Array, jax.Array]:
    """(model key, training-stream key) of a seed: see the module docstring on pairing."""
    exp, n = spec["experiment"], int(spec["axes"]["N"][0])
    model_key = train.run_key(spec["study"], {"experiment": exp, "N": n, "seed": seed, "stream": "model"})
    stream_key = train.run_key(spec["study"], {"experiment": exp, "seed": seed, "stream": "train"})
    return model_key, stream_key


def evaluate_snapshots(static, treedef, leaves: list[jax.Array], task: Task, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and metric of every snapshot on a split.

    One compiled forward pass over a chunk of `EVAL_CHUNK` samples for all runs at once
    (vmapped), called for each record and chunk (`train.evaluated`: a probe runs a few);
    the last chunk is padded and masked.

    **Arguments:** `leaves`: the parameter leaves, each `(run, record, ...)`.
    **Returns:** `(loss, metric)`, each `(run, record)`.
    """
    n = split.x.shape[0]
    idx = np.minimum(np.arange(-(-n // EVAL_CHUNK) * EVAL_CHUNK), n - 1).reshape(-1, EVAL_CHUNK)
    real = (np.arange(idx.size) < n).reshape(idx.shape)
    n_runs, n_rec = leaves[0].shape[:2]
    loss, score = np.zeros((n_runs, n_rec)), np.zeros((n_runs, n_rec))
    chunks = list(zip(idx, real, strict=True))
    snapshot, at = None, None
    for j, (chunk, mask) in train.evaluated(itertools.product(range(n_rec), chunks)):
        if at != j:
            snapshot, at = [leaf[:, j] for leaf in leaves], j
        x = jnp.asarray(split.x[chunk], jnp.result_type(float))
        chunk_loss, chunk_score = _forward(static, treedef, snapshot, task, x, jnp.asarray(split.y[chunk]))
        loss[:, j] += np.asarray(chunk_loss)[:, mask].sum(axis=1)
        score[:, j] += np.asarray(chunk_score)[:, mask].sum(axis=1)
    return loss / n, score / n


@eqx.filter_jit
def _forward(static, treedef, snapshot, task: Task, x, y):
    """Per-sample loss and metric `(run, sample)` of every run's model on one chunk."""

    def one(leaves):
        model = eqx.combine(jax.tree.unflatten(treedef, leaves), static)
        pred = jax.vmap(model)(x)
        return jax.vmap(task.sample_loss)(pred, y), jax.vmap(task.sample_score)(pred, y)

    return jax.vmap(one)(snapshot)


def spectra(static, treedef, leaves: list[jax.Array]) -> dict[str, np.ndarray]:
    """lambda, C B, Delta and D of every snapshot: `(snapshot, layer, channel[, mode])`."""

    @eqx.filter_jit
    def run(leaves):
        def one(snapshot):
            ssms = eqx.combine(jax.tree.unflatten(treedef, snapshot), static).ssms()
            lam = jnp.stack([s.eigenvalues() for s in ssms])
            cb = jnp.stack([(s.c_re + 1j * s.c_im) * (s.b_re + 1j * s.b_im) for s in ssms])
            out = dict(lambda_re=lam.real, lambda_im=lam.imag, cb_re=cb.real, cb_im=cb.imag,
                       delta=jnp.stack([s.step() for s in ssms]), d_skip=jnp.stack([s.d for s in ssms]))
            if ssms[0].s_h is not None:  # the learnable Sobolev exponents (freqbias X4)
                out["s_h"] = jnp.stack([s.s_h for s in ssms])
            return out

        return jax.vmap(one)(leaves)

    return {k: np.asarray(v) for k, v in run(leaves).items()}


def train_shard(spec: dict, data: xr.Dataset | None = None) -> xr.Dataset:
    """Train every run (init x seed) of a shard and return its trajectory Dataset.

    **Arguments:** the shard `spec`; `data` the experiment's data store (`data.zarr`, opened
    lazily); None synthesizes the task data in memory with the data stage's function.
    """
    t0 = time.perf_counter()
    settings, common = spec["settings"], spec["common"]
    task = task_info(settings)
    if data is None:
        data = s4d_data.data_dataset(spec)
    s4d_data.check_matches(spec, data)
    data_digest = str(data.attrs.get("config_digest", ""))
    data = s4d_data.task_data(data)
    inits, bs, alphas, seeds = list(spec["axes"]["init"]), b_values(spec), alpha_values(spec), grid.seed_values(spec)
    rows = list(itertools.product(inits, bs, alphas, seeds))
    built, stream_keys = [], []
    for init, _, alpha, seed in rows:
        model_key, stream_key = run_keys(spec, seed)
        built.append(build_model(task, spec, init, jax.random.wrap_key_data(model_key), alpha))
        stream_keys.append(stream_key)
    params = [eqx.filter(m, eqx.is_array) for m in built]
    static = eqx.partition(built[0], eqx.is_array)[1]
    treedef = jax.tree.structure(params[0])
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params[0]))
    runs = dict(key=jnp.stack(stream_keys), params0=jax.tree.map(lambda *xs: jnp.stack(xs), *params),
                train_b=jnp.asarray([float(b == "trained") for _, b, _, _ in rows], jnp.result_type(float)))
    if data.train is not None:
        x_train = jnp.asarray(data.train.x, jnp.result_type(float))
        y_train = jnp.asarray(data.train.y)
        runs.update(x_train=jnp.broadcast_to(x_train, (len(rows), *x_train.shape)),
                    y_train=jnp.broadcast_to(y_train, (len(rows), *y_train.shape)))
    n_steps, batch = settings["steps"], settings["batch"]
    rec = record_schedule(n_steps, settings["record_points"])
    optim = common["optim"]

    def init_fn(run):
        return eqx.combine(run["params0"], static)

    def loss_fn(model, run, key):
        k_data, k_drop = jax.random.split(key)
        x, y = task.sample(k_data, batch, run.get("x_train"), run.get("y_train"))
        pred = jax.vmap(model)(x, key=jax.random.split(k_drop, batch))
        return jnp.mean(jax.vmap(task.sample_loss)(pred, y))

    def observe_fn(model, run):
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
        return {f"param{i:03d}": leaf for i, leaf in enumerate(leaves)}

    def optimizer_fn(run):  # B trained (train_b = 1) or frozen (0), per run
        return s4d_optimizer(lr=optim["lr"], lr_ssm=optim["lr_ssm"], weight_decay=optim["weight_decay"],
                             total_steps=n_steps, warmup_frac=optim["warmup"], train_b=run["train_b"])

    n_chunks = max(2, math.ceil(n_steps / common["chunk_steps"]))
    res = train.train_ensemble(
        init_fn, loss_fn, observe_fn, runs, np.tile(rec, (len(rows), 1)), optimizer_fn=optimizer_fn,
        chunk_steps=math.ceil(n_steps / n_chunks), logger=log, batching=common["batching"],
    )
    t_train = time.perf_counter() - t0
    snaps = [jnp.asarray(res.records[f"param{i:03d}"]) for i in range(treedef.num_leaves)]
    flat = [s.reshape(-1, *s.shape[2:]) for s in snaps]
    val_loss, val_metric = evaluate_snapshots(static, treedef, snaps, task, data.val)
    test_loss, test_metric = evaluate_snapshots(static, treedef, [s[:, -1:] for s in snaps], task, data.test)
    spec_vals = spectra(static, treedef, flat)
    log.info("trained %d runs in %.1f s (%.0f steps/s), evaluated in %.1f s", len(rows), t_train,
             res.steps_per_second, time.perf_counter() - t0 - t_train)
    # the optional axes an experiment gives (X4 ablation, freqbias X4), in the order of `rows`
    extra_dims = [a for a in OPTION_AXES if a in spec["axes"]]
    run_dims = ("init", "disc", "N", *extra_dims, "seed")
    shape = (len(inits), 1, 1, *[len(spec["axes"][a]) if a in BATCHED_OPTION_AXES else 1 for a in extra_dims], len(seeds))
    n_rec = len(rec)

    def per_run(a, *dims):
        a = np.asarray(a)
        return ((*run_dims, *dims), a.reshape(shape + a.shape[1:]))

    def per_record(a, *dims):
        a = np.asarray(a)
        return per_run(a.reshape(len(rows), n_rec, *a.shape[1:]), "step", *dims)

    variables = {
        "train_loss": per_run(res.records["loss"], "step"),
        "val_loss": per_run(val_loss, "step"),
        "val_metric": per_run(val_metric, "step"),
        "test_loss": per_run(test_loss[:, 0]),
        "test_metric": per_run(test_metric[:, 0]),
        "diverged_at": per_run(np.where(res.diverged_at >= 0, res.diverged_at, -1)),
        "n_params": per_run(np.full(len(rows), n_params)),
        "wall_s": per_run(np.full(len(rows), time.perf_counter() - t0)),
        models.MODEL_VAR: per_run(models.run_bytes(res.final_params), models.MODEL_DIM),  # each run's trained model
    }
    for name in ("lambda_re", "lambda_im", "cb_re", "cb_im"):
        variables[name] = per_record(spec_vals[name], "layer", "channel", "mode")
    for name in ("delta", "d_skip", "s_h"):
        if name in spec_vals:
            variables[name] = per_record(spec_vals[name], "layer", "channel")
    model = common["model"]
    ds = xr.Dataset(
        variables,
        coords={
            "init": np.array(inits, dtype=object), "disc": np.array(spec["axes"]["disc"], dtype=object),
            "N": np.asarray(spec["axes"]["N"]), "seed": np.asarray(seeds), "step": rec,
            "layer": np.arange(model["depth"]), "channel": np.arange(model["channels"]),
            "mode": np.arange(int(spec["axes"]["N"][0]) // 2),
            **{a: np.array(spec["axes"][a], dtype=object if a != "alpha" else float) for a in extra_dims},
        },
    )
    ds.attrs = store.provenance(
        digest(spec), common["precision"], study=spec["study"], experiment=spec["experiment"], shard=spec["shard"],
        task=task.name, metric=task.metric, length=task.length, lag=task.lag, steps=n_steps, batch=batch,
        model=model, optim=common["optim"], steps_per_second=float(res.steps_per_second),
        n_steps=int(res.n_steps), wall_seconds=float(time.perf_counter() - t0), data_digest=data_digest,
    )
    return ds
