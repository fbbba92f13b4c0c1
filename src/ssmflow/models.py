"""Trained models as artifacts: each run's final parameters, saved and rebuilt.

A training job stores every run's final model in its shard store, as the bytes of
`eqx.tree_serialise_leaves` of that run's model: variable `saved_model` (dims: the shard's run
dims, `seed`, then `saved_model_byte`, uint8). They travel with the store, so a job that reuses
seeds (`ssmflow.reuse`), a resumed job and an atomic write keep them without more code.
The gather job of an experiment then writes them out as files, one per run:

    results/<study>/<exp>/models/index.json
    results/<study>/<exp>/models/<shard>/<run>.eqx     (<run>: e.g. seed=0 or init=legs_seed=2)

`index.json` lists every run: its file, shard, coordinates (run dims and seed) and the
shard's job spec, which holds every hyperparameter the model depends on. `load` rebuilds a
run's model from them: the study's train module declares `Study.model_template`, a
function of the shard spec that returns a pytree shaped like one run's model (its array
leaves may be `jax.ShapeDtypeStruct`s), and the file's leaves fill it in
(`eqx.tree_deserialise_leaves`). Evaluation-only stages (icl's OOD shifts, s4d's sampling-rate
change) read models this way instead of retraining.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ssmflow.store import MODEL_DIM  # noqa: F401  (one chunk per run's model: store.chunk_encoding)

MODEL_VAR = "saved_model"  # not "model": a run dim of icl's baselines
INDEX = "index.json"
FORMAT = "ssmflow-models-1"


def run_bytes(final_params: Any) -> np.ndarray:
    """(run, nbytes) uint8: each run's model of an ensemble (`TrainResult.final_params`,
    array leaves with a leading run axis) as `eqx.tree_serialise_leaves` writes it. Runs of one
    shard share their shapes, so every row has the same length."""
    import equinox as eqx
    import jax

    arrays, static = eqx.partition(final_params, eqx.is_array)
    leaves = jax.tree.leaves(arrays)
    n_runs = int(leaves[0].shape[0]) if leaves else 0
    host = jax.tree.map(np.asarray, arrays)
    rows = []
    for i in range(n_runs):
        buf = io.BytesIO()
        eqx.tree_serialise_leaves(buf, eqx.combine(jax.tree.map(lambda x: x[i], host), static))
        rows.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    if len({r.size for r in rows}) > 1:
        raise ValueError(f"the runs' serialised models differ in length ({sorted({r.size for r in rows})} bytes): not one shard")
    return np.stack(rows) if rows else np.zeros((0, 0), np.uint8)


def placed(weights: np.ndarray, positions: list[tuple[int, ...]], shape: tuple[int, ...]) -> np.ndarray:
    """(*shape, nbytes) uint8: row r of `weights` (`run_bytes`) at index `positions[r]` of a
    shard's grid (zeros where no run sits), for a job that lays its runs out on a grid."""
    out = np.zeros((*shape, weights.shape[1]), np.uint8)
    for row, pos in zip(weights, positions, strict=True):
        out[pos] = row
    return out


def _run_name(coords: dict[str, Any]) -> str:
    return "_".join(f"{k}={v}" for k, v in coords.items()).replace(os.sep, "-")


def export(shards: list, out: str | os.PathLike, study: str, experiment: str) -> Path:
    """Write the models of an experiment's shard Datasets (loaded, with `MODEL_VAR`) as one
    `.eqx` file per run and `index.json` into the folder `out`, atomically (a temporary
    sibling, then rename). Shards without models (an older store) are skipped with their
    name in the index's `missing`."""
    from ssmflow.freshness import JOB_SPEC_ATTR

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp-" + uuid.uuid4().hex[:8])
    runs, missing = [], []
    try:
        tmp.mkdir()
        for ds in shards:
            shard = str(ds.attrs.get("shard", ""))
            if MODEL_VAR not in ds:
                missing.append(shard)
                continue
            var = ds[MODEL_VAR]
            spec = json.loads(ds.attrs[JOB_SPEC_ATTR]) if JOB_SPEC_ATTR in ds.attrs else None
            dims = [d for d in var.dims if d != MODEL_DIM]
            (tmp / shard).mkdir(parents=True, exist_ok=True)
            for idx in np.ndindex(*(var.sizes[d] for d in dims)):
                coords = {d: _plain(var[d].values[i]) for d, i in zip(dims, idx, strict=True)}
                data = np.asarray(var.values[idx], dtype=np.uint8)
                if not data.any():  # a grid point the shard trains no run at (`placed`'s zeros)
                    continue
                rel = f"{shard}/{_run_name(coords)}.eqx"
                (tmp / rel).write_bytes(data.tobytes())
                runs.append({"file": rel, "shard": shard, "coords": coords, "spec": spec})
        index = {"format": FORMAT, "study": study, "experiment": experiment, "runs": runs, "missing": missing}
        (tmp / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _plain(v: Any) -> Any:
    """A coordinate value as JSON (NumPy scalars to Python)."""
    return v.item() if isinstance(v, np.generic) else v


def index(models: str | os.PathLike) -> dict:
    """The `index.json` of a models folder; a clear error if it is not one."""
    path = Path(models) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{models} is not a models folder (no {INDEX}); the experiment's gather job writes it.")
    idx = json.loads(path.read_text())
    if idx.get("format") != FORMAT:
        raise ValueError(f"{path}: format {idx.get('format')!r}; this ssmflow reads {FORMAT!r}.")
    return idx


def entries(models: str | os.PathLike, **coords: Any) -> Iterator[dict]:
    """The index entries whose coordinates match `coords` (all of them without)."""
    for run in index(models)["runs"]:
        if all(run["coords"].get(k) == v for k, v in coords.items()):
            yield run


def load_entry(models: str | os.PathLike, entry: dict) -> Any:
    """The trained model of one index entry, rebuilt from its spec by the study's
    `model_template` and filled with the file's leaves. Sets JAX's precision to the one the
    model was trained in (its spec's `common.precision`; a process-wide setting)."""
    import equinox as eqx

    from ssmflow import study as study_contract

    spec = entry["spec"]
    if spec is None:
        raise ValueError(f"{entry['file']}: its shard store recorded no job spec, so its model cannot be rebuilt.")
    if "precision" in spec.get("common", {}):  # rebuilt in the precision it was trained in (JAX's global setting)
        from ssmflow.train import set_precision

        set_precision(spec["common"]["precision"])
    decl = study_contract.get(spec["study"])
    if decl.model_template is None:
        raise ValueError(f"study {decl.name!r} declares no `model_template`: its models cannot be rebuilt.")
    like = getattr(decl.module(decl.train), decl.model_template)(spec)
    return eqx.tree_deserialise_leaves(Path(models) / entry["file"], like)


def load(models: str | os.PathLike, **coords: Any) -> Any:
    """The trained model of the one run matching `coords` (e.g. `d=10, n_context=10,
    blocks=1, seed=0`) in a models folder."""
    found = list(entries(models, **coords))
    if len(found) != 1:
        raise ValueError(f"{len(found)} runs of {models} match {coords}; give coordinates that name one run "
                         f"(e.g. {index(models)['runs'][0]['coords'] if index(models)['runs'] else {}}).")
    return load_entry(models, found[0])
