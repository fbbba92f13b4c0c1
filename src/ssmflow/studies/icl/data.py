"""The icl data stage: the synthesized data of one experiment, as one labelled Dataset.

Training tasks are drawn fresh at every step (spec section 9): batch t of a run is
`linear_tasks` (or `sine_tasks`) from `fold_in(data_key, t)`, so no training set exists
to store. The store holds what defines them and what is fixed:

- `data_key` (run dims..., seed, key_word): each run's data key (the generator's
  parameter), derived from the run's own coordinates (`job.run_keys`), so the rows of a
  seed depend on that seed alone and adding seeds leaves existing rows unchanged;
- the fixed eval task sets (spec 2.1: `eval_tasks` tasks per task configuration, from
  `eval_seed`, independent of the model and the training seed): per (d, n_context) for
  the linear kinds, per (sine_draw, n_context) for sine, float32 as trained.
  Linear: `x_context` (d, n_context, task, context, x_dim), `y_context`
  (..., context, y_dim), `x_query`, `y_query` and the teacher `W` (..., task, y_dim, x_dim).
  Sine: `x_context`, `y_context` (sine_draw, n_context, task, context), `x_query`,
  `y_query`, `amplitude` and `phase` (..., task). Ragged dims (context < max n_context,
  x_dim/y_dim < max d) are NaN-padded.

The attrs say how fresh samples are drawn (`fresh_samples`) and with which parameters.
`eval_tasks` and `data_keys` read a shard's part back (what `job.train_shard` uses).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow import store, train
from ssmflow.config import digest
from ssmflow.studies.icl import CATEGORICAL, KIND_AXES
from ssmflow.studies.icl import theory as th
from ssmflow.studies.icl.tasks import Tasks, interleave

#: dims each chunk of the data store holds whole; x_dim/y_dim too where a chunk stays under the cap
WHOLE_DIMS = ("task", "context", "seed", "key_word")
OPTIONAL_WHOLE = ("x_dim", "y_dim")


def seeds(spec: dict) -> list[int]:
    """The seeds of a spec's runs (`grid.seed_values`: a subset when the others are reused)."""
    from ssmflow import grid

    return grid.seed_values(spec)


def task_dims(kind: str) -> tuple[str, ...]:
    """The run dims the eval sets depend on (the task configuration, not the model)."""
    return ("sine_draw", "n_context") if kind == "sine" else ("d", "n_context")


def _coord(name: str, values) -> np.ndarray:
    return np.array(list(values), dtype=object if name in CATEGORICAL else None)


def _pad(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full(shape, np.nan, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _eval_arrays(spec: dict) -> tuple[dict, dict]:
    """Every eval set of the experiment on the grid of its task dims: (variables, coords)."""
    common, settings, axes = spec["common"], spec["settings"], spec["axes"]
    kind, variant = settings["kind"], settings["variant"]
    dims = task_dims(kind)
    n_task, n_max = common["eval_tasks"], max(axes["n_context"])
    grid = [list(axes[d]) for d in dims]
    lead = tuple(len(g) for g in grid)
    if kind == "sine":
        shapes = {"x_context": (n_task, n_max), "y_context": (n_task, n_max), "x_query": (n_task,), "y_query": (n_task,),
                  "amplitude": (n_task,), "phase": (n_task,)}
        inner = {"x_context": ("task", "context"), "y_context": ("task", "context"), "x_query": ("task",), "y_query": ("task",),
                 "amplitude": ("task",), "phase": ("task",)}
    else:
        d_max = max(axes["d"])
        dy_max = d_max if variant == "vector" else 1
        shapes = {"x_context": (n_task, n_max, d_max), "y_context": (n_task, n_max, dy_max), "x_query": (n_task, d_max),
                  "y_query": (n_task, dy_max), "W": (n_task, dy_max, d_max)}
        inner = {"x_context": ("task", "context", "x_dim"), "y_context": ("task", "context", "y_dim"),
                 "x_query": ("task", "x_dim"), "y_query": ("task", "y_dim"), "W": ("task", "y_dim", "x_dim")}
    arrays = {k: np.full(lead + v, np.nan, np.float32) for k, v in shapes.items()}
    for idx in itertools.product(*(range(n) for n in lead)):
        c = dict(zip(dims, (g[i] for g, i in zip(grid, idx, strict=True)), strict=True))
        n = int(c["n_context"])
        if kind == "sine":
            t = th.eval_set(common, n_context=n, sine_draw=c["sine_draw"])
            x, y, w = (np.asarray(a) for a in (t.x, t.y, t.w))
            parts = {"x_context": x[:, :n, 0], "y_context": y[:, :n, 0], "x_query": x[:, n, 0], "y_query": y[:, n, 0],
                     "amplitude": w[:, 0], "phase": w[:, 1]}
        else:
            t = th.eval_set(common, d=int(c["d"]), n_context=n, variant=variant)
            x, y, w = (np.asarray(a) for a in (t.x, t.y, t.w))
            parts = {"x_context": x[:, :n], "y_context": y[:, :n], "x_query": x[:, n], "y_query": y[:, n], "W": w}
        for k, a in parts.items():
            arrays[k][idx] = _pad(a, shapes[k])
    variables = {k: (dims + inner[k], v) for k, v in arrays.items()}
    coords = {d: _coord(d, g) for d, g in zip(dims, grid, strict=True)}
    coords.update(task=np.arange(n_task), context=np.arange(n_max))
    if kind != "sine":
        coords.update(x_dim=np.arange(shapes["x_query"][-1]), y_dim=np.arange(shapes["y_query"][-1]))
    return variables, coords


def run_keys(kind: str, variant: str, coords: dict, seed_values) -> tuple[np.ndarray, np.ndarray]:
    """(data keys, init keys) (seed, key_word) of the runs at `coords` (one value per run dim of `kind`).

    A run's key comes from its own coordinates (kind, variant, run dims, seed), never from
    its position in a batch; it splits into the init key and the data key.
    """
    data, init = [], []
    for seed in seed_values:
        run = {**coords, "kind": kind, "variant": variant, "seed": seed}
        k_init, k_data = jax.random.split(jax.random.wrap_key_data(train.run_key("icl", run)))
        data.append(np.asarray(jax.random.key_data(k_data)))
        init.append(np.asarray(jax.random.key_data(k_init)))
    return np.stack(data), np.stack(init)


def _key_array(spec: dict) -> tuple[tuple[str, ...], np.ndarray, dict]:
    """data_key over (run dims..., seed, key_word) for every run of the experiment."""
    kind, variant = spec["settings"]["kind"], spec["settings"]["variant"]
    run_dims = KIND_AXES[kind]
    grid = [list(spec["axes"][d]) for d in run_dims]
    keys = None
    for idx in itertools.product(*(range(len(g)) for g in grid)):
        point = {d: g[i] for d, g, i in zip(run_dims, grid, idx, strict=True)}
        data, _ = run_keys(kind, variant, point, seeds(spec))
        if keys is None:
            keys = np.zeros(tuple(len(g) for g in grid) + data.shape, data.dtype)
        keys[idx] = data
    coords = {d: _coord(d, g) for d, g in zip(run_dims, grid, strict=True)}
    return run_dims + ("seed", "key_word"), keys, coords


def _fresh_samples(spec: dict) -> str:
    common, settings = spec["common"], spec["settings"]
    r, s, b = common["input_range"], common["weight_scale"], common["batch_size"]
    if settings["kind"] == "sine":
        return (f"Training tasks are drawn fresh at every step, not stored: batch t of a run is "
                f"tasks.sine_tasks(fold_in(data_key, t), {b}, n_context, draw=sine_draw, input_range={r}) in the "
                f"training precision: x ~ U(-{r / 2}, {r / 2}), y = a sin(x + phi) with a ~ U(0.1, 0.5), phi ~ U(0, pi) "
                "(independent) or a = 0.1 + 0.4 u, phi = pi u (shared). data_key is each run's key, from its coordinates "
                "and seed (ssmflow.train.run_key).")
    return (f"Training tasks are drawn fresh at every step, not stored: batch t of a run is "
            f"tasks.linear_tasks(fold_in(data_key, t), {b}, d, n_context, variant={settings['variant']!r}, "
            f"input_range={r}, weight_scale={s}) in the training precision: x ~ U(-{r / 2}, {r / 2})^d, "
            f"W ~ N(0, {s}^2), y = W x, no label noise. data_key is each run's key, from its coordinates and seed "
            "(ssmflow.train.run_key).")


def data_dataset(spec: dict) -> xr.Dataset:
    """The experiment's data store (module docstring) from its experiment spec (or a shard's)."""
    common, settings = spec["common"], spec["settings"]
    kind = settings["kind"]
    variables, coords = _eval_arrays(spec)
    key_dims, keys, key_coords = _key_array(spec)
    variables["data_key"] = (key_dims, keys)
    coords.update(key_coords)
    coords.update(seed=np.asarray(seeds(spec)), key_word=np.arange(keys.shape[-1]))
    ds = xr.Dataset(variables, coords=coords)
    describe = {
        "x_context": "eval-set context inputs x_1..x_N (NaN beyond n_context / d)",
        "y_context": "eval-set context targets y_1..y_N",
        "x_query": "eval-set query input x_q",
        "y_query": "eval-set query target y_q",
        "W": "eval-set teacher weights (y = W x)",
        "amplitude": "eval-set sine amplitude a",
        "phase": "eval-set sine phase phi",
        "data_key": "each run's data key (jax.random.key_data, uint32): batch t is drawn from fold_in(data_key, t)",
    }
    for name, text in describe.items():
        if name in ds:
            ds[name].attrs["description"] = text
    ds.attrs.update(store.provenance(digest(spec), common["precision"], study="icl", experiment=spec["experiment"]))
    ds.attrs.update(
        kind=kind, variant=settings["variant"],
        contents=("Fixed eval task sets (float32, one per task configuration "
                  f"{list(task_dims(kind))}, drawn from eval_seed, shared by every model and seed) and each run's data key."),
        fresh_samples=_fresh_samples(spec),
        generator={"batch_size": common["batch_size"], "input_range": common["input_range"],
                   "weight_scale": common["weight_scale"], "variant": settings["variant"], "kind": kind},
        eval_sets=(f"{common['eval_tasks']} tasks per configuration from theory.eval_set: key "
                   f"train.run_seed('icl-eval', task configuration + eval_seed={common['eval_seed']}); tokens (2) are "
                   "interleave(x_1, ytil_1, ..., x_N, ytil_N, x_q) (scalar-y: ytil = y e_d)."),
        eval_seed=common["eval_seed"], eval_tasks=common["eval_tasks"],
    )
    ds.attrs["whole_dims"] = whole_dims(ds)
    return ds


def whole_dims(ds: xr.Dataset) -> list[str]:
    """The store's chunk layout: WHOLE_DIMS, plus those of OPTIONAL_WHOLE that fit the chunk cap."""
    return store.fitting_whole_dims(ds, WHOLE_DIMS, OPTIONAL_WHOLE)


# ----------------------------------------------------------------------- reading a shard's part

def data_keys(data: xr.Dataset, coords: dict, seed_values) -> jnp.ndarray:
    """The data keys (seed, key_word) of the runs at `coords` (one value per run dim)."""
    sel = {d: v for d, v in coords.items() if d in data.data_key.dims}
    return jnp.asarray(data.data_key.sel(sel).sel(seed=list(seed_values)).transpose("seed", "key_word").values)


def eval_tasks(data: xr.Dataset, coords: dict, variant: str) -> Tasks:
    """The fixed eval set of one task configuration, as `theory.eval_set` draws it (bit for bit)."""
    kind = "sine" if "sine_draw" in coords else "linear"
    sel = {d: coords[d] for d in task_dims(kind)}
    part = data[["x_context", "y_context", "x_query", "y_query", "amplitude", "phase"] if kind == "sine"
                else ["x_context", "y_context", "x_query", "y_query", "W"]].sel(sel).load()
    n = int(coords["n_context"])
    if kind == "sine":
        x = np.concatenate([part.x_context.values[:, :n], part.x_query.values[:, None]], axis=1)[..., None]
        y = np.concatenate([part.y_context.values[:, :n], part.y_query.values[:, None]], axis=1)[..., None]
        x, y = jnp.asarray(x), jnp.asarray(y)
        return Tasks(interleave(x, y), x, y, jnp.asarray(np.stack([part.amplitude.values, part.phase.values], axis=1)))
    d = int(coords["d"])
    d_y = d if variant == "vector" else 1
    x = np.concatenate([part.x_context.values[:, :n, :d], part.x_query.values[:, None, :d]], axis=1)
    y = np.concatenate([part.y_context.values[:, :n, :d_y], part.y_query.values[:, None, :d_y]], axis=1)
    x, y, w = jnp.asarray(x), jnp.asarray(y), jnp.asarray(part.W.values[:, :d_y, :d])
    ytil = y if variant == "vector" else jnp.zeros_like(x).at[..., -1].set(y[..., 0])
    return Tasks(interleave(x, ytil), x, y, w)
