"""E8: trained GD-SSMs under distribution shift, evaluated from their saved models (spec 11, E8; T20).

An evaluation-only stage: it reads the experiment's trained models (`ssmflow.models`,
written by its gather job) and its theory store, and trains nothing. Each shift changes
one task parameter of section 2 by a factor `scale` against training:

- `input`: x ~ U(-scale r/2, scale r/2) (the spec's alpha, with r the training range);
- `weight`: W ~ scale s N(0, I).

On a fixed set of `eval_tasks` shifted tasks per (shift, scale) (key from the shift alone,
the same for every seed) it stores the trained model's loss (3), the loss of K-step GD at
the *training* eta*_K (the step the model was trained to implement: `gd_loss`), and of GD
with eta re-tuned to the shifted tasks (`gd_loss_retuned`, at `eta_retuned`, the exact
minimiser of the shifted eval-set loss polynomial, as the theory stage's `eta_star_eval`).
T20: loss / gd_loss in [0.85, 1.15] for input scales in [0.5, 1.2].

Layout (spec 12, `ood.zarr`): dims (run dims), seed, shift, scale; a scale that a shift's
list does not hold is NaN for that shift.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ssmflow import models, store
from ssmflow.config import digest

log = logging.getLogger("ssmflow.icl")

SHIFTS = ("input", "weight")


def shifted_tasks(common: dict, d: int, n: int, variant: str, shift: str, scale: float, dtype):
    """The fixed eval tasks of one (shift, scale): `eval_tasks` linear tasks whose input range
    or weight scale is `scale` times the training one (key: the shift's own coordinates)."""
    import jax

    from ssmflow import train
    from ssmflow.studies.icl.tasks import linear_tasks

    r, s = common["input_range"], common["weight_scale"]
    r, s = (r * scale, s) if shift == "input" else (r, s * scale)
    coords = {"task": variant, "d": d, "n_context": n, "shift": shift, "scale": float(scale), "seed": common["eval_seed"]}
    key = jax.random.key(train.run_seed("icl-ood", coords))
    return linear_tasks(key, common["eval_tasks"], d, n, variant=variant, input_range=r, weight_scale=s, dtype=dtype)


def gd_losses(x: np.ndarray, y: np.ndarray, n: int, blocks: int, d_y: int, eta_train: float) -> tuple[float, float, float]:
    """(loss at the training eta*, loss at the re-tuned eta, that eta) of K-step shared-eta GD
    on tasks (x, y) (float64), exactly, through their mean Gram matrix."""
    from ssmflow.studies.icl import gd

    gram = gd.task_grams(x, y, blocks).mean(axis=0)
    poly = gd.eval_risk_polynomial(gram, n, blocks, d_y)
    eta = gd.polynomial_argmin(poly)
    at = np.polynomial.polynomial.polyval
    return float(at(eta_train, poly)), float(at(eta, poly)), eta


def ood_dataset(theory: xr.Dataset, trained: Path, *, settings: dict) -> xr.Dataset:
    """The E8 store of one gdssm experiment: every saved run under every configured shift.

    **Arguments:** `theory`: the experiment's theory store (eta*_K); `trained`: its models
    folder; `settings`: the experiment's `ood` block, {"input": [scales], "weight": [scales]}.
    """
    import equinox as eqx
    import jax.numpy as jnp

    from ssmflow.studies.icl import theory as th
    from ssmflow.studies.icl.job import predict, shard_setup
    from ssmflow.studies.icl.tasks import query_loss

    runs = list(models.entries(trained))
    if not runs:
        raise ValueError(f"{trained} holds no trained models: nothing to evaluate under shift.")
    scales = sorted({float(v) for shift in SHIFTS for v in settings.get(shift, [])})
    spec0 = runs[0]["spec"]
    kind = spec0["settings"]["kind"]
    if kind != "gdssm":
        raise ValueError(f"icl.experiments.{spec0['experiment']}.ood: got an experiment of kind {kind!r}; allowed: kind 'gdssm'.")
    run_dims = ("d", "n_context", "blocks")
    values = {dim: sorted({r["coords"][dim] for r in runs}) for dim in (*run_dims, "seed")}
    shape = tuple(len(values[d]) for d in (*run_dims, "seed")) + (len(SHIFTS), len(scales))
    loss = np.full(shape, np.nan)
    ref_shape = shape[:3] + shape[4:]
    gd_loss, gd_retuned, eta_retuned, zero = (np.full(ref_shape, np.nan) for _ in range(4))
    eta_train = np.full(shape[:3], np.nan)
    loss_fn = eqx.filter_jit(lambda m, tokens, y_q, scalar: query_loss(predict(m, tokens, scalar), y_q))
    task_sets = {}  # (run-dim position, shift, scale) -> the shifted tasks, shared by the seeds
    for run in runs:
        spec, c = run["spec"], run["coords"]
        model = models.load_entry(trained, run)  # sets the precision the model was trained in
        setup = shard_setup(spec)
        common, variant = spec["common"], spec["settings"]["variant"]
        at = tuple(values[dim].index(c[dim]) for dim in run_dims)
        ks = values["seed"].index(c["seed"])
        eta_k = theory.eta_star_grid if common["eta_search"] == "grid" else theory.eta_star
        eta = float(eta_k.sel(d=c["d"], n_context=c["n_context"], gd_steps=c["blocks"]))
        eta_train[at] = eta
        for i, shift in enumerate(SHIFTS):
            for scale in settings.get(shift, []):
                j = scales.index(float(scale))
                if (at, i, j) not in task_sets:  # the tasks and the GD references, once for every seed
                    tasks = task_sets[(at, i, j)] = shifted_tasks(common, setup.d, setup.n_context, variant, shift, scale,
                                                                  jnp.result_type(float))
                    x, y = th.as_float64(tasks)
                    gd_loss[at + (i, j)], gd_retuned[at + (i, j)], eta_retuned[at + (i, j)] = gd_losses(
                        x, y, setup.n_context, setup.blocks, setup.d_y, eta)
                    zero[at + (i, j)] = float(np.mean(0.5 * np.sum(y[:, -1] ** 2, axis=-1)))
                tasks = task_sets[(at, i, j)]
                loss[at + (ks, i, j)] = float(loss_fn(model, tasks.tokens, tasks.y[:, -1], setup.scalar_out))
        log.info("evaluated %s under %d shifts", run["file"], sum(len(settings.get(s, [])) for s in SHIFTS))
    ref_dims = (*run_dims, "shift", "scale")
    coords = {dim: np.asarray(values[dim]) for dim in (*run_dims, "seed")}
    coords.update(shift=np.asarray(SHIFTS, dtype=object), scale=np.asarray(scales))
    ds = xr.Dataset(
        {
            "loss": ((*run_dims, "seed", "shift", "scale"), loss),
            "gd_loss": (ref_dims, gd_loss),
            "gd_loss_retuned": (ref_dims, gd_retuned),
            "eta_retuned": (ref_dims, eta_retuned),
            "zero_loss": (ref_dims, zero),
            "eta_train": (run_dims, eta_train),
        },
        coords=coords,
    )
    ds.attrs = store.provenance(
        digest({"settings": settings, "specs": sorted({digest(r["spec"]) for r in runs})}), spec0["common"]["precision"],
        study="icl", experiment=spec0["experiment"], shifts=settings,
        source="saved trained models (ssmflow.models) on shifted eval tasks; K-step GD at the training and re-tuned eta, exact",
    )
    return ds
