"""The training engine shared by every study.

One compiled program per shard: `jax.lax.scan` over the steps of a chunk, the whole
ensemble of runs `eqx.filter_vmap`ed through it, and a thin Python loop over chunks
that only logs progress. Each run carries its own PRNG key (derived from its
coordinates by `run_key`), its own learning rate and its own recording schedule, so a
run gives the same numbers whatever else is in its shard.

A study supplies four pure functions:

- `init_fn(run) -> params`: the trainable pytree of one run;
- `loss_fn(params, run, key) -> scalar`: the training loss (key = fold_in(run key, step));
- `observe_fn(params, run) -> dict[str, array]`: what to store at each recording point;
- `event_fn(params, run) -> dict[str, bool]` (optional): thresholds whose first
  crossing step is detected online (for example p >= p*/2).

and `optimizer_fn(run) -> optax.GradientTransformation` (default: plain GD with
`run["lam"]`). The engine records divergence (non-finite loss, at any step and in the
state after a run's last update) as data (`diverged_at`), freezes the diverged run, lets
its neighbours go on and says in the log how many runs diverged.

**Preemption-safe checkpoints.** With a checkpoint path (the `checkpoint=` argument,
or an enclosing `with checkpointing(path, every_s):` as `ssmflow train` sets up), the
engine saves the whole carry after a chunk whenever `every_s` seconds have passed
since the last save, on SIGTERM (what SLURM sends before preempting or timing out a
job), and at the end. A restarted job resumes from a checkpoint whose digest matches
(inputs, schedule, chunking, shapes, JAX version and backend, the sources of the ssmflow
modules in use) and skips the chunks already done; the chunks are the same compiled
program on the same carry, so the result is bit-identical to an uninterrupted run. A
checkpoint that does not match is ignored (and replaced). The caller deletes it with
`clear_checkpoints` once its results are stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmflow import codedeps

log = logging.getLogger("ssmflow.train")

NO_STEP = -1  # marks "never happened" in diverged_at / event steps

# Where this process's `train_ensemble` calls spent their time, summed over calls:
# `compile` (tracing, lowering and compiling each call's chunk program ahead of its first
# chunk, or loading it from the persistent cache), `train` (running every chunk of steps,
# the first included), `n_chunks` and `steps` (the chunks run and the ensemble steps they
# took); `ended` the clock (`time.perf_counter`) at the last call's return. `ssmflow train`
# prints them in its job profile (`cli.job_profile`).
ENGINE_SECONDS = {"compile": 0.0, "train": 0.0, "n_chunks": 0, "steps": 0, "ended": None}


@dataclass
class Probe:
    """What `probing` measured: one entry per `train_ensemble` call of the block, each with
    the call's `n_runs`, `n_total` steps, `chunk_steps` (the call's own), `probe_steps` (steps
    per probe chunk), `runs_timed` (the runs the timed chunks ran: all, or the first few of
    a `lax.map`ped ensemble, whose time is linear in its runs), `first_s` (the first chunk:
    compilation plus `probe_steps` steps), `steady_s` (the other chunks' seconds),
    `compile_s` and `program_mb` (the compiled chunk's buffers, where the probe's `program`
    measured them) and `extra_mb` (memory the job's chunk holds beyond the timed one's);
    and one entry in `evals` per evaluation loop (`evaluated`): its `n` items and the
    seconds of the first few of them (`times`)."""

    steps: int
    chunks: int
    steady_s: float
    calls: list[dict]
    mem_budget_mb: float | None = None
    program: Callable | None = None
    eval_items: int = 5
    evals: list[dict] = field(default_factory=list)
    eval_s: float = 1.0


@dataclass
class ProbeChunk:
    """What a probing method (`probing`'s `program`) gives the engine: the compiled `chunk`
    the probe times and its `steps`; the job's chunk's `compile_s` and `program_mb` (MB of
    buffers, or None); `first`, `(carry, seconds)` of a chunk already run as the probe's
    first chunk, or None; `least`, the chunks the probe runs at least (the first included);
    `runs`, None when the chunk runs the whole ensemble, else the first runs it runs
    (`take_runs`; a `lax.map`ped ensemble's step time is linear in its runs); `extra_mb`,
    memory the job's chunk holds beyond the timed one's; `overhead_s`, seconds the method
    spent on what the job does not do (compiling and running chunks it only measured)."""

    chunk: Callable
    steps: int
    compile_s: float
    program_mb: float | None = None
    first: tuple | None = None
    least: int = 3
    runs: Mapping[str, Any] | None = None
    extra_mb: float = 0.0
    overhead_s: float = 0.0

    @property
    def runs_timed(self) -> int | None:
        """How many runs the chunk runs, where it runs the first runs only."""
        return None if self.runs is None else int(self.runs["key"].shape[0])


def take_runs(tree, k: int):
    """The first `k` runs of a carry or runs pytree (every array leaf has the run axis first)."""
    return jax.tree.map(lambda a: a[:k] if eqx.is_array(a) else a, tree)


def put_runs(tree, first):
    """`tree` with its first runs replaced by `first` (`take_runs`' inverse)."""
    return jax.tree.map(lambda a, b: a.at[: b.shape[0]].set(b) if eqx.is_array(a) else a, tree, first)


def fixed_probe_program(probe: Probe, make_chunk: Callable, chunk_steps: int, carry, runs, batching: str) -> ProbeChunk:
    """The plain probing method: the chunk of `min(chunk_steps, probe.steps)` steps, compiled.

    A probing method (`probing`'s `program`; `ssmflow.plan.probe_program` is the planner's)
    gets `make_chunk(n)`, the engine's jitted chunk of n steps of this call's real program,
    the job's chunk steps, the initial carry and runs and the batching, and returns a
    `ProbeChunk`."""
    del batching
    n = min(chunk_steps, probe.steps)
    t0 = time.perf_counter()
    chunk = make_chunk(n).lower(carry, runs).compile()
    return ProbeChunk(chunk, n, time.perf_counter() - t0)


def evaluated(items) -> Iterator:
    """The items of a job's evaluation loop (snapshots, chunks of a test set, runs): every
    one in a job; inside `probing`, only the first few, each timed (the loop's body must
    block on its results): the first (it compiles), then more until those add up to the
    probe's `eval_s` seconds or `eval_items` items in all. The plan predicts the loop from
    them (`Probe.evals`): the first item, and the median of the others for each item not
    run. The loop's items must cost alike; the outputs of the items not run stay as the
    job initialised them."""
    items = list(items)
    probe = _PROBES[-1] if _PROBES else None
    if probe is None:
        yield from items
        return
    times: list[float] = []
    try:
        for item in items:
            t0 = time.perf_counter()
            yield item
            times.append(time.perf_counter() - t0)
            if len(times) >= probe.eval_items or (len(times) >= 2 and sum(times[1:]) >= probe.eval_s):
                break
    finally:
        probe.evals.append({"n": len(items), "times": times})


_PROBES: list[Probe] = []


@contextlib.contextmanager
def probing(steps: int = 10, chunks: int = 3, steady_s: float = 0.0, mem_budget_mb: float | None = None,
            program: Callable | None = None, eval_items: int = 5, eval_s: float = 1.0) -> Iterator[Probe]:
    """Measure, not train: inside the block every `train_ensemble` call compiles its real
    per-step program (the same model, loss, optimizer, runs and batching) in short chunks
    (`program`, a probing method: by default `fixed_probe_program`, chunks of at most
    `steps` steps), runs the first and then more (at least the method's `least`), until
    those add up to `steady_s` seconds or `chunks` chunks in all, and returns what it has
    (the runs' later records NaN, as if not recorded), without checkpoints.
    `ssmflow.plan` predicts a job's time from it: compilation, then every chunk at the
    steady chunks' time per step. `mem_budget_mb` is for the method to honour. Evaluation
    loops (`evaluated`) run their first items only: at least two, at most `eval_items`,
    until the items after the first add up to `eval_s` seconds.
    """
    if steps < 1 or chunks < 3 or eval_items < 2:
        raise ValueError(f"probing needs steps >= 1 (got {steps}), chunks >= 3 (got {chunks}) and eval_items >= 2 "
                         f"(got {eval_items}): the first chunk or item compiles, the others are timed.")
    probe = Probe(int(steps), int(chunks), float(steady_s), [], mem_budget_mb, program or fixed_probe_program,
                  int(eval_items), eval_s=float(eval_s))
    _PROBES.append(probe)
    try:
        yield probe
    finally:
        _PROBES.remove(probe)


def set_precision(precision: str) -> None:
    """Set JAX's default float width: `"float64"` or `"float32"`."""
    if precision not in ("float32", "float64"):
        raise ValueError(f"`precision` (={precision!r}) must be 'float32' or 'float64'.")
    jax.config.update("jax_enable_x64", precision == "float64")


def run_seed(study: str, coords: Mapping[str, Any]) -> int:
    """A 32-bit seed derived from a run's coordinates only (never its batch position).

    Floats are written with `repr` so 1e-4 and 0.0001 give the same seed.
    """
    canon = {k: (repr(float(v)) if isinstance(v, float | np.floating) else str(v)) for k, v in coords.items()}
    text = json.dumps({"study": study, "coords": canon}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def run_key(study: str, coords: Mapping[str, Any]) -> jax.Array:
    """The PRNG key of one run, from `run_seed`."""
    return jax.random.key_data(jax.random.key(run_seed(study, coords)))


def log_spaced_times(t_min: float, t_max: float, n_points: int) -> np.ndarray:
    """The nominal recording grid: t = 0 plus `n_points` log-spaced times in [t_min, t_max]."""
    if not 0 < t_min < t_max:
        raise ValueError(f"recording times need 0 < t_min (={t_min}) < t_max (={t_max}).")
    return np.concatenate([[0.0], np.geomspace(t_min, t_max, n_points)])


def record_steps(times: np.ndarray, lam: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """Per-run step indices k_j = round(t_j / lam) of a nominal time grid.

    Times past a run's own `t_end` get `NO_STEP` (not recorded).

    **Arguments:** `times` (step,), `lam` and `t_end` (run,).
    **Returns:** int64 array (run, step).
    **Raises:** `ValueError` if a run's `lam` is not finite and positive or its `t_end` is
    NaN (it would have no step to train, silently).
    """
    bad = ~(np.isfinite(lam) & (lam > 0)) | np.isnan(t_end)
    if bad.any():
        runs = np.flatnonzero(bad)
        raise ValueError(f"`lam` must be finite and > 0 and `t_end` not NaN; runs {runs.tolist()} have "
                         f"lam={lam[runs].tolist()}, t_end={t_end[runs].tolist()}.")
    ks = np.rint(times[None, :] / lam[:, None]).astype(np.int64)
    return np.where(times[None, :] <= t_end[:, None], ks, NO_STEP)


@dataclass
class TrainResult:
    """What the engine returns, all NumPy with a leading run axis.

    `records[name]` has shape (run, record, ...) where records follow the columns of
    the `steps` array given to `train_ensemble` (NaN where not recorded);
    `diverged_at` (run,) is the first step with a non-finite loss, counting the loss of
    the final state as step last + 1, or NO_STEP;
    `events[name]` (run,) is the first step at which that event held, or NO_STEP;
    `final_params` is the trained pytree (leading run axis); `steps_per_second` is the
    measured throughput of the compiled loop (model steps of the whole ensemble);
    `resumed_at` is the step a checkpoint resumed from (0 for a fresh start) and
    `chunks_run` the number of chunks this call computed.
    """

    records: dict[str, np.ndarray]
    diverged_at: np.ndarray
    events: dict[str, np.ndarray]
    final_params: Any
    steps_per_second: float
    n_steps: int
    resumed_at: int = 0
    chunks_run: int = 0


def _unique_schedule(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the sorted unique recorded steps (padded with a never-hit sentinel) and,
    for each requested column, its index in that unique list (-1 if not recorded)."""
    n_runs, _ = steps.shape
    uniq = [np.unique(row[row >= 0]) for row in steps]
    width = max(1, max(len(u) for u in uniq))
    sentinel = np.iinfo(np.int64).max
    table = np.full((n_runs, width), sentinel, dtype=np.int64)
    where = np.full(steps.shape, -1, dtype=np.int64)
    for r, u in enumerate(uniq):
        table[r, : len(u)] = u
        ok = steps[r] >= 0
        where[r, ok] = np.searchsorted(u, steps[r, ok])
    return table, where


#: what `batching="auto"` runs on each JAX backend (BENCHMARKS.md, "Batching per backend"):
#: on the CPU the runs one after another (lax.map): at paper scale a vmapped s4d shard holds
#: every run's activations at once (14 GB of buffers against 2 GB) for no gain in time per
#: run, and each run is bit-identical alone or in company; on an accelerator vmap, whose
#: parallelism the ensemble is for.
AUTO_BATCHING = {"cpu": "map"}
AUTO_BATCHING_ACCELERATOR = "vmap"


def resolve_batching(batching: str) -> str:
    """`"map"` or `"vmap"`: the batching itself, or what `"auto"` means on this backend."""
    if batching == "auto":
        return AUTO_BATCHING.get(jax.default_backend(), AUTO_BATCHING_ACCELERATOR)
    if batching not in ("map", "vmap"):
        raise ValueError(f"`batching` (={batching!r}) must be 'map', 'vmap' or 'auto'.")
    return batching


def spec_batching(spec: Mapping[str, Any]) -> str:
    """The batching a shard spec's job runs on this backend (its `common.batching`, default map)."""
    return resolve_batching(spec["common"].get("batching", "map"))


def make_chunk_fn(init_fn, loss_fn, observe_fn, event_fn, optimizer_fn, chunk_steps, batching="map"):
    """Build the jitted, vmapped function that advances every run by `chunk_steps` steps."""

    def one_run_chunk(carry, run):
        params, static = eqx.partition(carry["model"], eqx.is_array)
        optimizer = optimizer_fn(run)

        def step(c, _):
            model = eqx.combine(c["params"], static)
            k = c["k"]
            key = jax.random.fold_in(jax.random.wrap_key_data(run["key"]), k)
            loss, grads = eqx.filter_value_and_grad(loss_fn)(model, run, key)
            finite = jnp.isfinite(loss)
            live = (k <= run["last_step"]) & (c["diverged_at"] == NO_STEP)
            # recording: the state *before* the update at step k
            ptr = c["ptr"]
            hit = live & (run["schedule"][jnp.minimum(ptr, run["schedule"].shape[0] - 1)] == k)
            obs = dict(observe_fn(model, run), loss=loss)
            buf = {
                name: jax.lax.dynamic_update_index_in_dim(
                    c["buf"][name],
                    jnp.where(hit, obs[name], jax.lax.dynamic_index_in_dim(c["buf"][name], ptr, keepdims=False)),
                    ptr,
                    0,
                )
                for name in c["buf"]
            }
            ptr = jnp.where(hit, jnp.minimum(ptr + 1, run["schedule"].shape[0] - 1), ptr)
            # events: first step at which each holds
            events = c["events"]
            if event_fn is not None:
                flags = event_fn(model, run)
                events = {
                    n: jnp.where((events[n] == NO_STEP) & live & flags[n], k, events[n]) for n in events
                }
            diverged_at = jnp.where(live & ~finite, k, c["diverged_at"])
            # update, frozen when finished or diverged
            updates, opt_state = optimizer.update(grads, c["opt_state"], eqx.filter(model, eqx.is_array))
            new_params = eqx.apply_updates(c["params"], updates)
            go = live & finite
            new_params = jax.tree.map(lambda n, o: jnp.where(go, n, o), new_params, c["params"])
            opt_state = jax.tree.map(lambda n, o: jnp.where(go, n, o), opt_state, c["opt_state"])
            last_loss = jnp.where(live, loss, c["last_loss"])
            out = dict(
                params=new_params,
                opt_state=opt_state,
                k=k + 1,
                ptr=ptr,
                buf=buf,
                events=events,
                diverged_at=diverged_at,
                last_loss=last_loss,
            )
            return out, None

        c0 = {k: v for k, v in carry.items() if k != "model"}
        c0["params"] = params
        c1, _ = jax.lax.scan(step, c0, None, length=chunk_steps)
        model = eqx.combine(c1.pop("params"), static)
        c1["model"] = model
        # no step evaluates the state after a run's last update: once the run is done, its
        # final loss (step last_step + 1) is checked here, so an update that blows the
        # state up with no step left (a huge rate, a one-step schedule) counts as divergence
        k_final = run["last_step"] + 1
        key = jax.random.fold_in(jax.random.wrap_key_data(run["key"]), k_final)
        blew_up = (c1["k"] >= k_final) & (c1["diverged_at"] == NO_STEP) & ~jnp.isfinite(loss_fn(model, run, key))
        c1["diverged_at"] = jnp.where(blew_up, k_final, c1["diverged_at"])
        return c1

    if batching == "vmap":
        return eqx.filter_jit(eqx.filter_vmap(one_run_chunk))
    return eqx.filter_jit(_map_over_runs(one_run_chunk))


def _map_over_runs(fn):
    """`fn(carry, run)` mapped over the leading run axis with `lax.map`.

    Each run executes the very same single-run program, so its numbers do not depend
    on how many runs share the shard (a vmapped reduction may round differently).
    """

    def mapped(carry, runs):
        dyn, static = eqx.partition(carry, eqx.is_array)

        def one(xs):
            out = fn(eqx.combine(xs[0], static), xs[1])
            return eqx.partition(out, eqx.is_array)[0]

        return eqx.combine(jax.lax.map(one, (dyn, runs)), static)

    return mapped


def model_skeleton(make, *args) -> tuple[Any, Any]:
    """(arrays, static) of the model `make(*args)` would build, without building it.

    `arrays` is the model's array leaves as `jax.ShapeDtypeStruct`s (their tree structure
    and key paths are those of `eqx.filter(model, eqx.is_array)`), `static` the rest, as
    `eqx.partition(model, eqx.is_array)` splits a built model. `make` is only traced
    (`eqx.filter_eval_shape`): a job that needs a template for the structure of its
    snapshots does not run, and compile op by op, a random initialization for it.
    """
    shaped = eqx.filter_eval_shape(make, *args)
    return eqx.partition(shaped, lambda x: isinstance(x, jax.ShapeDtypeStruct))


def init_carry(init_fn, observe_fn, event_fn, optimizer_fn, runs, width):
    """The per-run loop state before step 0 (vmapped over runs)."""

    def one(run):
        model = init_fn(run)
        opt_state = optimizer_fn(run).init(eqx.filter(model, eqx.is_array))
        obs = jax.eval_shape(lambda m: dict(observe_fn(m, run), loss=jnp.zeros(())), model)
        buf = {n: jnp.full((width, *s.shape), jnp.nan, s.dtype) for n, s in obs.items()}
        events = {}
        if event_fn is not None:
            events = {n: jnp.asarray(NO_STEP, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32) for n in jax.eval_shape(lambda m: event_fn(m, run), model)}
        int_t = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
        return dict(
            model=model,
            opt_state=opt_state,
            k=jnp.asarray(0, int_t),
            ptr=jnp.asarray(0, int_t),
            buf=buf,
            events=events,
            diverged_at=jnp.asarray(NO_STEP, int_t),
            last_loss=jnp.asarray(jnp.nan, jnp.result_type(float)),
        )

    return eqx.filter_jit(eqx.filter_vmap(one))(runs)


# ----------------------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "ssmflow-checkpoint-1"
DEFAULT_CHECKPOINT_EVERY_S = 300.0


@dataclass
class _CheckpointContext:
    path: Path
    every_s: float
    key: str
    calls: int = 0


_ACTIVE: list[_CheckpointContext] = []


@contextlib.contextmanager
def checkpointing(path: str | os.PathLike, every_s: float = DEFAULT_CHECKPOINT_EVERY_S, key: Any = "") -> Iterator[Path]:
    """Checkpoint every `train_ensemble` call inside the block (unless it passes its own).

    The first call uses `path`, a second call in the same block `path.1`, and so on, so a
    job that trains several ensembles resumes each one. `key` (e.g. the job spec's
    digest) goes into the checkpoint digest. Remove the files with
    `clear_checkpoints(path)` once the job's results are stored.
    """
    ctx = _CheckpointContext(Path(path), float(every_s), str(key))
    _ACTIVE.append(ctx)
    try:
        yield ctx.path
    finally:
        _ACTIVE.remove(ctx)


def clear_checkpoints(path: str | os.PathLike) -> None:
    """Delete the checkpoint at `path`, its `path.N` siblings and stale temporaries."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for f in path.parent.iterdir():
        rest = f.name[len(path.name):] if f.name.startswith(path.name) else None
        if rest == "" or (rest and (rest[1:].isdigit() or rest.startswith(".tmp-")) and rest[0] == "."):
            f.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only if empty


def _checkpoint_digest(key: str, runs: Mapping[str, Any], steps: np.ndarray, chunk_steps: int, batching: str, carry: Any) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the trajectory."""
    h = hashlib.sha256()
    leaves = jax.tree.leaves(eqx.filter(carry, eqx.is_array))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "key": key,
        "chunk_steps": int(chunk_steps),
        "batching": batching,
        "jax": jax.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "backend": jax.default_backend(),
        # every ssmflow module imported so far (the engine, the study being trained, the
        # shared SSM code): a checkpoint never outlives a change of the code that produced
        # it, while edits to another study leave it valid
        "sources": codedeps.loaded_source_digest(),
        "carry": [(tuple(x.shape), str(x.dtype)) for x in leaves],
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    for path, leaf in jax.tree_util.tree_flatten_with_path(runs)[0]:  # every input of every run
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}:{a.dtype}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(np.ascontiguousarray(steps).tobytes())
    return h.hexdigest()[:32]


def save_checkpoint(path: str | os.PathLike, carry: Any, *, digest: str, done: int, n_total: int) -> None:
    """Write `carry` atomically: a one-line JSON header, then the leaves (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    header = {"format": CHECKPOINT_FORMAT, "digest": digest, "done": int(done), "n_total": int(n_total), "saved": time.time()}
    try:
        with open(tmp, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            eqx.tree_serialise_leaves(f, carry)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full disk: name the checkpoint (a write error has no filename)
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"writing checkpoint failed: {err.strerror}", str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, like: Any, digest: str) -> tuple[Any, int] | None:
    """`(carry, done)` from a checkpoint at `path` whose digest matches, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
            if header.get("format") != CHECKPOINT_FORMAT or header.get("digest") != digest:
                return None
            carry = eqx.tree_deserialise_leaves(f, like)
        return carry, int(header["done"])
    except (OSError, ValueError, KeyError, RuntimeError) as err:  # truncated or foreign file
        log.warning("ignoring unreadable checkpoint %s: %s", path, err)
        return None


@contextlib.contextmanager
def _sigterm_flag(enabled: bool) -> Iterator[list[bool]]:
    """While training with checkpoints, SIGTERM sets a flag (checked between chunks)."""
    flag = [False]
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, old)


def default_optimizer(run) -> optax.GradientTransformation:
    """Plain full-batch gradient descent with the run's own learning rate `run["lam"]`."""
    return optax.sgd(run["lam"])


def train_ensemble(
    init_fn: Callable,
    loss_fn: Callable,
    observe_fn: Callable,
    runs: Mapping[str, Any],
    steps: np.ndarray,
    *,
    event_fn: Callable | None = None,
    optimizer_fn: Callable = default_optimizer,
    chunk_steps: int = 2000,
    log_every_s: float = 5.0,
    logger: logging.Logger | None = None,
    batching: str = "map",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every_s: float | None = None,
) -> TrainResult:
    """Train an ensemble of runs with one compiled `lax.scan` per chunk of steps.

    **Arguments:**
    - `runs`: dict of arrays with a leading run axis; must hold `key` (from `run_key`)
      and, for the default optimizer, `lam`. Everything a run needs (its data too)
      goes here, so vmapping over it trains the whole shard at once.
    - `steps`: int array (run, record) of the steps to record at (`record_steps`);
      NO_STEP where not recorded. Each run stops after its last recorded step.
    - `chunk_steps`: steps per compiled scan; progress is logged between chunks.
    - `batching`: "map" (default) runs the ensemble through `lax.map` inside the one
      compiled program, so every run is bit-identical to the same run trained alone;
      "vmap" vectorizes across runs (faster for wide per-step work, but XLA may round
      batched reductions differently in the last bit); "auto" is `resolve_batching`'s
      choice for the backend (`AUTO_BATCHING`).
    - `checkpoint`: path of a checkpoint file (default: the enclosing `checkpointing`
      block's, else none). Saved after a chunk once `checkpoint_every_s` seconds
      (default: the block's, else 300) have passed since the last save, on SIGTERM, and
      at the end; resumed from when its digest matches. 0 saves after every chunk.

    **Returns:** a `TrainResult`.
    """
    logger = logger or log
    steps = np.asarray(steps, dtype=np.int64)
    schedule, where = _unique_schedule(steps)
    last_step = np.where((steps >= 0).any(axis=1), steps.max(axis=1), NO_STEP)
    int_t = jnp.int64 if jax.config.jax_enable_x64 else jnp.int32
    sentinel = np.iinfo(np.int32).max if int_t == jnp.int32 else np.iinfo(np.int64).max
    schedule = np.minimum(schedule, sentinel)
    runs = dict(runs, schedule=jnp.asarray(schedule, int_t), last_step=jnp.asarray(last_step, int_t))
    n_total = int(last_step.max()) + 1 if (last_step >= 0).any() else 0
    n_runs = steps.shape[0]
    probe = _PROBES[-1] if _PROBES else None
    own_chunk_steps = int(chunk_steps)
    if probe is not None:
        checkpoint = None

    carry = init_carry(init_fn, observe_fn, event_fn, optimizer_fn, runs, schedule.shape[1])
    batching = resolve_batching(batching)

    def make_chunk(n):
        return make_chunk_fn(init_fn, loss_fn, observe_fn, event_fn, optimizer_fn, n, batching)

    chunk = None if probe is not None else make_chunk(chunk_steps)  # a probe's method builds its own

    ckpt_key = ""
    if checkpoint is None and _ACTIVE and probe is None:
        ctx = _ACTIVE[-1]
        checkpoint = ctx.path if ctx.calls == 0 else ctx.path.with_name(f"{ctx.path.name}.{ctx.calls}")
        ctx.calls += 1
        ckpt_key = ctx.key
        if checkpoint_every_s is None:
            checkpoint_every_s = ctx.every_s
    every_s = DEFAULT_CHECKPOINT_EVERY_S if checkpoint_every_s is None else float(checkpoint_every_s)
    done = resumed_at = 0
    if checkpoint is not None:
        ckpt_digest = _checkpoint_digest(ckpt_key, runs, steps, chunk_steps, batching, carry)
        loaded = load_checkpoint(checkpoint, carry, ckpt_digest)
        if loaded is not None:
            carry, done = loaded
            resumed_at = done
            logger.info("resumed at step %d/%d from checkpoint %s", done, n_total, checkpoint)
        elif Path(checkpoint).exists():
            logger.info("ignoring checkpoint %s: it belongs to another job, code or setup", checkpoint)

    def save(reason: str) -> None:
        t = time.perf_counter()
        # `done` counts whole chunks and overshoots the last one; the header keeps the real step
        save_checkpoint(checkpoint, carry, digest=ckpt_digest, done=min(done, n_total), n_total=n_total)
        logger.info("checkpoint at step %d/%d (%s, %.2f s): %s", min(done, n_total), n_total, reason, time.perf_counter() - t, checkpoint)

    compile_s = 0.0
    if probe is None and done < n_total:  # compiled ahead of the first chunk, so the chunks time only steps
        t0 = time.perf_counter()
        chunk = chunk.lower(carry, runs).compile()
        compile_s = time.perf_counter() - t0
    t_start, t_log, compute_s, first_s, chunks_run = time.perf_counter(), -np.inf, 0.0, 0.0, 0
    t_saved = t_start
    run_s = 0.0  # every chunk's seconds, the first included
    least = 3  # chunks a probe runs at least: the first, then two steady ones
    timed, loop_runs = None, runs
    if probe is not None:
        timed = probe.program(probe, make_chunk, own_chunk_steps, carry, runs, batching)
        chunk, chunk_steps, compile_s, least = timed.chunk, timed.steps, timed.compile_s, timed.least
        if timed.runs is not None:  # the probe times the first runs of the ensemble: the others stay as initialised
            full_carry, loop_runs = carry, timed.runs
            if timed.first is None:
                carry = take_runs(carry, timed.runs_timed)
        if timed.first is not None:  # a slow step: its short chunk has run, and it is the probe's first chunk
            carry, first_s, chunks_run, done = timed.first[0], compile_s + timed.first[1], 1, chunk_steps
            run_s = timed.first[1]
    steady: list[float] = []
    with _sigterm_flag(checkpoint is not None) as terminated:
        while done < n_total and (probe is None or chunks_run < least
                                  or (chunks_run < probe.chunks and sum(steady) < probe.steady_s)):
            t0 = time.perf_counter()
            carry = chunk(carry, loop_runs)
            jax.block_until_ready(carry["k"])
            dt = time.perf_counter() - t0
            run_s += dt
            if chunks_run > 0:  # the first chunk (in a probe, it compiles) is not a steady one
                compute_s += dt
                steady.append(dt)
            else:
                first_s = dt + compile_s
            chunks_run += 1
            done += chunk_steps
            now = time.perf_counter()
            if terminated[0]:  # SLURM preempts or times out the job: save, then exit as killed
                save("SIGTERM")
                raise SystemExit(128 + signal.SIGTERM)
            if checkpoint is not None and done < n_total and now - t_saved >= every_s:
                save(f"every {every_s:g} s")
                t_saved = time.perf_counter()
            if now - t_log >= log_every_s or done >= n_total:
                t_log = now
                losses = np.asarray(carry["last_loss"])
                logger.info(
                    "step %d/%d  loss median %.6g  min %.6g  diverged %d/%d  %.0f steps/s  (%.1f s)",
                    min(done, n_total), n_total, np.nanmedian(losses) if np.isfinite(losses).any() else np.nan,
                    np.nanmin(losses) if np.isfinite(losses).any() else np.nan,
                    int((np.asarray(carry["diverged_at"]) >= 0).sum()), n_runs,
                    chunk_steps / dt, now - t_start,
                )
    if timed is not None and timed.runs is not None:
        carry = put_runs(full_carry, carry)
    if checkpoint is not None and chunks_run > 0 and time.perf_counter() - t_start >= every_s:
        save("finished")  # a job killed before its results are stored need not train again
    logger.info("ran %d chunks of %d steps in this process (resumed at step %d)", chunks_run, chunk_steps, resumed_at)
    diverged_at = np.asarray(carry["diverged_at"])
    if (diverged_at >= 0).any():
        logger.warning("%d/%d runs diverged (non-finite loss), first at steps %s; each is frozen there and stored "
                       "with its `diverged_at` step", int((diverged_at >= 0).sum()), n_runs, sorted(set(diverged_at[diverged_at >= 0].tolist())))
    if probe is not None:
        probe.calls.append({"n_runs": int(n_runs), "n_total": int(n_total), "chunk_steps": own_chunk_steps,
                            "probe_steps": int(chunk_steps), "runs_timed": int(timed.runs_timed or n_runs),
                            "first_s": first_s, "steady_s": steady, "compile_s": compile_s,
                            "program_mb": timed.program_mb, "extra_mb": timed.extra_mb,
                            "overhead_s": timed.overhead_s})
    steady_chunks = max(chunks_run - 1, 0)
    ENGINE_SECONDS["compile"] += compile_s
    ENGINE_SECONDS["train"] += run_s
    ENGINE_SECONDS["n_chunks"] += chunks_run
    ENGINE_SECONDS["steps"] += chunks_run * chunk_steps
    timed_steps = steady_chunks * chunk_steps
    sps = timed_steps / compute_s if compute_s > 0 else float("nan")

    records = {}
    rows = np.arange(n_runs)[:, None]
    for name, buf in carry["buf"].items():
        buf = np.asarray(buf)
        out = buf[rows, np.maximum(where, 0)]
        mask = (where < 0).reshape(where.shape + (1,) * (buf.ndim - 2))
        records[name] = np.where(mask, np.nan, out)
    ENGINE_SECONDS["ended"] = time.perf_counter()
    return TrainResult(
        records=records,
        diverged_at=diverged_at,
        events={n: np.asarray(v) for n, v in carry["events"].items()},
        final_params=carry["model"],
        steps_per_second=sps,
        n_steps=n_total,
        resumed_at=resumed_at,
        chunks_run=chunks_run,
    )
