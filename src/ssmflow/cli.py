"""`ssmflow ...`: the commands the workflow's rules run, each runnable by hand.

    ssmflow shards   [--config C] [--study S]          list the shards a config expands to
    ssmflow spec     --study S --experiment E --shard X print one shard's job spec (JSON)
                     [--data]                           ... or the experiment's data-stage spec
    ssmflow checks   --study S --out JSON               identity checks that gate training
    ssmflow data     --spec JSON --out STORE            synthesize one experiment's data store
    ssmflow train    --spec JSON [--data STORE] --out STORE   train one shard, write its store atomically
                     [--checkpoint PATH] [--checkpoint-every S]  (resumes a killed job)
    ssmflow gather   --study S --out STORE SHARD...     combine shard stores
    ssmflow stage    --study S --stage X --input PRODUCT=STORE... --out STORE [--out-csv CSV]
                                                        a stage after gather (theory, evaluate, ...)
    ssmflow study-store --study S --store X --spec JSON --out STORE   a store from a config section
    ssmflow figures  --study S --spec JSON --out F.png...  figures of a study, each from its declared stores
    ssmflow summary  STORE                              describe a results dataset
    ssmflow plan     [--config C] [--study S] [--json]  every training job's predicted time and memory,
                                                        measured by probes (cached in results/.plan)
    ssmflow probe    --spec JSON --out JSON             one probe: a shard's real program, a few chunks

Every command dispatches to the stage module that the study declares (ssmflow.study):
the rule that runs it lists that module's source closure as its code inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import ssmflow
from ssmflow import config as cfgmod
from ssmflow import freshness
from ssmflow import grid
from ssmflow import study as study_contract

log = logging.getLogger("ssmflow")


def _record_spec(ds, spec: dict) -> None:
    """Record in a root store (data, shard, study store) the job spec it ran: every config
    value it depends on (`ssmflow.freshness`: a store that no longer matches is rerun)."""
    ds.attrs[freshness.JOB_SPEC_ATTR] = freshness.spec_json(spec)


def enable_compilation_cache(path: str | os.PathLike | None) -> None:
    """Turn on JAX's persistent compilation cache under `path` (no-op for None), for every
    JAX program this process compiles: set in `jax.config` when JAX is already imported,
    else through the environment that JAX reads at import (so a job that never imports JAX
    does not pay for it).

    Programs of any compile time are kept: a job runs dozens of small programs (random
    draws, eager setup ops) that each compile fast but add up to seconds per job.
    """
    if path is None:
        return
    os.makedirs(path, exist_ok=True)
    settings = {"jax_compilation_cache_dir": os.fspath(path), "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:
        os.environ.update({name.upper(): str(value) for name, value in settings.items()})


def limit_threads(n: int | None) -> None:
    """Let this process's JAX CPU client run on `n` threads (no-op for None: all the cores
    it may use). A job that declares one thread to its scheduler (Snakemake's `threads`,
    SLURM's `--cpus-per-task`) then uses one, and concurrent jobs do not oversubscribe the
    cores. XLA sizes its CPU thread pool from the environment variable NPROC when it
    creates the client, which is after import: set here, before any computation. (The
    often-quoted `--xla_cpu_multi_thread_eigen=false` leaves a matmul on every core.)
    """
    if n is None:
        return
    if n < 1:
        raise SystemExit(f"--threads must be a positive integer, got {n}")
    os.environ["NPROC"] = str(n)


def deterministic_gpu() -> None:
    """Ask XLA for deterministic GPU kernels (`--xla_gpu_deterministic_ops=true` in
    XLA_FLAGS, unless XLA_FLAGS names that flag already), so that a shard rerun on a GPU
    repeats its numbers bit for bit, as on the CPU: XLA's GPU reductions and scatters may
    otherwise add in a different order on every run. Read when JAX creates its backend, so
    set before any computation; the CPU backend ignores it (same programs, same numbers).
    Not yet run on a GPU here (README, "Scaling up")."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


#: glibc `mallopt` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def retain_heap() -> bool:
    """Keep freed memory in this process's heap instead of returning it to the kernel, so
    that XLA's per-execution temporary buffers are not page-faulted afresh on every call.

    XLA:CPU allocates one temporary buffer per executed program (103 MB for the S4D
    block's train step at H = 64, L = 1024) through malloc. glibc serves an allocation
    that large with a fresh `mmap` (above its 32 MB ceiling of the mmap threshold, or
    beyond the 64 MB heap of a thread's arena) and unmaps it on free, so every call
    faults in every page again: 25,000 page faults and about 80 ms of kernel time per call
    of that step on the 2-core machine (BENCHMARKS.md, "page faults"). One arena, no mmap
    below 1 GiB and no trimming keep the pages mapped; the process's resident memory then
    stays at its peak, which is what its scheduler already reserves. Results do not
    change (allocation does not enter the arithmetic).

    Must run before JAX starts its thread pools (a thread keeps the arena it first
    used). A no-op off glibc (macOS, musl). **Returns:** whether the settings were applied.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1))
    return all(mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in settings)


def set_precision(precision: str) -> None:
    """JAX's default float width for this process (`ssmflow.train.set_precision`): in
    `jax.config` when JAX is already imported, else through the environment that JAX reads
    at import, so a stage that computes in NumPy alone never imports JAX for it."""
    if "jax" in sys.modules:
        from ssmflow import train

        train.set_precision(precision)
    elif precision in ("float32", "float64"):
        os.environ["JAX_ENABLE_X64"] = str(precision == "float64")
    else:
        raise ValueError(f"`precision` (={precision!r}) must be 'float32' or 'float64'.")


def _setup(precision: str | None = None, cache: str | None = None, threads: int | None = None) -> None:
    retain_heap()
    deterministic_gpu()
    limit_threads(threads)
    enable_compilation_cache(cache)
    if precision:
        set_precision(precision)


def _module(study: str, part: str):
    """A stage module of a registered study (imported by name: the rule lists its code)."""
    return study_contract.get(study).module(part)


def cmd_shards(a) -> int:
    cfg = cfgmod.load(a.config)
    studies = [a.study] if a.study else cfg["studies"]
    total = 0
    for study in studies:
        for row in grid.shard_table(cfg, study):
            total += 1
            if not a.count:
                print(f"{row['study']}/{row['experiment']}/{row['shard']}  runs={row['runs']}")
    print(f"{total} shards")
    return 0


def find_shard(cfg: dict, study: str, experiment: str, shard: str) -> grid.Shard:
    shards = grid.expand(cfg, study)
    if experiment not in shards:
        raise SystemExit(f"experiment {experiment!r} is not in config; allowed: {sorted(shards)}")
    for s in shards[experiment]:
        if s.name == shard:
            return s
    raise SystemExit(f"shard {shard!r} is not in {study}/{experiment}; allowed: {[s.name for s in shards[experiment]]}")


def cmd_spec(a) -> int:
    cfg = cfgmod.load(a.config)
    if a.data:  # the data stage's spec, as its rule passes it
        decl = study_contract.get(a.study)
        if a.experiment not in cfg[a.study]["experiments"]:
            raise SystemExit(f"experiment {a.experiment!r} is not in config; allowed: {sorted(cfg[a.study]['experiments'])}")
        spec = grid.experiment_spec(cfg, a.study, a.experiment)
        print(json.dumps(decl.data_keys(spec) if decl.data_keys else spec, sort_keys=True))
        return 0
    if not a.shard:
        raise SystemExit("pass --shard (a training job's spec) or --data (the experiment's data stage)")
    print(json.dumps(find_shard(cfg, a.study, a.experiment, a.shard).spec, sort_keys=True))
    return 0


def _json_arg(text: str) -> dict:
    """A JSON argument given inline or as @file.json."""
    return json.loads(Path(text[1:]).read_text()) if text.startswith("@") else json.loads(text)


def cmd_data(a) -> int:
    from ssmflow import store

    spec = _json_arg(a.spec)
    decl = study_contract.get(spec["study"])
    _setup(spec["common"].get("precision"), a.cache, a.threads)
    ds = decl.module(decl.data).data_dataset(spec)
    _record_spec(ds, spec)
    store.write_atomic(ds, a.out, whole=ds.attrs.get("whole_dims", decl.whole_dims))
    log.info("wrote %s: %s", a.out, dict(ds.sizes))
    return 0


def cmd_train(a) -> int:
    from ssmflow import store

    spec = _json_arg(a.spec)
    decl = study_contract.get(spec["study"])
    _setup(spec["common"]["precision"], a.cache, a.threads)
    job = decl.module(decl.train)
    # the workflow passes the experiment's data store; by hand, without --data, the job
    # synthesizes the same data in memory (the study's data module)
    t_imported = time.perf_counter()
    args = (store.open_store(a.data),) if a.data else ()
    t_data = time.perf_counter()
    ckpt = None if a.checkpoint == "none" else (a.checkpoint or a.out.rstrip("/") + ".ckpt")
    code = tuple(decl.module_name(p) for p in decl.training_parts)
    # everywhere the job writes, checked before the training and not after it
    store.check_writable(a.out)
    if ckpt:
        store.check_writable(ckpt)
    if a.reuse != "none":
        from ssmflow import reuse

        store.check_writable(reuse.archive_path(spec, reuse.base_digest(spec, code), root=Path(a.reuse)))
    log.info("training %s/%s/%s", spec["study"], spec["experiment"], spec["shard"])
    with contextlib.ExitStack() as stack:
        if ckpt:
            from ssmflow.train import checkpointing

            stack.enter_context(checkpointing(ckpt, a.checkpoint_every, key=cfgmod.digest(spec)))
        if a.reuse == "none":
            ds = job.train_shard(spec, *args)
        else:
            ds = reuse.train_reusing(spec, lambda s: job.train_shard(s, *args), code, root=Path(a.reuse))
    t_trained = time.perf_counter()
    _record_spec(ds, spec)
    from ssmflow.train import spec_batching

    ds.attrs["batching"] = spec_batching(spec)  # what ran ("auto" resolved)
    store.write_atomic(ds, a.out, whole=decl.whole_dims)
    if a.reuse != "none":
        reuse.keep(spec, a.out, code, root=Path(a.reuse))
    if ckpt:
        from ssmflow.train import clear_checkpoints

        clear_checkpoints(ckpt)  # the store is complete: the checkpoint has done its job
    log.info("wrote %s (%.0f steps/s, %.1f s)", a.out, ds.attrs["steps_per_second"], ds.attrs["wall_seconds"])
    log.info("%s", job_profile(ssmflow.IMPORTED_AT, t_imported, t_data, t_trained, time.perf_counter()))
    return 0


def job_profile(start: float, imported: float, data: float, trained: float, end: float) -> str:
    """One line: where a training job's wall time went (seconds since ssmflow was imported).

    import = interpreter modules, JAX and the study's code; data = opening the data store;
    compile = tracing, lowering and compiling the engine's chunk programs (or loading them
    from the persistent cache); train = running every chunk of steps; evaluate = the job's
    work after its last `train_ensemble` call (evaluating snapshots, spectra, assembling the
    Dataset); setup = the rest of the job's work (building the models, converting the data,
    the engine's carry and records); write = the atomic store write and the run archive.
    `steps` counts the ensemble steps the chunks ran. `bench/job_profile.py` sums these
    lines over a run's training logs.
    """
    from ssmflow.train import ENGINE_SECONDS as eng

    ended = eng["ended"] if eng["ended"] is not None else trained
    evaluate = trained - ended
    parts = {
        "total": end - start,
        "import": imported - start,
        "data": data - imported,
        "setup": trained - data - eng["compile"] - eng["train"] - evaluate,
        "compile": eng["compile"],
        "train": eng["train"],
        "evaluate": evaluate,
        "write": end - trained,
    }
    return ("job profile (s): " + " ".join(f"{k}={v:.2f}" for k, v in parts.items())
            + f" n_chunks={eng['n_chunks']} steps={eng['steps']}")


def cmd_gather(a) -> int:
    from ssmflow import store

    whole, pad = grid.layout(a.study)
    parts = [store.open_store(p).load() for p in a.shards]
    if a.models:
        from ssmflow import models

        exp = {str(p.attrs.get("experiment", "")) for p in parts}
        models.export(parts, a.models, a.study, ",".join(sorted(exp)))
        log.info("wrote the models of %d shards to %s", len(parts), a.models)
    ds = store.gather(a.shards, pad_dims=pad, parts=parts)
    store.write_atomic(ds, a.out, whole=whole)
    log.info("gathered %d shards into %s: %s", len(a.shards), a.out, dict(ds.sizes))
    return 0


def _named_paths(items: list[str]) -> dict[str, str]:
    return dict(study_contract.FigureInputs.parse(items or []).items())


def cmd_stage(a) -> int:
    """An experiment-level stage: its function on the opened input stores, one store out."""
    from ssmflow import store

    _setup(cache=a.cache, threads=a.threads)  # precision: from the input store, below
    decl = study_contract.get(a.study)
    stage = decl.stage(a.stage)
    given = _named_paths(a.input)
    if sorted(given) != sorted(stage.reads):
        raise SystemExit(f"stage {decl.name}/{stage.name} reads {list(stage.reads)}; got --input {sorted(given)}")
    inputs = [Path(given[name]) if name == study_contract.MODELS else store.open_store(given[name]).load()
              for name in stage.reads]
    if stage.precision_from_input:
        _setup(inputs[0].attrs.get("precision"))
    kwargs = {"settings": _json_arg(a.settings)} if stage.settings else {}
    ds = getattr(decl.module(stage.module), stage.function)(*inputs, **kwargs)
    store.write_atomic(ds, a.out, whole=decl.whole_dims if not stage.csv else ("seed",))
    if stage.csv:
        if not a.out_csv:
            raise SystemExit(f"stage {decl.name}/{stage.name} also writes a table: pass --out-csv")
        Path(a.out_csv).parent.mkdir(parents=True, exist_ok=True)
        # a stable layout: the study's canonical run dims first, variables sorted, rows sorted
        canon = [d for d in (*decl.run_dims, "seed") if d in ds.dims]
        order = canon + sorted(set(ds.dims) - set(canon))
        frame = ds[sorted(ds.data_vars)].to_dataframe(dim_order=order).reset_index()
        frame.sort_values(order).to_csv(a.out_csv, index=False)
        if stage.headline:
            from ssmflow import tables

            if not a.out_html:
                raise SystemExit(f"stage {decl.name}/{stage.name} also writes a headline table: pass --out-html")
            title = f"{decl.name} {ds.attrs.get('experiment', '')}: headline {stage.writes}"
            Path(a.out_html).write_text(tables.headline_html(ds, stage.headline, order, title))
    log.info("wrote %s: %s", a.out, dict(ds.sizes))
    return 0


def cmd_study_store(a) -> int:
    """A study-level store computed from one config section (no training)."""
    from ssmflow import store

    decl = study_contract.get(a.study)
    st = decl.study_store(a.store)
    spec = _json_arg(a.spec)
    _setup(st.precision, a.cache, a.threads)
    ds = getattr(decl.module(st.module), st.function)(spec)
    ds.attrs.update(store.provenance(cfgmod.digest(spec), st.precision, study=decl.name, experiment=st.name))
    _record_spec(ds, spec)
    store.write_atomic(ds, a.out, whole=st.whole_dims or decl.whole_dims)
    log.info("wrote %s: %s", a.out, dict(ds.sizes))
    return 0


#: the seed of NumPy's global RNG before each figure (`cmd_figures`)
FIGURE_SEED = 0


def cmd_figures(a) -> int:
    """Draw figures of one study in one process (one import of matplotlib and seaborn):
    `--spec` maps each figure to its declared stores, {figure: {key: path}}; each `--out`
    PNG is the figure its file name names, drawn from a `FigureInputs` of its stores only."""
    table = _json_arg(a.spec)
    names = [Path(out).stem for out in a.out]
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"`--out` names figures {unknown} that the spec does not declare; allowed: {sorted(table)}")
    import numpy as np

    module = _module(a.study, study_contract.get(a.study).figures_module)
    for name, out in zip(names, a.out, strict=True):
        t0 = time.perf_counter()
        # seaborn's strip plots jitter their points with NumPy's global RNG: seeded per
        # figure, the same stores draw the same PNG, byte for byte, on every rerun
        np.random.seed(FIGURE_SEED)
        module.make_figure(name, study_contract.FigureInputs(table[name]), Path(out))
        log.info("figure %s/%s drawn in %.2f s", a.study, name, time.perf_counter() - t0)
    return 0


def cmd_checks(a) -> int:
    _setup("float64", a.cache, a.threads)
    decl = study_contract.get(a.study)
    report = decl.module(decl.checks).run_checks()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2))
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    for c in report["checks"]:
        log.info("%-40s %s  value=%.3g  tol=%.3g", c["name"], "ok  " if c["passed"] else "FAIL", c["value"], c["tol"])
    if failed:
        Path(a.out).unlink()
        log.error("identity checks failed: %s", failed)
        return 1
    return 0


def cmd_summary(a) -> int:
    from ssmflow import store

    ds = store.open_store(a.store)
    print(ds)
    skip = {"git_commit", "created"}
    for name in ("loss", "p"):
        if name in ds:
            final = ds[name].isel(step=-1) if "step" in ds[name].dims else ds[name]
            print(f"{name}: finite {int(final.notnull().sum())}/{final.size} final values")
    for k, v in ds.attrs.items():
        if k not in skip:
            print(f"  {k}: {v}")
    return 0


def _planner():
    """`ssmflow.plan`, imported by name: no rule runs the planner, so it is not in the rules'
    code (`ssmflow.codedeps` follows static imports only) and editing it reruns nothing."""
    return importlib.import_module("ssmflow.plan")


def cmd_probe(a) -> int:
    """One probe of `ssmflow plan`, in a process of its own (like the job it stands for)."""
    plan = _planner()
    spec = _json_arg(a.spec)
    _setup(spec["common"]["precision"], None, a.threads)  # no persistent cache: a cold job's compilation
    result = plan.run_probe(spec, steps=a.steps or plan.PROBE_STEPS, mem_budget_mb=a.mem_budget)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, sort_keys=True))
    name = f"{spec['study']}/{spec['experiment']}/{spec['shard']}"
    if "too_big" in result:
        log.info("probe of %s not run: %s", name, result["too_big"])
        return plan.PROBE_TOO_BIG_EXIT
    log.info("probe of %s: %s", name, {k: round(v, 2) for k, v in plan.predict(result).items()})
    return 0


def cmd_plan(a) -> int:
    plan = _planner()
    cfg = cfgmod.load(a.config)
    studies = [a.study] if a.study else cfg["studies"]
    for s in studies:
        if s not in cfg["studies"]:
            raise cfgmod.ConfigError(f"`--study` (={s!r}) is not enabled in {a.config}; allowed: {cfg['studies']}.")
    echo = None if a.json else (lambda line: print(line, file=sys.stderr, flush=True))
    rows, failures = plan.plan(cfg, studies, threads=a.threads, jobs=a.jobs, root=a.cache_dir, refresh=a.refresh,
                               timeout_s=a.probe_timeout, echo=echo, probe=not a.cached)
    limit, source = plan.res.job_mem_limit(cfg)
    if a.json:
        print(json.dumps({"shards": rows, "totals": plan.totals(rows), "mem_limit_mb": limit, "failed": failures}, indent=1))
    else:
        print(plan.table(rows))
    plan.check_fits(rows, limit, source)
    if a.cached:
        n_shards = sum(len(exp) for st in studies for exp in grid.expand(cfg, st).values())
        if len(rows) < n_shards:
            print(f"{n_shards - len(rows)} of {n_shards} shards have no cached probe (--cached): not in the plan",
                  file=sys.stderr)
    if failures:
        print(f"{len(failures)} probe(s) failed; their shards are not in the plan:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


def _jax_options(s: argparse.ArgumentParser) -> None:
    """The options of every command that may compute with JAX."""
    s.add_argument("--cache", help="JAX persistent compilation cache directory")
    s.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for JAX's computations (default: all the cores the process may use)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssmflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("shards", help="list the shards a config expands to")
    s.add_argument("--config", default="config/config.yaml")
    s.add_argument("--study")
    s.add_argument("--count", action="store_true", help="print only the number of shards")
    s.set_defaults(fn=cmd_shards)

    s = sub.add_parser("spec", help="print one shard's job spec")
    s.add_argument("--config", default="config/config.yaml")
    s.add_argument("--study", required=True)
    s.add_argument("--experiment", required=True)
    s.add_argument("--shard", help="the training shard whose spec to print")
    s.add_argument("--data", action="store_true", help="print the experiment's data-stage spec instead")
    s.set_defaults(fn=cmd_spec)

    s = sub.add_parser("data", help="synthesize one experiment's data store")
    s.add_argument("--spec", required=True, help="experiment spec as JSON (grid.experiment_spec), or @file.json")
    s.add_argument("--out", required=True)
    _jax_options(s)
    s.set_defaults(fn=cmd_data)

    s = sub.add_parser("train", help="train one shard")
    s.add_argument("--spec", required=True, help="shard spec as JSON, or @file.json")
    s.add_argument("--data", help="the experiment's data store (for studies with a data stage)")
    s.add_argument("--out", required=True)
    _jax_options(s)
    s.add_argument("--reuse", default="none", metavar="DIR",
                   help="run archive: reuse the stored seeds of this shard and keep its runs there (ssmflow.reuse; default none)")
    s.add_argument("--checkpoint", help="checkpoint file to save to and resume from (default: STORE.ckpt; 'none': off)")
    s.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS",
                   help="save a checkpoint after a chunk once this many seconds passed since the last (default 300)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("gather", help="combine shard stores into one")
    s.add_argument("--study", required=True, help="the study, whose layout (whole and padded dims) the store takes")
    s.add_argument("--out", required=True)
    s.add_argument("--models", help="also write the runs' trained models to this folder (ssmflow.models)")
    s.add_argument("shards", nargs="+")
    s.set_defaults(fn=cmd_gather)

    s = sub.add_parser("stage", help="an experiment-level stage after gather (theory, evaluate, ...)")
    s.add_argument("--study", required=True)
    s.add_argument("--stage", required=True)
    s.add_argument("--input", action="append", metavar="PRODUCT=PATH", help="a store the stage reads (repeat)")
    s.add_argument("--out", required=True)
    s.add_argument("--out-csv", help="the flat table, for stages that write one (metrics)")
    s.add_argument("--settings", help="the experiment's settings of a stage that has them (Stage.settings), JSON")
    s.add_argument("--out-html", help="the headline table (HTML), for stages that declare one (Stage.headline)")
    _jax_options(s)
    s.set_defaults(fn=cmd_stage)

    s = sub.add_parser("study-store", help="a study-level store from one config section (no training)")
    s.add_argument("--study", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--spec", required=True, help="the config section as JSON, or @file.json")
    s.add_argument("--out", required=True)
    _jax_options(s)
    s.set_defaults(fn=cmd_study_store)

    s = sub.add_parser("figures", help="draw a study's figures, each from its declared stores")
    s.add_argument("--study", required=True)
    s.add_argument("--spec", required=True, help="{figure: {key: store path}} as JSON, or @file.json")
    s.add_argument("--out", required=True, nargs="+", metavar="PNG", help="the figures to draw, each as <figure>.png")
    s.set_defaults(fn=cmd_figures)

    s = sub.add_parser("checks", help="identity checks that gate training")
    s.add_argument("--study", required=True)
    s.add_argument("--out", required=True)
    _jax_options(s)
    s.set_defaults(fn=cmd_checks)

    s = sub.add_parser("plan", help="predict every training job's time and memory from measured probes")
    s.add_argument("--config", "--configfile", default="config/config.yaml")
    s.add_argument("--study", help="plan one study only (default: the config's studies)")
    s.add_argument("--json", action="store_true", help="print the plan as JSON (rows and totals)")
    s.add_argument("--threads", type=int, default=1, metavar="N", help="threads per job, as the training rules run them (default 1)")
    s.add_argument("--jobs", type=int, metavar="K", help="probes at once (default: cores // threads)")
    s.add_argument("--cache-dir", default="results/.plan", help="where probes are cached (default results/.plan)")
    s.add_argument("--refresh", action="store_true", help="probe again even where a cached probe matches")
    s.add_argument("--cached", action="store_true", help="probe nothing: plan the shards whose probes are cached")
    s.add_argument("--probe-timeout", type=float, default=600.0, metavar="S",
                   help="seconds one probe may take (default 600); a probe that takes longer is reported as failed")
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("probe", help="probe one shard (what `ssmflow plan` runs per program shape)")
    s.add_argument("--spec", required=True, help="shard spec as JSON, or @file.json")
    s.add_argument("--out", required=True, help="the measurements, JSON")
    s.add_argument("--steps", type=int, help="steps per probe chunk (default: ssmflow.plan.PROBE_STEPS)")
    s.add_argument("--threads", type=int, metavar="N", help="CPU threads for JAX's computations (default: all the cores)")
    s.add_argument("--mem-budget", type=float, metavar="MB",
                   help="do not run a training program that would take the process past this many MB "
                        "(exit 3, and --out holds the MB it needs)")
    s.set_defaults(fn=cmd_probe)

    s = sub.add_parser("summary", help="describe a results dataset")
    s.add_argument("store")
    s.set_defaults(fn=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    # ssmflow's progress at INFO, other libraries' from WARNING: at INFO, JAX logs each
    # backend it probed and could not load ("Unable to initialize backend 'tpu'") at the top
    # of every job log, on CPU and GPU machines alike; its warnings (a GPU it cannot use) stay
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except cfgmod.ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except OSError as e:
        from ssmflow.store import StoreError  # already imported by the command that raised it

        if not isinstance(e, StoreError):
            raise
        print(f"ssmflow {args.cmd}: {e}", file=sys.stderr)  # names the store: no traceback needed
        return 1


if __name__ == "__main__":
    sys.exit(main())
