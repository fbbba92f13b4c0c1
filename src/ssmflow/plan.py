"""`ssmflow plan`: what a config's training jobs will cost, measured before any is submitted.

For every training shard of a config, the plan gives its runs and steps and a predicted
wall time and peak memory on this machine's backend. The prediction is measured, not
guessed from formulas: a *probe* (`ssmflow probe`, a child process like a real job, on the
threads the job would get) synthesizes the experiment's data, builds the shard's models,
compiles its real training program (`train.probing`: the same model, loss, optimizer,
runs and batching, with short chunks), times a few chunks, evaluates and writes the store
as the job does. From it:

    predicted = import + setup and evaluation + compilation + chunks x chunk steps x step time

where the step time is the median probe chunk over its steps (the ensemble's step, all
runs of the shard; a `lax.map`ped ensemble's slow step is timed on its first
`PROBE_MAP_RUNS` runs and scaled by its runs, since map runs one run after another), the
evaluation is the job's own loops, of which the probe runs the first few items (two or
more, about `PROBE_EVAL_S` seconds after the first, `train.evaluated`) and counts the rest
at their measured time, and peak memory is
the probe process's peak resident set (the records' buffers are allocated whole at the
start, so a short run reaches the job's peak) plus what the job's chunk holds beyond the
timed one's (XLA's memory analysis of both).
The data stage's own job is not in the training prediction (`data_s` is reported beside it).

One probe serves every shard of the same *program shape*: the shards of one experiment
whose specs differ only in the values of the study's `probe_shared` axes (code paths of
the same cost, e.g. s4d's discretization). Probes are cached under `results/.plan/`,
keyed by that shape, the sources of the study's training code, the JAX version and the
threads, so a plan is measured once and refreshed when the code or config changes. The
SLURM resources of each training job come from the cached probe when there is one
(`resources_for`, with `RUNTIME_SAFETY` and `MEM_SAFETY`), and from the fixed defaults
(`ssmflow.resources`) when not.

This module is light (no JAX): Snakemake reads the cached plan at every start.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from ssmflow import codedeps, grid
from ssmflow import resources as res
from ssmflow import study as study_contract
from ssmflow.config import ConfigError, digest

#: where the probes are cached: results/.plan/<study>/<experiment>/<shape digest>.json
PLAN_ROOT = Path("results/.plan")
#: steps per probe chunk (at most the job's own chunk)
PROBE_STEPS = 10
#: the probe times chunks after the first until they add up to this many seconds ...
PROBE_STEADY_S = 1.0
#: ... or this many chunks (at least 2 after the first)
PROBE_MAX_CHUNKS = 40
#: a training job's SLURM time limit is this times its predicted wall time (machines of
#: one kind differ by up to 2x; a retry doubles it again and resumes from the checkpoint)
RUNTIME_SAFETY = 2.0
#: ... and its memory this times the probe's peak, plus MEM_MARGIN_MB
MEM_SAFETY = 1.25
MEM_MARGIN_MB = 200
#: the shortest time limit a planned job asks for (minutes)
MIN_RUNTIME_MIN = 5
#: a probed step at least this slow (seconds, the whole ensemble) is timed in chunks of two
#: steps, and one steady chunk beyond the first is enough (`probe_program`)
PROBE_SLOW_STEP_S = 0.25
#: a faster step is timed in chunks of about this many seconds (at least PROBE_STEPS steps,
#: at most the job's own chunk), so that the per-chunk overhead weighs as little as in the job
PROBE_CHUNK_S = 0.2
#: a `lax.map`ped ensemble's slow step is timed on this many of its runs (`probe_program`)
PROBE_MAP_RUNS = 2
#: items of each evaluation loop a probe runs (`train.evaluated`): the first (it compiles),
#: then more until they add up to PROBE_EVAL_S seconds, at most PROBE_EVAL_ITEMS in all
PROBE_EVAL_ITEMS = 5
PROBE_EVAL_S = 1.0
#: exit status of `ssmflow probe` for a program over its memory budget (not run)
PROBE_TOO_BIG_EXIT = 3
#: MB of the host's available memory the planner keeps free beside its probes
PROBE_MEM_RESERVE_MB = 1024


def shape_spec(spec: dict) -> dict:
    """The part of a shard spec that fixes its training program's shape and cost: the spec
    without its name and with the study's `probe_shared` axes' values masked."""
    shared = study_contract.get(spec["study"]).probe_shared
    out = copy.deepcopy({k: v for k, v in spec.items() if k not in ("shard", "train_seeds")})
    for axis in shared:
        if axis in out["axes"]:
            out["axes"][axis] = "*"
    return out


@functools.cache
def _code_digest(study: str) -> str:
    decl = study_contract.get(study)
    return codedeps.source_digest(*(decl.module_name(p) for p in decl.training_parts))


@functools.cache
def _jax_version() -> str:
    try:
        return metadata.version("jax")
    except metadata.PackageNotFoundError:
        return "none"


@functools.cache
def _method_digest() -> str:
    """The probing method: `probe_program`'s source and the constants it and `run_probe` use."""
    import inspect

    return digest({"source": inspect.getsource(probe_program),
                   "constants": [PROBE_STEPS, PROBE_STEADY_S, PROBE_MAX_CHUNKS, PROBE_SLOW_STEP_S, PROBE_CHUNK_S,
                                 PROBE_MAP_RUNS, PROBE_EVAL_ITEMS, PROBE_EVAL_S]})


def probe_key(spec: dict, threads: int = 1) -> str:
    """The digest a probe of `spec` is cached under: its program shape, the study's
    training code, the probing method, the JAX version and the threads the job runs on."""
    return digest({"shape": shape_spec(spec), "code": _code_digest(spec["study"]), "jax": _jax_version(),
                   "threads": threads, "probe": _method_digest()})


def probe_path(spec: dict, threads: int = 1, root: str | os.PathLike = PLAN_ROOT) -> Path:
    return Path(root) / spec["study"] / spec["experiment"] / f"{probe_key(spec, threads)}.json"


def cached_probe(spec: dict, threads: int = 1, root: str | os.PathLike = PLAN_ROOT) -> dict | None:
    """The cached probe of `spec`'s program shape, or None (never probed, or probed with
    other code, config or JAX)."""
    path = probe_path(spec, threads, root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def predict(probe: Mapping) -> dict:
    """A job's predicted seconds and memory from one probe's measurements (`run_probe`).
    A probe whose program was too big to run here (`too_big`) predicts its memory (the
    compiled program's buffers with what the process held) and no times (None)."""
    if "too_big" in probe:
        return {"wall_s": None, "import_s": None, "setup_eval_s": None, "compile_s": None, "train_s": None,
                "steps": None, "step_s": None, "peak_mb": probe["too_big"]["needed_mb"]}
    compile_s = train_s = steps = run_steps = 0.0
    for call in probe["calls"]:
        steady = call["steady_s"]
        chunk_s = statistics.median(steady) if steady else call["first_s"]
        step_s = chunk_s / call["probe_steps"]
        if "runs_timed" in call:  # the first runs of a mapped ensemble: its step is theirs x runs / timed runs
            step_s *= call["n_runs"] / call["runs_timed"]
        n_chunks = math.ceil(call["n_total"] / call["chunk_steps"]) if call["n_total"] else 0
        train_s += n_chunks * call["chunk_steps"] * step_s
        run_steps += n_chunks * call["chunk_steps"]
        # compilation as measured (the probe compiles before it runs), else the first chunk less a steady one
        compile_s += call["compile_s"] if "compile_s" in call else max(call["first_s"] - chunk_s, 0.0)
        steps += call["n_total"]
    # the evaluation loops' items the probe did not run, each at the median of the timed ones after the first
    rest_s = sum((e["n"] - len(e["times"])) * statistics.median(e["times"][1:] or e["times"])
                 for e in probe.get("evals", []) if e["times"])
    setup_eval_s = probe["other_s"] + probe["write_s"] + rest_s
    total = probe["import_s"] + setup_eval_s + compile_s + train_s
    extra_mb = max((call.get("extra_mb", 0.0) for call in probe["calls"]), default=0.0)
    return {"wall_s": total, "import_s": probe["import_s"], "setup_eval_s": setup_eval_s,
            "compile_s": compile_s, "train_s": train_s, "steps": int(steps),
            "step_s": train_s / run_steps if run_steps else 0.0, "peak_mb": probe["peak_mb"] + extra_mb}


class ProgramTooBig(MemoryError):
    """A probed program whose buffers (XLA's memory analysis of the compiled chunk), on top
    of what the process holds already, would exceed the probe's memory budget: raised
    before the program runs, with the memory it would need (`needed_mb`)."""

    def __init__(self, needed_mb: float, program_mb: float, budget_mb: float):
        self.needed_mb, self.program_mb, self.budget_mb = needed_mb, program_mb, budget_mb
        super().__init__(f"the compiled training chunk needs {program_mb:.0f} MB of buffers, {needed_mb:.0f} MB with "
                         f"what the process holds, over the probe's budget of {budget_mb:.0f} MB")


def program_mb(compiled) -> float | None:
    """MB of buffers a compiled program holds while it runs (arguments, outputs not aliased
    to them, and XLA's temporaries), from the backend's memory analysis; None where the
    backend gives none."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    total = (stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
             + stats.temp_size_in_bytes)
    return total / 2**20


def rss_mb() -> float:
    """This process's resident memory now (MB), from /proc; its peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _extra_mb(whole, part) -> float:
    """MB a compiled program `whole` holds beyond `part`, which runs on copies of some of
    its arguments while the whole arguments stay resident: its outputs (not aliased to its
    arguments) less `part`'s outputs and argument copies; 0 where the backend gives no
    memory analysis."""
    w, p = whole.memory_analysis(), part.memory_analysis()
    if w is None or p is None:
        return 0.0
    out_w = w.output_size_in_bytes - w.alias_size_in_bytes
    out_p = p.output_size_in_bytes - p.alias_size_in_bytes
    return max(out_w - out_p - p.argument_size_in_bytes, 0) / 2**20


def _check_budget(probe, mb: float | None) -> None:
    if probe.mem_budget_mb is not None and mb is not None and (needed := rss_mb() + mb) > probe.mem_budget_mb:
        raise ProgramTooBig(needed, mb, probe.mem_budget_mb)


def _run_s(compiled, carry, runs) -> tuple[dict, float]:
    import jax

    t0 = time.perf_counter()
    after = compiled(carry, runs)
    jax.block_until_ready(after["k"])
    return after, time.perf_counter() - t0


def probe_program(probe, make_chunk, chunk_steps: int, carry, runs, batching: str):
    """The planner's probing method (`train.probing`'s `program`): measure memory first,
    then pick the chunk to time by the measured step.

    A two-step chunk (a loop, as the job's chunks are: XLA inlines a one-step loop and may
    then fuse differently) is compiled and its buffers read from XLA's memory analysis; if
    they would take the process past the probe's `mem_budget_mb`, `ProgramTooBig` is raised
    before anything runs. Then it runs once. A `lax.map`ped ensemble of more than
    `PROBE_MAP_RUNS` runs runs the same one-run program for each run in turn, so its step
    time is that of its first `PROBE_MAP_RUNS` runs times runs / `PROBE_MAP_RUNS`: that
    two-step chunk is of the first runs only (`train.take_runs`), and the job's whole chunk
    is compiled for its compilation time and memory. A step of the ensemble slower than
    `PROBE_SLOW_STEP_S` is timed in those two-step chunks, and one steady chunk beyond the
    first is enough (a big program's probe costs four steps), two for the first runs of a
    mapped ensemble (cheap: two runs). A faster
    one is timed in chunks of about `PROBE_CHUNK_S` of the whole ensemble (at least
    `probe.steps` steps, at most the job's `chunk_steps`), compiled next, whose compilation
    is the one reported (the job compiles one program).
    **Returns:** a `train.ProbeChunk`.
    """
    from ssmflow import train

    short = min(2, chunk_steps)
    n_runs = int(runs["key"].shape[0])
    k = PROBE_MAP_RUNS if batching == "map" and n_runs > PROBE_MAP_RUNS else n_runs
    part_carry, part_runs = (carry, runs) if k == n_runs else (train.take_runs(carry, k), train.take_runs(runs, k))
    t0 = time.perf_counter()
    two = make_chunk(short).lower(part_carry, part_runs).compile()
    compile_s = time.perf_counter() - t0
    mb = program_mb(two.compiled)
    _check_budget(probe, mb)
    after, run_s = _run_s(two, part_carry, part_runs)
    if run_s / short * n_runs / k >= PROBE_SLOW_STEP_S or chunk_steps <= 2:
        if k == n_runs:
            return train.ProbeChunk(two, short, compile_s, mb, (after, run_s), 2)
        # the job's chunk of the whole ensemble: its compilation and memory, not run
        t1 = time.perf_counter()
        whole = make_chunk(chunk_steps).lower(carry, runs).compile()
        whole_s = time.perf_counter() - t1
        return train.ProbeChunk(two, short, whole_s, program_mb(whole.compiled), (after, run_s), 3, part_runs,
                                _extra_mb(whole.compiled, two.compiled), overhead_s=compile_s)
    again = _run_s(two, part_carry, part_runs)[1]  # again: a first run pays one-off costs
    step_s = again / short * n_runs / k
    n = min(chunk_steps, max(probe.steps, math.ceil(PROBE_CHUNK_S / max(step_s, 1e-9))))
    t2 = time.perf_counter()
    chunk = make_chunk(n).lower(carry, runs).compile()
    chunk_s = time.perf_counter() - t2
    if k != n_runs:
        mb = program_mb(chunk.compiled)
        _check_budget(probe, mb)
    return train.ProbeChunk(chunk, n, chunk_s, mb, None, 3, overhead_s=compile_s + run_s + again)


def run_probe(spec: dict, steps: int = PROBE_STEPS, mem_budget_mb: float | None = None) -> dict:
    """Probe one shard in this process (the body of `ssmflow probe`): synthesize its data,
    run its job under `train.probing` (a few chunks, a few items of each evaluation loop),
    write its store to a temporary directory, and return
    the measurements (seconds, peak resident MB). With `mem_budget_mb`, a training program
    that would not fit it is not run: the result then holds `too_big` (the MB it needs,
    `ProgramTooBig`) and no timings."""
    import resource

    import ssmflow
    from ssmflow import store, train

    decl = study_contract.get(spec["study"])
    job = decl.module(decl.train)
    t_imported = time.perf_counter()
    data = decl.module(decl.data).data_dataset(spec) if decl.data else None
    t_data = time.perf_counter()
    before = dict(train.ENGINE_SECONDS)
    import jax

    head = {"study": spec["study"], "experiment": spec["experiment"], "shard": spec["shard"],
            "backend": jax.default_backend(), "jax": jax.__version__}
    try:
        with train.probing(steps=steps, chunks=PROBE_MAX_CHUNKS, steady_s=PROBE_STEADY_S, mem_budget_mb=mem_budget_mb,
                           program=probe_program, eval_items=PROBE_EVAL_ITEMS, eval_s=PROBE_EVAL_S) as probe:
            ds = job.train_shard(spec, data) if data is not None else job.train_shard(spec)
    except ProgramTooBig as err:
        return {**head, "too_big": {"needed_mb": err.needed_mb, "program_mb": err.program_mb,
                                    "budget_mb": err.budget_mb}}
    t_trained = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ssmflow-probe-") as tmp:
        store.write_atomic(ds, Path(tmp) / "shard.zarr", whole=decl.whole_dims)
    t_written = time.perf_counter()
    engine = sum(train.ENGINE_SECONDS[k] - before[k] for k in ("compile", "train"))
    engine += sum(call["overhead_s"] for call in probe.calls)  # the probe's own, not the job's
    return {
        **head, "import_s": t_imported - ssmflow.IMPORTED_AT, "data_s": t_data - t_imported,
        "other_s": max(t_trained - t_data - engine, 0.0), "write_s": t_written - t_trained,
        "calls": probe.calls, "evals": probe.evals,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


class ProbeFailed(RuntimeError):
    """A probe that exited with an error, was killed (out of memory) or ran out of time."""


def _probe_in_child(spec: dict, threads: int, root: Path, log_dir: Path, timeout_s: float | None = None,
                    mem_budget_mb: float | None = None) -> dict:
    """Run `ssmflow probe` for `spec` in a fresh process (a job's own imports, threads and
    memory) and cache its result; a failed probe raises `ProbeFailed` with the tail of its log.
    A program over `mem_budget_mb` is not run: its result holds `too_big` (and is cached)."""
    path = probe_path(spec, threads, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{spec['study']}_{spec['experiment']}_{spec['shard']}.log"
    tmp = path.with_name(f".{path.name}.tmp")
    cmd = [sys.executable, "-m", "ssmflow.cli", "probe", "--spec", json.dumps(spec, sort_keys=True),
           "--out", str(tmp), "--threads", str(threads)]
    if mem_budget_mb is not None:
        cmd += ["--mem-budget", f"{mem_budget_mb:.0f}"]
    name = f"{spec['study']}/{spec['experiment']}/{spec['shard']}"
    with open(log, "w") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            raise ProbeFailed(f"probe of {name} ran out of its {timeout_s:g} s (--probe-timeout): its job takes "
                              f"longer than that to compile, set up and evaluate; log {log}") from None
    if rc not in (0, PROBE_TOO_BIG_EXIT):
        tail = "\n".join(log.read_text().splitlines()[-12:])
        why = " (killed: out of memory?)" if rc in (-9, 137) else ""
        raise ProbeFailed(f"probe of {name} failed (exit {rc}){why}; log {log}:\n{tail}")
    result = json.loads(tmp.read_text())
    result["shape"] = shape_spec(spec)
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return result


def plan(config: dict, studies: Sequence[str] | None = None, *, threads: int = 1, jobs: int | None = None,
         root: str | os.PathLike = PLAN_ROOT, refresh: bool = False, timeout_s: float | None = None,
         echo=None, probe: bool = True) -> tuple[list[dict], list[str]]:
    """Every training shard of a validated config with its predicted cost.

    **Arguments:** `config` (validated); `studies` (default: the config's); `threads` per
    probe (the training rules' `threads`); `jobs` probes at once (default: cores // threads);
    `root` the probe cache; `refresh` probes again even where a cached probe matches;
    `timeout_s` per probe; `echo(str)` is told of each probe as it starts and ends;
    `probe=False` probes nothing and plans the shards whose probes are cached.
    **Returns:** `(rows, failures)`: one row per shard with a probe: study, experiment,
    shard, runs, steps, the prediction (`predict`), `probed_as` (the shard whose probe it
    shares) and `cached`; and one message per failed probe (its shards have no row).
    """
    root = Path(root)
    shards = [s for st in (studies or config["studies"]) for exp in grid.expand(config, st).values() for s in exp]
    groups: dict[Path, list[grid.Shard]] = {}
    for s in shards:
        groups.setdefault(probe_path(s.spec, threads, root), []).append(s)
    avail_mb = max(res.host_available_mb() - PROBE_MEM_RESERVE_MB, 1)
    todo = [(path, members[0]) for path, members in groups.items() if probe and (refresh or _stale(path, avail_mb))]
    jobs = jobs or max(1, (os.cpu_count() or 1) // threads)
    log_dir = root / "logs"

    def one(item, budget_mb):
        path, s = item
        if echo:
            echo(f"probing {s.study}/{s.experiment}/{s.name} ({grid.shard_runs(s.spec)} runs)")
        t0 = time.perf_counter()
        try:
            result = _probe_in_child(s.spec, threads, root, log_dir, timeout_s, budget_mb)
        except ProbeFailed as err:
            return path, str(err)
        if echo:
            what = (f"not run: needs {result['too_big']['needed_mb']:.0f} MB, over {budget_mb:.0f} MB"
                    if "too_big" in result else "probed ")
            echo(f"{what} {s.study}/{s.experiment}/{s.name} in {time.perf_counter() - t0:.1f} s")
        return path, result

    # Probes run `jobs` at once, each within an equal share of the memory available now, so
    # that two big programs never run each other out of memory; a program too big for its
    # share (measured by compiling it, before it runs) is probed again alone within all of it.
    shared_mb = avail_mb / jobs if jobs > 1 else avail_mb
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcome = dict(pool.map(lambda item: one(item, shared_mb), todo))
    for item in todo:
        got = outcome[item[0]]
        if jobs > 1 and isinstance(got, dict) and "too_big" in got and got["too_big"]["needed_mb"] <= avail_mb:
            outcome[item[0]] = one(item, avail_mb)[1]
    outcome = {path: (got if isinstance(got, str) else None) for path, got in outcome.items()}
    failures = [msg for msg in outcome.values() if msg]
    probed = {path for path, msg in outcome.items() if msg is None}
    rows = []
    for path, members in groups.items():
        if outcome.get(path) or not path.exists():
            continue  # its probe failed (an older probe of the shape is not shown as this one)
        probe = json.loads(path.read_text())
        pred = predict(probe)
        for s in members:
            rows.append({"study": s.study, "experiment": s.experiment, "shard": s.name,
                         "runs": grid.shard_runs(s.spec), **pred, "probed_as": probe["shard"],
                         "backend": probe["backend"], "cached": path not in probed, "probe": str(path),
                         "measured": "too_big" not in probe,
                         "program_mb": probe["too_big"]["program_mb"] if "too_big" in probe else
                         max((c.get("program_mb") or 0.0 for c in probe["calls"]), default=0.0)})
    order = {(s.study, s.experiment, s.name): i for i, s in enumerate(shards)}
    rows.sort(key=lambda r: order[(r["study"], r["experiment"], r["shard"])])
    return rows, failures


def _stale(path: Path, avail_mb: float) -> bool:
    """Whether a shape's cached probe must be taken again: there is none, or its program
    was too big to run within a budget smaller than this host's available memory, which
    it would fit now."""
    try:
        probe = json.loads(path.read_text())
    except (OSError, ValueError):
        return True
    big = probe.get("too_big")
    return bool(big) and big["budget_mb"] < avail_mb and big["needed_mb"] <= avail_mb


def totals(rows: Sequence[Mapping]) -> dict:
    """Wall seconds summed over the measured jobs (core-hours at one thread each), the
    longest job, the largest peak, and how many jobs were too big to probe here."""
    timed = [r["wall_s"] for r in rows if r["wall_s"] is not None]
    return {"jobs": len(rows), "wall_s": sum(timed), "longest_s": max(timed, default=0.0),
            "peak_mb": max((r["peak_mb"] for r in rows), default=0.0), "unmeasured": len(rows) - len(timed)}


def check_fits(rows: Sequence[Mapping], limit_mb: int, source: str) -> None:
    """Refuse a plan with a shard whose predicted memory (with `MEM_SAFETY`) exceeds one
    job's limit: a `ConfigError` naming each such shard and by how much."""
    over = [(r, job_mem_mb(r["peak_mb"])) for r in rows]
    over = [(r, mem) for r, mem in over if mem > limit_mb]
    if not over:
        return
    lines = [f"{r['study']}/{r['experiment']}/{r['shard']}: {r['runs']} runs, predicted peak {r['peak_mb']:.0f} MB, "
             f"asks {mem} MB, {mem - limit_mb} MB ({mem / limit_mb - 1:.0%}) over" for r, mem in over]
    raise ConfigError(f"training jobs that would not fit in one job's memory ({source}):\n  " + "\n  ".join(lines)
                      + "\nLower the shard's runs (seeds, batched axes), set max_runs_per_shard to split it, "
                        "or raise max_job_mem_mb if your nodes have more memory.")


def job_mem_mb(peak_mb: float, attempt: int = 1) -> int:
    """The memory (MB) a planned job asks for on its `attempt`-th try."""
    return int(math.ceil(peak_mb * MEM_SAFETY + MEM_MARGIN_MB)) * attempt


def job_runtime_min(wall_s: float, attempt: int = 1) -> int:
    """The time limit (minutes) a planned job asks for on its `attempt`-th try."""
    return max(MIN_RUNTIME_MIN, int(math.ceil(wall_s * RUNTIME_SAFETY / 60))) * attempt


def resources_for(spec: dict, attempt: int, limit_mb: int, default_runtime_min: int,
                  threads: int = 1, root: str | os.PathLike = PLAN_ROOT) -> dict:
    """A training job's `mem_mb` and `runtime` (minutes) on its `attempt`-th try: from its
    cached probe when there is one (`source`: "plan"), else the fixed defaults
    (`ssmflow.resources.train_mem_mb`, `default_runtime_min` per attempt; `source`: "default").
    Memory never exceeds `limit_mb`."""
    probe = cached_probe(spec, threads, root)
    if probe is None:
        return {"mem_mb": res.train_mem_mb(grid.shard_runs(spec), attempt, limit_mb),
                "runtime": default_runtime_min * attempt, "source": "default"}
    pred = predict(probe)  # a program too big to run at planning has its memory and no time
    runtime = default_runtime_min * attempt if pred["wall_s"] is None else job_runtime_min(pred["wall_s"], attempt)
    return {"mem_mb": min(job_mem_mb(pred["peak_mb"], attempt), limit_mb), "runtime": runtime, "source": "plan"}


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def table(rows: Sequence[Mapping]) -> str:
    """The plan as a text table, one line per shard, then the totals."""
    head = ("shard", "runs", "steps", "compile", "train", "other", "wall", "peak MB", "probe")
    def probe_col(r):
        how = ("cached" if r["cached"] else "new") + ("" if r["probed_as"] == r["shard"] else f" (as {r['probed_as']})")
        return how if r["measured"] else f"{how}, not run: too big to run here (memory from the compiled program)"

    def other(r):
        return None if r["import_s"] is None else r["import_s"] + r["setup_eval_s"]

    lines = [[f"{r['study']}/{r['experiment']}/{r['shard']}", str(r["runs"]), str(r["steps"] or "-"),
              _fmt_s(r["compile_s"]), _fmt_s(r["train_s"]), _fmt_s(other(r)), _fmt_s(r["wall_s"]),
              f"{r['peak_mb']:.0f}", probe_col(r)] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=False)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 8) else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*line) for line in lines]
    t = totals(rows)
    backend = sorted({r["backend"] for r in rows})
    out.append(f"{t['jobs']} training jobs: {t['wall_s'] / 3600:.2f} core-hours on {'/'.join(backend) or '-'} "
               f"(one thread each), longest {_fmt_s(t['longest_s'])}, largest peak {t['peak_mb']:.0f} MB"
               + (f"; {t['unmeasured']} too big to run on this host, their time not in the total" if t["unmeasured"] else ""))
    return "\n".join(out)
