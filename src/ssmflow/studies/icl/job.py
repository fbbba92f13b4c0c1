"""One icl training job: a shard spec in, a labelled trajectory Dataset out.

Training goes through the shared engine (`ssmflow.train`): every seed of the shard in
one compiled scan, B fresh tasks per step drawn from fold_in(data key, step), the optax
groups of spec section 9. The data keys and the fixed eval set come from the
experiment's data store (`data.py`, the data stage). At every recording step (every `eval_every` steps, step 0 and
the last step) the engine stores the parameters and the minibatch loss; after training
every snapshot is evaluated on the fixed eval set (loss (3), (22)-(24) against K-step
GD), and the GD-SSM snapshots are gauge-fixed (25). The GD references come from
`theory.linear_reference` on the same eval tasks, so `gd_loss` here equals
`gd_loss_eval` of the theory store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr

from ssmflow import models, store, train
from ssmflow.config import digest
from ssmflow.studies.icl import CATEGORICAL, KIND_AXES, gd
from ssmflow.studies.icl import data as icl_data
from ssmflow.studies.icl import init as icl_init
from ssmflow.studies.icl import theory as th
from ssmflow.studies.icl.metrics import functional_metrics, gauge_alignment
from ssmflow.studies.icl.model import GDSSM
from ssmflow.studies.icl.tasks import Tasks, linear_tasks, query_loss, sine_tasks

log = logging.getLogger("ssmflow.icl")

SSM_FIELDS = ("lam", "log_step", "lam_re", "lam_im")  # optimizer group 1 (section 9)
EVAL_BATCH = 1000  # eval tasks per vectorised batch (bounds memory for large d)
EVAL_SNAPSHOTS = 4  # snapshots per evaluation call (a probe times a few calls: `train.evaluated`)


def record_schedule(steps: int, every: int) -> np.ndarray:
    """Recording steps: 0, every, 2 every, ... and the last step (steps - 1)."""
    return np.unique(np.concatenate([np.arange(0, steps, every), [steps - 1]]))


@dataclass(frozen=True)
class Setup:
    """What one shard trains: its coords, task family and model factory."""

    kind: str
    model: str
    coords: dict
    d: int
    n_context: int
    d_y: int
    blocks: int
    make: Callable  # key -> model
    tasks: Callable  # (key, batch) -> Tasks
    scalar_out: bool  # prediction = the last output coordinate


def shard_setup(spec: dict) -> Setup:
    """The shard's coordinates, task generator and model factory from its spec."""
    common, settings = spec["common"], spec["settings"]
    kind, variant = settings["kind"], settings["variant"]
    coords = {a: spec["axes"][a][0] for a in KIND_AXES[kind]}
    m = common["model"]
    sign, dtype = float(m["pred_sign"]), jnp.result_type(float)
    r, s = common["input_range"], common["weight_scale"]
    n = int(coords["n_context"])
    if kind == "sine":
        P = m["sine_width"]

        def make(key):
            return icl_init.init_sine(key, P, coords["embed"], hidden=m["mlp_hidden"], c_init=m["c_init"], pred_sign=sign,
                                      clip_decay=m["clip_decay"], dtype=dtype)

        def tasks(key, batch):
            return sine_tasks(key, batch, n, draw=coords["sine_draw"], input_range=r, dtype=dtype)

        return Setup(kind, "sine", coords, 1, n, 1, 1, make, tasks, False)

    d = int(coords["d"])
    blocks = int(coords.get("blocks", 1))
    model = coords.get("model", "gdssm")
    makers = {
        "gdssm": lambda key: icl_init.init_gdssm(key, d, blocks, c_init=m["c_init"], pred_sign=sign, clip_decay=m["clip_decay"], dtype=dtype),
        "diag_wq": lambda key: icl_init.init_gdssm(key, d, 1, c_init=m["c_init"], pred_sign=sign, clip_decay=m["clip_decay"],
                                                   diag_wq=True, dtype=dtype),
        "no_gate": lambda key: icl_init.init_nogate(key, d, pred_sign=sign, dtype=dtype),
        "lsa": lambda key: icl_init.init_lsa(key, d, pred_sign=sign, dtype=dtype),
        "lti_ssm": lambda key: icl_init.init_lti(key, d, state=m["lti_state"], pred_sign=sign, dtype=dtype),
    }

    def tasks(key, batch):
        return linear_tasks(key, batch, d, n, variant=variant, input_range=r, weight_scale=s, dtype=dtype)

    return Setup(kind, model, coords, d, n, d if variant == "vector" else 1, blocks, makers[model], tasks, variant == "scalar")


def learning_rate(peak: float, ocfg: dict, steps: int) -> optax.Schedule | float:
    """Constant (section 9, the official effective behaviour) or cosine decay to 0 over `steps` (extension)."""
    return optax.cosine_decay_schedule(peak, steps) if ocfg["schedule"] == "cosine" else peak


def make_optimizer(model: str, ocfg: dict, steps: int) -> optax.GradientTransformation:
    """Section 9: Adam (lr_ssm, no decay) on lam/log_step/LTI poles, AdamW (lr, weight decay) on the rest;
    LSA: plain Adam with `lsa_lr` (8.1)."""
    betas = dict(b1=ocfg["b1"], b2=ocfg["b2"], eps=ocfg["eps"])
    if model == "lsa":
        return optax.adam(learning_rate(ocfg["lsa_lr"], ocfg, steps), **betas)

    def labels(params):
        return jax.tree_util.tree_map_with_path(lambda path, _: "ssm" if getattr(path[-1], "name", None) in SSM_FIELDS else "main", params)

    return optax.multi_transform(
        {"main": optax.adamw(learning_rate(ocfg["lr"], ocfg, steps), weight_decay=ocfg["weight_decay"], **betas),
         "ssm": optax.adam(learning_rate(ocfg["lr_ssm"], ocfg, steps), **betas)},
        labels,
    )


def model_template(spec: dict):
    """A pytree shaped like one run's trained model of the shard `spec` (its arrays as
    `jax.ShapeDtypeStruct`s): what `ssmflow.models.load` fills with a saved run."""
    arrays, static = train.model_skeleton(shard_setup(spec).make, jax.random.key(0))
    return eqx.combine(arrays, static)


def predict(model, tokens: jax.Array, scalar_out: bool) -> jax.Array:
    """Query predictions (batch, d_y) of a batch of token sequences."""
    yhat = jax.vmap(model.query)(tokens)
    return yhat[:, -1:] if scalar_out else yhat


def run_keys(spec: dict, setup: Setup) -> tuple[jax.Array, jax.Array]:
    """(data keys, init keys) of the shard's seeds, from each run's own coordinates (`data.run_keys`)."""
    data, init = icl_data.run_keys(setup.kind, spec["settings"]["variant"], setup.coords, icl_data.seeds(spec))
    return jnp.asarray(data), jnp.asarray(init)


def param_records(model) -> dict[str, jax.Array]:
    """The model's arrays by path ('.wq', '.core.lam', ...): what the engine stores at each record."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))
    return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def gd_targets(setup: Setup, ref: th.LinearReference, x: np.ndarray, y: np.ndarray, search: str) -> dict[str, tuple]:
    """Per eval task (yhat_GD, J_GD = W_K) at the shared (suffix '') and per-step ('_ps') eta*_K."""
    n, k = setup.n_context, setup.blocks
    out = {}
    for suffix, etas in (("", ref.etas(k, search=search)), ("_ps", ref.etas(k, per_step=True))):
        w = gd.gd_weights(x[:, :n], y[:, :n], etas, n)
        out[suffix] = (np.einsum("bei,bi->be", w, x[:, n]), w)
    return out


def evaluate_snapshots(setup: Setup, records: dict[str, np.ndarray], tasks: Tasks, targets: dict) -> dict[str, np.ndarray]:
    """Loss (3) and (22)-(24) of every recorded snapshot on the eval set: name -> (run, record)."""
    params, static = train.model_skeleton(setup.make, jax.random.key(0))
    paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = [jax.tree_util.keystr(p) for p, _ in paths]
    n_run, n_rec = records[names[0]].shape[:2]
    snaps = [jnp.asarray(records[nm].reshape(n_run * n_rec, *records[nm].shape[2:])) for nm in names]
    jac = setup.kind != "sine"
    dtype = jnp.result_type(float)
    gd_arrays = {sfx: tuple(None if a is None else jnp.asarray(a, dtype) for a in pair) for sfx, pair in targets.items()}

    @jax.jit
    def run(snaps, tokens, y_q, gd_arrays):
        def one(leaves):
            model = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)

            def per_task(tok):
                yq = model.query(tok)
                J = model.query_jacobian(tok) if jac else None
                if setup.scalar_out:
                    return yq[-1:], (J[-1:] if jac else None)
                return yq, J

            yhat, J = jax.lax.map(per_task, tokens, batch_size=EVAL_BATCH)
            out = {"loss": query_loss(yhat, y_q)}
            for sfx, (y_gd, J_gd) in gd_arrays.items():
                out.update({k + sfx: v for k, v in functional_metrics(yhat, J, y_gd, J_gd).items()})
            return out

        return jax.lax.map(one, snaps)

    # blocks of EVAL_SNAPSHOTS snapshots, one compiled program (the last block padded with
    # its last snapshot): a probe evaluates a few (`train.evaluated`), the rest stay NaN
    n = n_run * n_rec
    width = min(EVAL_SNAPSHOTS, n)
    res: dict[str, np.ndarray] = {}
    for lo in train.evaluated(range(0, n, width)):
        pick = np.minimum(np.arange(lo, lo + width), n - 1)
        got = run([leaf[pick] for leaf in snaps], tasks.tokens, tasks.y[:, -1], gd_arrays)
        for k, v in got.items():
            v = np.asarray(v)
            if k not in res:
                res[k] = np.full((n, *v.shape[1:]), np.nan, v.dtype)
            res[k][lo:lo + width] = v[: n - lo]
    return {k: v.reshape(n_run, n_rec) for k, v in res.items()}


def train_shard(spec: dict, data: xr.Dataset | None = None) -> xr.Dataset:
    """Train every seed of a shard and return its trajectory Dataset (spec sections 9, 10, 12).

    `data` is the experiment's data store (`data.data_dataset`, opened lazily): the shard
    reads its runs' data keys and its eval set from it. Without it, the shard's own part
    is synthesized in memory (the same numbers).
    """
    t0 = time.perf_counter()
    common = spec["common"]
    setup = shard_setup(spec)
    variant = spec["settings"]["variant"]
    if data is None:
        data = icl_data.data_dataset(spec)
    schedule = record_schedule(common["steps"], common["eval_every"])
    steps = np.tile(schedule, (len(icl_data.seeds(spec)), 1))
    _, init_keys = run_keys(spec, setup)
    data_keys = icl_data.data_keys(data, setup.coords, icl_data.seeds(spec))
    optimizer = make_optimizer(setup.model, common["optimizer"], common["steps"])
    batch = common["batch_size"]

    def init_fn(run):
        return setup.make(jax.random.wrap_key_data(run["init_key"]))

    def loss_fn(model, run, key):
        del run  # every run's randomness is in its key
        t = setup.tasks(key, batch)
        return query_loss(predict(model, t.tokens, setup.scalar_out), t.y[:, -1])

    def observe_fn(model, run):
        del run
        return param_records(model)

    res = train.train_ensemble(
        init_fn, loss_fn, observe_fn, {"key": data_keys, "init_key": init_keys}, steps,
        optimizer_fn=lambda run: optimizer, chunk_steps=common["chunk_steps"], logger=log,
    )
    log.info("training done (%.0f steps/s); evaluating %d snapshots", res.steps_per_second, steps.size)
    tasks = icl_data.eval_tasks(data, setup.coords, variant)
    x, y = th.as_float64(tasks)
    if setup.kind == "sine":
        preds = th.sine_predictions(x, y, setup.coords["sine_draw"])
        refs = {f"{k}_loss": float(np.mean(0.5 * (y[:, -1, 0] - v) ** 2)) for k, v in preds.items()}
        targets = {"": (preds["gd_affine"][:, None], None)}
        ref = None
    else:
        ref = th.linear_reference(common, setup.d, setup.n_context, variant, tasks)
        targets = gd_targets(setup, ref, x, y, common["eta_search"])
        k = setup.blocks
        refs = {
            "gd_loss": float(gd.loss_from_grams(ref.grams_eval, ref.etas(k, search=common["eta_search"]), setup.n_context, setup.d_y)),
            "gd_loss_ps": float(gd.loss_from_grams(ref.grams_eval, ref.etas(k, per_step=True), setup.n_context, setup.d_y)),
            "zero_loss": float(ref.zero_loss_eval),
        }
    metrics = evaluate_snapshots(setup, res.records, tasks, targets)
    metrics["train_loss"] = res.records["loss"]
    ds = to_dataset(spec, setup, schedule, metrics, refs, res, ref)
    ds.attrs["wall_seconds"] = float(time.perf_counter() - t0)
    return ds


def snapshot_dataset(setup: Setup, records: dict[str, np.ndarray], ref: th.LinearReference, common: dict) -> dict:
    """Raw GD-SSM snapshots (W_q, D, Lambda, C) and their gauge-fixed alignment (25)."""
    m = common["model"]
    wq, lam, log_step, C, D = (records[f".{f}"] for f in ("wq", "lam", "log_step", "C", "D"))
    lbar = np.exp(lam * np.exp(log_step)[..., None])  # (14), as `model.decay`
    lbar = np.minimum(lbar, 1.0) if m["clip_decay"] else lbar
    etas = ref.etas(setup.blocks, search=common["eta_search"])
    star = GDSSM.constructed(etas, setup.n_context, setup.d, c_norm=m["c_norm"], pred_sign=m["pred_sign"])
    n_norm = setup.n_context if m["c_norm"] == "N" else setup.d
    align = gauge_alignment(wq, C, D, lbar, np.asarray(star.C, dtype=float), n_norm=n_norm, pred_sign=m["pred_sign"])
    out = {
        "W_q": (("seed", "step", "sublayer", "wa", "wb"), wq),
        "D": (("seed", "step", "tok"), D),
        "Lambda": (("seed", "step", "sublayer", "row", "col"), lbar),
        "C": (("seed", "step", "sublayer", "row", "col"), C),
        "align_d": (("seed", "step"), align.pop("align_d")),
    }
    out.update({k: (("seed", "step", "sublayer"), v) for k, v in align.items()})
    return out


def to_dataset(spec, setup: Setup, schedule, metrics, refs, res, ref) -> xr.Dataset:
    """The shard's labelled store: run dims of length 1, then seed, step and parameter dims."""
    common = spec["common"]
    run_dims = KIND_AXES[setup.kind]
    lead = (1,) * len(run_dims)
    data = {name: (run_dims + ("seed", "step"), v.reshape(lead + v.shape)) for name, v in metrics.items()}
    data.update({name: (run_dims, np.full(lead, v)) for name, v in refs.items()})
    data["diverged_at"] = (run_dims + ("seed",), res.diverged_at.reshape(lead + res.diverged_at.shape))
    weights = models.run_bytes(res.final_params)  # each seed's trained model (ssmflow.models)
    data[models.MODEL_VAR] = (run_dims + ("seed", models.MODEL_DIM), weights.reshape(lead + weights.shape))
    if setup.kind == "gdssm":
        for name, (dims, v) in snapshot_dataset(setup, res.records, ref, common).items():
            data[name] = (run_dims + dims, v.reshape(lead + v.shape))
    coords = {a: np.array([setup.coords[a]], dtype=object if a in CATEGORICAL else None) for a in run_dims}
    coords.update(seed=np.asarray(icl_data.seeds(spec)), step=schedule)
    if setup.kind == "gdssm":
        coords.update(sublayer=np.arange(2 * setup.blocks - 1), row=np.arange(setup.d), col=np.arange(setup.d),
                      wa=np.arange(3), wb=np.arange(3), tok=np.arange(3))
    ds = xr.Dataset(data, coords=coords)
    settings = spec["settings"]
    ds.attrs = store.provenance(
        digest(spec), common["precision"], study="icl", experiment=spec["experiment"], shard=spec["shard"],
        kind=settings["kind"], variant=settings["variant"], eval_seed=common["eval_seed"], ref_seed=common["ref_seed"],
        device=jax.devices()[0].device_kind, icl=common, steps_per_second=float(res.steps_per_second), n_steps=int(res.n_steps),
    )
    return ds
