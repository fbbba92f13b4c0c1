"""Zarr/xarray I/O: atomic writes, provenance, chunking, gathering shards.

One writer per store. Every store is written into a temporary sibling directory and
renamed into place, so a killed job leaves either nothing or a complete store (stale
temporaries of a dead job are removed by the next write of the same target).

Every store carries consolidated metadata (the arrays' metadata in the root `zarr.json`),
so a reader never lists the store's folder: files that are not Zarr's there (Snakemake's
`.snakemake_timestamp` in each `directory()` output) stay out of the hierarchy it reads,
and `xr.open_zarr(path)` opens it without a warning.

Every chunk is written, also one that holds only the fill value (zarr skips those by
default), so a complete store holds every chunk its arrays' metadata declares, and
`open_store` refuses a store that lacks one: zarr would otherwise read a missing chunk
(a deleted or lost file) as the fill value, NaN for floats, and the loss would pass
silently into every later stage.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import ssmflow
from ssmflow.freshness import JOB_SPEC_ATTR

MAX_CHUNK_BYTES = 16 * 2**20
#: a run's serialised model (`ssmflow.models.MODEL_DIM`) is always one chunk
MODEL_DIM = "saved_model_byte"
TMP_MARK = ".tmp-"


class StoreError(OSError):
    """A store that cannot be read as ssmflow wrote it, or an output that cannot be written;
    the message names the path."""


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The git commit of the ssmflow source tree ('+dirty' if modified), or 'unknown'."""
    cwd = cwd or Path(ssmflow.__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=cwd, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(config_digest: str, precision: str, **extra: Any) -> dict[str, Any]:
    """Attrs every store carries: versions, git commit, a digest of the ssmflow sources that
    ran (`codedeps.loaded_source_digest`: it names the code also outside a git checkout,
    where `git_commit` is 'unknown'), config digest, precision, time."""
    from importlib.metadata import version

    import zarr

    from ssmflow import codedeps

    attrs = {
        "ssmflow_version": ssmflow.__version__,
        "git_commit": git_commit(),
        "source_digest": codedeps.loaded_source_digest(),
        "config_digest": config_digest,
        "jax_version": version("jax"),  # the installed version, without importing JAX into a job that needs none
        "zarr_version": zarr.__version__,
        "xarray_version": xr.__version__,
        "precision": precision,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }
    attrs.update({k: v for k, v in extra.items()})
    return attrs


def labels_as_object(ds: xr.Dataset) -> xr.Dataset:
    """String coords as object dtype: zarr 3 writes them as variable-length strings."""
    fix = {n: ds[n].astype(object) for n in ds.coords if ds[n].dtype.kind in "UTO"}
    return ds.assign_coords(fix) if fix else ds


def chunk_encoding(ds: xr.Dataset, whole: Sequence[str], split: bool = False) -> dict[str, dict]:
    """Chunks: the dims in `whole` (e.g. step, state, seed) in one chunk, others 1.

    Reading one run's trajectory then touches one small chunk, not the whole store.
    A chunk over MAX_CHUNK_BYTES raises, or with `split` is cut along its largest dims
    (halved until it fits; a paper-scale variable, e.g. icl's Lambda at d = 50, is stored
    in a few chunks along `step` instead of failing the job after its training).
    """
    enc = {}
    for name, var in ds.variables.items():
        if var.ndim == 0:
            continue
        chunks = [var.sizes[d] if (d in whole or d == MODEL_DIM or name in ds.dims) else 1 for d in var.dims]
        item = var.dtype.itemsize if var.dtype != object else 8
        nbytes = int(np.prod(chunks)) * item
        if nbytes > MAX_CHUNK_BYTES and not split:
            raise ValueError(f"chunk of {name!r} would be {nbytes / 2**20:.1f} MiB > 16 MiB; put fewer dims in `whole` ({whole}).")
        while int(np.prod(chunks)) * item > MAX_CHUNK_BYTES and max(chunks) > 1:
            i = int(np.argmax(chunks))
            chunks[i] = -(-chunks[i] // 2)
        enc[name] = {"chunks": tuple(chunks)}
    return enc


def fitting_whole_dims(ds: xr.Dataset, base: Sequence[str], optional: Sequence[str] = ()) -> list[str]:
    """The dims of `base` in `ds`, plus those of `optional` (in order) that keep every chunk
    under MAX_CHUNK_BYTES (`chunk_encoding`): a store's chunk layout that adapts to its size."""
    whole = [d for d in base if d in ds.dims]
    for extra in optional:
        if extra not in ds.dims:
            continue
        try:
            chunk_encoding(ds, whole + [extra])
        except ValueError:
            continue
        whole.append(extra)
    return whole


def _clean_stale(path: Path) -> None:
    for stale in path.parent.glob(path.name + TMP_MARK + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def check_writable(path: str | os.PathLike) -> None:
    """Raise StoreError, naming `path`, unless a store (or file) can be written at `path`.

    Makes the folder that holds `path` and a temporary sibling in it, as `write_atomic`
    does, and removes the sibling: a job checks where it will write before its work, not
    after it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # mkdir met a file where a folder of the path belongs
        raise StoreError(f"cannot write {path}: {err.filename} is a file, not a folder") from err
    except OSError as err:
        raise StoreError(f"cannot write {path}: cannot make the folder {err.filename} ({err.strerror or err})") from err
    try:
        os.rmdir(tempfile.mkdtemp(prefix=path.name + TMP_MARK + "probe", dir=path.parent))
    except OSError as err:
        raise StoreError(f"cannot write {path}: the folder {path.parent} is not writable ({err.strerror or err})") from err


def write_atomic(ds: xr.Dataset, path: str | os.PathLike, whole: Sequence[str] = ("step",)) -> Path:
    """Write `ds` as a Zarr v3 store at `path`: into a temporary sibling, then rename.

    An existing store at `path` is replaced only after the new one is complete. An OSError
    while writing (a full disk, a folder that cannot be written) is raised as a StoreError
    that names `path`; the temporary is removed.
    """
    path = Path(path)
    check_writable(path)
    _clean_stale(path)
    tmp = path.with_name(path.name + TMP_MARK + uuid.uuid4().hex[:8])
    ds = labels_as_object(ds)
    for name in ds.variables:
        ds[name].encoding = {}
    try:
        with warnings.catch_warnings():  # consolidated metadata is not in the v3 spec (yet): zarr says so
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning)
            ds.to_zarr(tmp, mode="w", consolidated=True, write_empty_chunks=True, encoding=chunk_encoding(ds, whole, split=True))
        if path.exists():
            old = path.with_name(path.name + TMP_MARK + "old" + uuid.uuid4().hex[:8])
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"writing store {path} failed: {err.strerror or err}") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def missing_chunks(path: str | os.PathLike) -> dict[str, list[str]]:
    """The chunk keys (e.g. 'p/c/1/0') that each array of the store at `path` declares, by its
    shape and chunk grid, but that are not files of the store; arrays that lack none are left out."""
    import zarr

    root = Path(path)
    missing = {}
    for name, array in zarr.open_group(root, mode="r").arrays():
        held = set()
        for folder, _, files in os.walk(root / name):
            rel = os.path.relpath(folder, root / name).replace(os.sep, "/")
            held.update(f if rel == "." else f"{rel}/{f}" for f in files)
        keys = (array.metadata.encode_chunk_key(c) for c in itertools.product(*map(range, array.cdata_shape)))
        lacking = [f"{name}/{k}" for k in keys if k not in held]
        if lacking:
            missing[name] = lacking
    return missing


def check_complete(path: str | os.PathLike) -> None:
    """Raise StoreError, naming the store and its arrays, if the store at `path` lacks a chunk."""
    missing = missing_chunks(path)
    if missing:
        arrays = "; ".join(f"{name!r} lacks {len(keys)} chunk(s), e.g. {keys[0]}" for name, keys in missing.items())
        raise StoreError(
            f"store {path} is incomplete: {arrays}. Zarr would read the lost chunks as fill values (NaN); "
            "delete the store and rerun the job that writes it."
        )


def open_store(path: str | os.PathLike, **kw) -> xr.Dataset:
    """Open a store written by ssmflow (lazily, labels as strings), after checking that it
    holds every chunk (`check_complete`). Its consolidated metadata lists its arrays, so
    zarr never lists the folder; a store written without it is read all the same (xarray's
    fallback warning silenced).

    The variables are xarray's lazily indexed arrays, not dask arrays (`chunks=None` unless
    the caller passes `chunks`): a selection reads only the chunks it touches, and `.load()`
    reads each array through zarr in one call instead of one dask task per chunk (a
    gathered trajectory store holds one chunk per run). dask is not a dependency: without
    it xarray never imports it either (BENCHMARKS.md, "Opening stores"). The values are the
    same bytes either way.
    """
    kw.setdefault("chunks", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = xr.open_zarr(path, **kw)
    check_complete(path)
    return ds


def gather(paths: Iterable[str | os.PathLike], pad_dims: Sequence[str] = (), parts: Sequence[xr.Dataset] | None = None) -> xr.Dataset:
    """Combine shard stores (each with length-1 coords on its shard dims) into one Dataset.

    Ragged dims in `pad_dims` (e.g. 'state') are NaN-padded to the largest shard, with
    integer coords 0..n-1. Attrs common to all shards are kept; the gathered store's
    `config_digest` is a digest of the shards' own digests (listed in `shard_digests`),
    `job_specs` lists the job spec (the config) each shard ran; shards whose `source_digest`
    differs are listed in `shard_source_digests`. `parts`: the shard stores at `paths`, already
    loaded. The runs' serialised models (`ssmflow.models.MODEL_VAR`) stay in the shards: the
    gather job writes them as files (`models.export`).
    """
    from ssmflow.config import digest
    from ssmflow.models import MODEL_VAR

    paths = [Path(p) for p in paths]
    parts = [open_store(p).load() for p in paths] if parts is None else list(parts)
    parts = [p.drop_vars(MODEL_VAR, errors="ignore") for p in parts]
    for dim in pad_dims:
        size = max((p.sizes.get(dim, 0) for p in parts), default=0)
        parts = [p.reindex({dim: np.arange(size)}) if dim in p.dims else p for p in parts]
    shard_digests = [str(p.attrs.get("config_digest", "")) for p in parts]
    combined = xr.combine_by_coords(parts, combine_attrs="drop_conflicts", data_vars="all", coords="different", join="outer", compat="no_conflicts")
    # per-job facts (time, throughput, which seeds the job reused: ssmflow.reuse) stay in the shards
    for key in ("created", "slurm_job_id", "steps_per_second", "wall_seconds", "n_steps", "reused_seeds", "reused_seeds_batching",
                JOB_SPEC_ATTR):
        combined.attrs.pop(key, None)
    combined.attrs.update(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        config_digest=digest(shard_digests),
        shard_digests=shard_digests,
        shards=[p.name for p in paths],
        slurm_job_ids=[str(p.attrs.get("slurm_job_id", "")) for p in parts],
        job_specs=[str(p.attrs.get(JOB_SPEC_ATTR, "")) for p in parts],  # the config each shard ran
    )
    sources = [str(p.attrs.get("source_digest", "")) for p in parts]
    if len(set(sources)) > 1:  # shards that loaded different code: drop_conflicts dropped it
        combined.attrs["shard_source_digests"] = sources
    return combined
