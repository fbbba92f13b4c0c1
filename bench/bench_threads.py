"""Concurrent training jobs with and without `--threads 1`, side by side in one run.

    python bench/bench_threads.py [--config C] [--study S] [--experiment E] [--shard SH] [--jobs K] [--reps R]

Snakemake runs as many `threads: 1` training jobs at once as there are cores. Unlimited,
XLA spreads each job's computations over every core, so K concurrent jobs oversubscribe
the cores K-fold; with `--threads 1` (what the rules pass) each computes on one. This
synthesizes the experiment's data once, then runs K copies of one shard's `ssmflow train`
at once, each with its own cold compile cache, alternately unlimited and with
`--threads 1`, R times each, and prints every job's wall time and the ratio of the mean
batch wall times (limited / unlimited; below 1 means the limit is faster). The stores of
both settings are compared value for value (`wall_s`, a timing, excepted): across the settings
(how far the thread count moves the numbers) and between the jobs of one setting (whether
a setting is deterministic).
Default: the default config's s4d delay shard N=64_disc=zoh, 2 jobs (one per core), 1 rep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def ssmflow(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "ssmflow.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"ssmflow {args[0]} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def batch(spec: str, data: Path | None, work: Path, tag: str, jobs: int, threads: int | None) -> list[float]:
    """Wall seconds of each of `jobs` concurrent training jobs of one shard."""
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    procs = []
    for i in range(jobs):
        out = work / f"{tag}_{i}.zarr"
        cmd = [sys.executable, "-m", "ssmflow.cli", "train", "--spec", spec, "--out", str(out), "--cache",
               str(work / f"cache_{tag}_{i}"), "--checkpoint", "none"]
        cmd += ["--data", str(data)] if data else []
        cmd += ["--threads", str(threads)] if threads else []
        procs.append((time.perf_counter(), subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                            stderr=subprocess.PIPE, text=True)))
    walls = []
    for t0, p in procs:
        err = p.communicate()[1]
        if p.returncode:
            raise SystemExit(f"a training job failed:\n{err[-3000:]}")
        walls.append(time.perf_counter() - t0)
    return walls


def differences(a: Path, b: Path) -> dict[str, float]:
    """Per data variable (`wall_s`, a timing, excepted), the largest |a - b| relative to max |a|."""
    with xr.open_zarr(a) as x, xr.open_zarr(b) as y:
        names = sorted(set(x.data_vars) - {"wall_s"})
        if names != sorted(set(y.data_vars) - {"wall_s"}):
            raise SystemExit(f"the stores hold different variables: {names} against {sorted(y.data_vars)}")
        out = {}
        for n in names:
            u, v = x[n].values, y[n].values
            if np.array_equal(u, v, equal_nan=True):
                out[n] = 0.0
            elif u.dtype.kind in "fc":
                scale = float(np.nanmax(np.abs(u))) or 1.0
                out[n] = float(np.nanmax(np.abs(u - v))) / scale
            else:
                out[n] = float("inf")
        return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--study", default="s4d")
    p.add_argument("--experiment", default="delay")
    p.add_argument("--shard", default="N=64_disc=zoh")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--reps", type=int, default=1)
    a = p.parse_args()
    pick = ["--config", a.config, "--study", a.study, "--experiment", a.experiment]
    spec = ssmflow("spec", *pick, "--shard", a.shard).strip()
    with tempfile.TemporaryDirectory(prefix="ssmflow-bench-threads-") as tmp:
        work = Path(tmp)
        data = None
        try:
            data_spec = ssmflow("spec", *pick, "--data").strip()
        except SystemExit:
            data_spec = None  # a study without a data stage
        if data_spec:
            data = work / "data.zarr"
            ssmflow("data", "--spec", data_spec, "--out", str(data), "--threads", "1")
        means = {}
        for rep in range(a.reps):
            for label, threads in (("unlimited", None), ("threads=1", 1)):
                tag = f"{label.replace('=', '')}{rep}"
                walls = batch(spec, data, work, tag, a.jobs, threads)
                means.setdefault(label, []).append(max(walls))
                print(f"rep {rep} {label:10s} " + "  ".join(f"{w:7.1f}s" for w in walls), flush=True)
        across = differences(work / "unlimited0_0.zarr", work / "threads10_0.zarr")
        within = {label: differences(work / f"{tag}0_0.zarr", work / f"{tag}0_{a.jobs - 1}.zarr")
                  for label, tag in (("unlimited", "unlimited"), ("threads=1", "threads1"))}
    un, lim = float(np.mean(means["unlimited"])), float(np.mean(means["threads=1"]))
    print(f"{a.study}/{a.experiment}/{a.shard}, {a.jobs} concurrent jobs on {os.cpu_count()} cores: "
          f"batch wall unlimited {un:.1f} s, --threads 1 {lim:.1f} s, ratio {lim / un:.3f}; "
          f"stores equal value for value: {not any(across.values())}")
    for n, d in across.items():
        if d:
            print(f"  {n}: max |unlimited - threads1| / max |unlimited| = {d:.3g}")
    for label, diff in within.items():
        print(f"  jobs of one setting ({label}) equal value for value: {not any(diff.values())}")
    print(json.dumps({"unlimited_s": un, "threads1_s": lim, "ratio": lim / un, "differences": across,
                      "within": within}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
