"""Reusing trained runs: raising `seeds` trains only the new seeds.

A run is addressable: its PRNG keys come from its own coordinates (`train.run_key`), and
its data rows from its own seed. So when a shard's spec changes only in its seed count,
the runs it already trained are still exact. After every training job the spine keeps a
hard-linked copy of the shard store (no extra disk) in

    results/.runs/<study>/<experiment>/<shard>/<base>.zarr

where `<base>` digests everything a run's numbers depend on except the seed set: the
shard spec without `common.seeds`, the sources of the training code (the static import
closure of the study's train and data modules), the JAX version and the backend. A later
job of the same shard and base trains only the seeds missing there (`spec["train_seeds"]`,
read by `grid.seed_values`) and concatenates them with the stored ones along `seed`; a
job with fewer seeds just selects. Anything else (another learning rate, an edited
training module, another JAX) gives another base, and everything trains again.

Bit for bit: with `batching: map` (lax.map over runs) a run's numbers do not depend on
what else is in its batch, so the combined store equals a from-scratch run's
(`tests/test_reuse.py`, `tests/test_workflow.py`). With `batching: vmap` (s4d and freqbias
by default) XLA rounds a batched op differently for another batch size, as it does between
any two vmapped shards of different sizes: on a small s4d delay shard, seeds 0-1 reused and
seed 2 trained alone differ from a from-scratch 3-seed shard by at most 1.2e-7 (float32,
2026-12-02). The shard's `reused_seeds_batching` attr records which case a store is.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from ssmflow import codedeps, grid, store
from ssmflow.config import digest

log = logging.getLogger("ssmflow.reuse")

ARCHIVE = Path("results/.runs")


def base_digest(spec: dict, code_modules: tuple[str, ...]) -> str:
    """The digest of everything a run depends on except the seed set."""
    import jax

    base = copy.deepcopy(spec)
    base["common"].pop("seeds", None)
    base.pop("train_seeds", None)
    return digest({
        "spec": base,
        "code": codedeps.source_digest(*code_modules),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    })


def archive_path(spec: dict, base: str, root: Path = ARCHIVE) -> Path:
    return Path(root) / spec["study"] / spec["experiment"] / spec["shard"] / f"{base}.zarr"


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link every file of the store `src` into a new tree at `dst` (a copy where links fail)."""
    tmp = dst.with_name(dst.name + store.TMP_MARK + "link")
    shutil.rmtree(tmp, ignore_errors=True)
    for root, _, files in os.walk(src):
        out = tmp / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(root) / name, out / name)
            except OSError:
                shutil.copy2(Path(root) / name, out / name)
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)


def train_reusing(spec: dict, train: Callable[[dict], xr.Dataset], code_modules: tuple[str, ...],
                  root: Path = ARCHIVE) -> xr.Dataset:
    """Train the shard of `spec` with `train(spec)`, reusing the stored runs of its seeds.

    **Arguments:** `spec`: the shard spec; `train`: the study's training function of a spec
    (it trains `grid.seed_values(spec)`); `code_modules`: the modules whose sources the
    runs depend on; `root`: the archive folder.
    **Returns:** the shard Dataset over every seed of the spec, attrs as a from-scratch job's
    (its `config_digest`), plus `reused_seeds`.
    """
    wanted = grid.seed_values(spec)
    base = base_digest(spec, code_modules)
    path = archive_path(spec, base, root)
    have: list[int] = []
    old = None
    if path.exists():
        try:
            old = store.open_store(path).load()
            have = [int(s) for s in old.seed.values if int(s) in wanted]
        except (OSError, ValueError, KeyError) as err:  # an unreadable archive is ignored
            log.warning("ignoring unreadable run archive %s: %s", path, err)
            old = None
    missing = [s for s in wanted if s not in have]
    if not have:
        ds = train(spec)
    elif not missing:
        log.info("every seed %s of %s is stored in %s: nothing to train", wanted, spec["shard"], path)
        ds = old.sel(seed=wanted)
    else:
        log.info("reusing seeds %s from %s; training seeds %s", have, path, missing)
        new = train({**spec, "train_seeds": missing})
        ds = xr.concat([old.sel(seed=have), new], dim="seed", data_vars="minimal", coords="minimal",
                       compat="override", join="override", combine_attrs="override")
        ds = ds.isel(seed=np.argsort(ds.seed.values, kind="stable"))
        ds.attrs = dict(new.attrs)
        from ssmflow.train import spec_batching  # the job has imported JAX already

        ds.attrs["reused_seeds_batching"] = spec_batching(spec)
    ds.attrs["config_digest"] = digest({k: v for k, v in spec.items() if k != "train_seeds"})
    ds.attrs["reused_seeds"] = have
    return ds


def keep(spec: dict, out: str | os.PathLike, code_modules: tuple[str, ...], root: Path = ARCHIVE) -> Path:
    """After a job wrote its shard store `out`: make it the archive of its base, and drop the
    shard's archives of other bases (a changed setting or code), so the archive holds one
    store per shard, hard links to its current store while that exists."""
    path = archive_path(spec, base_digest(spec, code_modules), root)
    path.parent.mkdir(parents=True, exist_ok=True)
    link_tree(Path(out), path)
    for other in path.parent.iterdir():
        if other != path:
            shutil.rmtree(other, ignore_errors=True)
    return path
