"""Is a store still what its config asks for? A check that does not need Snakemake's metadata.

Snakemake reruns a job whose `params` (here: the job spec) changed only while it has the
job's record in `.snakemake/metadata`. Without it (results copied to a new clone, a shared
disk, a cleaned `.snakemake/`), a changed seed count or learning rate would rerun nothing,
although every store records the spec it ran (`JOB_SPEC_ATTR`, written by `ssmflow.cli`).

So each root job (data, train, study store) takes a small *guard file* as an input,
`results/.stale/<store path>`, kept by `guard` whenever the workflow is planned:
- the store is missing, or it records the spec the job would run now: the guard has mtime
  0 (never newer than anything, so it triggers nothing);
- the store records another spec: the guard is rewritten now with the two specs' digests,
  so it is newer than the store and differs from its last content, and Snakemake's mtime
  trigger reruns the job, with or without metadata. Its dependents follow by mtime.
A store from before this attr existed (no `JOB_SPEC_ATTR`) cannot be judged and is left
alone. Planning (a dry run too) creates the missing guards, empty, so that a job's inputs
are the same whether or not its store exists yet. This module is light (no JAX, no xarray): Snakemake imports it at every start.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: the attr of a data, shard or study store holding the job spec it ran, as sorted JSON
JOB_SPEC_ATTR = "job_spec"

#: where the guard files live, mirroring the stores' paths below it
GUARD_ROOT = Path("results/.stale")


def spec_json(spec: dict) -> str:
    """The canonical JSON of a job spec (what `JOB_SPEC_ATTR` holds)."""
    return json.dumps(spec, sort_keys=True)


def recorded_spec(store: str | os.PathLike) -> dict | None:
    """The job spec a Zarr store records, read from its root `zarr.json` (no Zarr import);
    None if the store is missing, unreadable or records none."""
    try:
        attrs = json.loads((Path(store) / "zarr.json").read_text()).get("attributes", {})
        return json.loads(attrs[JOB_SPEC_ATTR])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _short(spec: dict) -> str:
    return hashlib.sha256(spec_json(spec).encode()).hexdigest()[:12]


def guard(store: str, spec: str | dict, root: str | os.PathLike = GUARD_ROOT) -> str:
    """The guard file of `store` for the job spec `spec` (module docstring), brought up to
    date; returns its path (relative paths stay relative: an input of the job)."""
    want = json.loads(spec if isinstance(spec, str) else spec_json(spec))  # as a store records it
    path = Path(root) / store
    have = recorded_spec(store)
    if have is not None and have != want:
        text = f"stale: {store} records job spec {_short(have)}, the config now gives {_short(want)}\n"
        if not path.exists() or path.read_text() != text or path.stat().st_mtime <= Path(store).stat().st_mtime:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.utime(path)  # now: newer than the store
    else:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        if path.stat().st_mtime != 0:
            os.utime(path, (0, 0))
    return str(path)
