"""`ssmflow ...`: the commands the workflow's rules run, each runnable by hand.

    ssmflow shards   [--config C] [--study S]          list the shards a config expands to
    ssmflow spec     --study S --experiment E --shard X print one shard's job spec (JSON)
    ssmflow train    --spec JSON --out STORE            train one shard, write its store atomically
                     [--checkpoint PATH] [--checkpoint-every S]  (resumes a killed job)
    ssmflow gather   --study S --out STORE SHARD...     combine shard stores
    ssmflow theory   --study S --traj T --out STORE     theory on the trajectories' coords
    ssmflow evaluate --study S --traj T [--theory R] --out-zarr Z --out-csv C
    ssmflow figure   --study S --name F --results DIR --out PNG
    ssmflow checks   --study S --out JSON               identity checks that gate training
    ssmflow s4d-kernel-limit --spec JSON --out STORE    the s4d LegS kernel-limit store
    ssmflow freqbias-theory --what W --spec JSON --out STORE  freqbias X1 theory or the transfer atlas
    ssmflow summary  STORE                              describe a results dataset
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
from pathlib import Path

from ssmflow import config as cfgmod
from ssmflow import grid

log = logging.getLogger("ssmflow")


def _setup(precision: str | None = None, cache: str | None = None) -> None:
    from ssmflow import train

    if precision:
        train.set_precision(precision)
    if cache:
        train.enable_compilation_cache(cache)


def _study(study: str, part: str):
    grid.study_module(study)
    return importlib.import_module(f"ssmflow.studies.{study}.{part}")


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
    print(json.dumps(find_shard(cfg, a.study, a.experiment, a.shard).spec, sort_keys=True))
    return 0


def cmd_train(a) -> int:
    from ssmflow import store

    spec = json.loads(Path(a.spec[1:]).read_text()) if a.spec.startswith("@") else json.loads(a.spec)
    _setup(spec["common"]["precision"], a.cache)
    job = _study(spec["study"], "job")
    log.info("training %s/%s/%s", spec["study"], spec["experiment"], spec["shard"])
    ckpt = None if a.checkpoint == "none" else (a.checkpoint or a.out.rstrip("/") + ".ckpt")
    with contextlib.ExitStack() as stack:
        if ckpt:
            from ssmflow.config import digest
            from ssmflow.train import checkpointing

            stack.enter_context(checkpointing(ckpt, a.checkpoint_every, key=digest(spec)))
        ds = job.train_shard(spec)
    store.write_atomic(ds, a.out, whole=grid.layout(spec["study"])[0])
    if ckpt:
        from ssmflow.train import clear_checkpoints

        clear_checkpoints(ckpt)  # the store is complete: the checkpoint has done its job
    log.info("wrote %s (%.0f steps/s, %.1f s)", a.out, ds.attrs["steps_per_second"], ds.attrs["wall_seconds"])
    return 0


def cmd_gather(a) -> int:
    from ssmflow import store

    whole, pad = grid.layout(a.study)
    ds = store.gather(a.shards, pad_dims=pad)
    store.write_atomic(ds, a.out, whole=whole)
    log.info("gathered %d shards into %s: %s", len(a.shards), a.out, dict(ds.sizes))
    return 0


def cmd_theory(a) -> int:
    from ssmflow import store

    traj = store.open_store(a.traj).load()
    _setup(traj.attrs.get("precision"))
    ds = _study(a.study, "reference").theory_dataset(traj)
    store.write_atomic(ds, a.out, whole=grid.layout(a.study)[0])
    return 0


def cmd_evaluate(a) -> int:
    from ssmflow import store

    traj = store.open_store(a.traj).load()
    theory = store.open_store(a.theory).load() if a.theory else None  # None: the study has no theory store
    metrics = _study(a.study, "evaluate").metrics_dataset(traj, theory)
    store.write_atomic(metrics, a.out_zarr, whole=("seed",))
    Path(a.out_csv).parent.mkdir(parents=True, exist_ok=True)
    # a stable layout: the study's canonical run dims first, variables sorted, rows sorted
    canon = [d for d in (*grid.study_module(a.study).RUN_DIMS, "seed") if d in metrics.dims]
    order = canon + sorted(set(metrics.dims) - set(canon))
    frame = metrics[sorted(metrics.data_vars)].to_dataframe(dim_order=order).reset_index()
    frame.sort_values(order).to_csv(a.out_csv, index=False)
    return 0


def cmd_figure(a) -> int:
    _study(a.study, "figures").make_figure(a.name, Path(a.results), Path(a.out))
    return 0


def cmd_checks(a) -> int:
    _setup("float64")
    report = _study(a.study, "checks").run_checks()
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


def cmd_s4d_kernel_limit(a) -> int:
    from ssmflow import store
    from ssmflow.studies.s4d.legs_limit import convergence_dataset

    spec = json.loads(a.spec)
    ds = convergence_dataset(spec["N"], spec["dt"], t_max=spec["t_max"])
    ds.attrs.update(store.provenance(cfgmod.digest(spec), "float64", study="s4d", experiment="kernel_limit"))
    store.write_atomic(ds, a.out, whole=("N", "measure", "dt", "c", "kind", "k", "t"))
    log.info("wrote %s: max dense-vs-modes error %.2g", a.out, float(ds.dense_error.max()))
    return 0


def cmd_freqbias_theory(a) -> int:
    from ssmflow import store

    _setup("float64")
    from ssmflow.studies.freqbias import theory

    spec = json.loads(a.spec)
    ds = theory.theory_dataset(spec) if a.what == "theory" else theory.atlas_dataset(spec)
    ds.attrs.update(store.provenance(cfgmod.digest(spec), "float64", study="freqbias", experiment=a.what))
    store.write_atomic(ds, a.out, whole=grid.layout("freqbias")[0])
    log.info("wrote %s: %s", a.out, dict(ds.sizes))
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
    s.add_argument("--shard", required=True)
    s.set_defaults(fn=cmd_spec)

    s = sub.add_parser("train", help="train one shard")
    s.add_argument("--spec", required=True, help="shard spec as JSON, or @file.json")
    s.add_argument("--out", required=True)
    s.add_argument("--cache", help="JAX persistent compilation cache directory")
    s.add_argument("--checkpoint", help="checkpoint file to save to and resume from (default: STORE.ckpt; 'none': off)")
    s.add_argument("--checkpoint-every", type=float, default=300.0, metavar="SECONDS",
                   help="save a checkpoint after a chunk once this many seconds passed since the last (default 300)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("gather", help="combine shard stores into one")
    s.add_argument("--study", required=True, help="the study, whose layout (whole and padded dims) the store takes")
    s.add_argument("--out", required=True)
    s.add_argument("shards", nargs="+")
    s.set_defaults(fn=cmd_gather)

    s = sub.add_parser("theory", help="theory store on the trajectories' coords")
    s.add_argument("--study", required=True)
    s.add_argument("--traj", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_theory)

    s = sub.add_parser("evaluate", help="simulation against theory, per run")
    s.add_argument("--study", required=True)
    s.add_argument("--traj", required=True)
    s.add_argument("--theory", help="theory store (omit for a study without one, e.g. s4d)")
    s.add_argument("--out-zarr", required=True)
    s.add_argument("--out-csv", required=True)
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("figure", help="draw one figure from stored data")
    s.add_argument("--study", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--results", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_figure)

    s = sub.add_parser("checks", help="identity checks that gate training")
    s.add_argument("--study", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_checks)

    s = sub.add_parser("s4d-kernel-limit", help="s4d: the LegS kernel-limit store (no training)")
    s.add_argument("--spec", required=True, help="the s4d.kernel_limit config section as JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_s4d_kernel_limit)

    s = sub.add_parser("freqbias-theory", help="freqbias: the X1 theory store or the transfer atlas (no training)")
    s.add_argument("--what", required=True, choices=["theory", "transfer"])
    s.add_argument("--spec", required=True, help="the freqbias.theory config section as JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_freqbias_theory)

    s = sub.add_parser("summary", help="describe a results dataset")
    s.add_argument("store")
    s.set_defaults(fn=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except cfgmod.ConfigError as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
