"""X5: zero-shot sampling-rate change of trained tones models (spec 9, X5; acceptance S4; figure F9).

An evaluation-only stage: it reads the experiment's saved trained models (`ssmflow.models`,
written by its gather job) and its data store, and trains nothing. Each model is evaluated
on the test set at the training rate (r = 1) and on the half-rate test set (the same
continuous signals sampled every other step, L/2 samples) with every step size Delta
multiplied by r (eq. 18, `ssm.layers.at_rate`): a continuous-time model reads the coarser
sampling without retraining. For ZOH the rate-2 kernel is exactly the sum of adjacent taps
of the rate-1 kernel; for bilinear, eq. 18 is the same change of Delta, not an identity.

Layout (spec 11: `test_loss`, `test_metric` with a `rate` dim): dims (the experiment's run
dims), seed, rate = [1, r].
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import xarray as xr

from ssmflow import models, store
from ssmflow.config import digest

log = logging.getLogger("ssmflow.s4d")


def rate_dataset(data: xr.Dataset, trained: Path, *, settings: dict) -> xr.Dataset:
    """The X5 store of one tones experiment: every saved run at r = 1 and at `settings["rate"]`.

    **Arguments:** `data`: the experiment's data store (test and half-rate test sets);
    `trained`: its models folder; `settings`: the experiment's `rate_change` block.
    """
    import equinox as eqx
    import jax

    from ssmflow.ssm.layers import at_rate
    from ssmflow.studies.s4d import RUN_DIMS
    from ssmflow.studies.s4d import data as s4d_data
    from ssmflow.studies.s4d.job import evaluate_snapshots
    from ssmflow.studies.s4d.tasks import task_info

    rate = settings["rate"]
    runs = list(models.entries(trained))
    if not runs:
        raise ValueError(f"{trained} holds no trained models: nothing to evaluate at another rate.")
    spec0 = runs[0]["spec"]
    task = task_info(spec0["settings"])  # one task per experiment: every shard's settings are its settings
    splits = {1: s4d_data.task_data(data).test, rate: s4d_data.half_rate_test(data)}
    dims = [d for d in RUN_DIMS if d in runs[0]["coords"]] + ["seed"]
    values = {d: sorted({r["coords"][d] for r in runs}) for d in dims}  # labels or numbers, one kind per dim
    shape = tuple(len(values[d]) for d in dims) + (len(splits),)
    out = {"test_loss": np.full(shape, np.nan), "test_metric": np.full(shape, np.nan)}
    by_shard = defaultdict(list)
    for run in runs:
        by_shard[run["shard"]].append(run)
    for shard, entries in by_shard.items():
        loaded = [models.load_entry(trained, e) for e in entries]  # sets the precision they were trained in
        for j, (r, split) in enumerate(splits.items()):
            at = [m if r == 1 else at_rate(m, r) for m in loaded]
            params = [eqx.filter(m, eqx.is_array) for m in at]
            static = eqx.partition(at[0], eqx.is_array)[1]
            treedef = jax.tree.structure(params[0])
            leaves = [jax.numpy.stack(xs)[:, None] for xs in zip(*(jax.tree.leaves(p) for p in params), strict=True)]
            loss, metric = evaluate_snapshots(static, treedef, leaves, task, split)
            for k, e in enumerate(entries):
                pos = tuple(values[d].index(e["coords"][d]) for d in dims) + (j,)
                out["test_loss"][pos], out["test_metric"][pos] = loss[k, 0], metric[k, 0]
        log.info("evaluated the %d runs of %s at rates %s", len(entries), shard, list(splits))
    coords = {d: np.asarray(values[d], dtype=object if d != "seed" and isinstance(values[d][0], str) else None) for d in dims}
    coords["rate"] = np.asarray(list(splits), dtype=float)
    ds = xr.Dataset({k: ((*dims, "rate"), v) for k, v in out.items()}, coords=coords)
    ds.attrs = store.provenance(
        digest({"settings": settings, "specs": sorted({digest(r["spec"]) for r in runs})}), spec0["common"]["precision"],
        study="s4d", experiment=spec0["experiment"], task=task.name, metric=task.metric, length=task.length, rate_change=settings,
        source="saved trained models (ssmflow.models) on the test set and its half-rate copy, Delta x r (eq. 18)",
    )
    return ds
