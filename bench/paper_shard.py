"""One paper-scale shard for a bounded number of steps: the plan's probe against the real job.

    python bench/paper_shard.py STUDY EXPERIMENT SHARD [--config config/paper.yaml]
                                [--steps 40] [--chunk 10] [--batching map|vmap] [--threads 1]
                                [--set settings.record_points=2 ...]

The shard's spec is taken from the config (`ssmflow spec`) and bounded: `steps` (in the
spec's `common` or `settings`) set to --steps and `chunk_steps` to --chunk, so the real
job runs a first chunk and a few steady ones in minutes instead of hours; --batching
overrides the shard's batching. Then, one after the other (nothing else should run):

1. `ssmflow data` and `ssmflow train` of the bounded spec, cold (no compilation cache), as
   the training rule runs them: the job's steady time per step (its chunks after the
   first), its compilation (first chunk less a steady one) and its peak resident memory;
2. `ssmflow probe` of the same spec, as `ssmflow plan` runs it (within the memory this
   host has available): the predicted time per ensemble step, compilation, setup and
   evaluation (the probe runs a few items of each evaluation loop) and peak.

It prints both and their ratios, and the full-length job's training time at the probed
step time. The time per step is what the
issue's 30 % target is about: it does not depend on the number of steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssmflow import plan
from ssmflow import resources as res

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_profile import parse_profile, steady_step_s  # noqa: E402



def ssmflow(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssmflow.cli", *args], capture_output=True, text=True, **kw)


def bounded_spec(a) -> tuple[dict, int]:
    out = ssmflow("spec", "--config", a.config, "--study", a.study, "--experiment", a.experiment, "--shard", a.shard,
                  check=True)
    spec = json.loads(out.stdout)
    where = next((k for k in ("common", "settings") if "steps" in spec.get(k, {})), None)
    if where is None:
        raise SystemExit(f"{a.study}/{a.experiment}: no `steps` in the spec's common or settings to bound")
    full = int(spec[where]["steps"])
    spec[where]["steps"] = a.steps
    spec["common"]["chunk_steps"] = a.chunk
    if a.batching:
        spec["common"]["batching"] = a.batching
    set_keys(spec, a.set, strict=True)
    return spec, full


def set_keys(spec: dict, items: list[str], strict: bool) -> dict:
    """Apply `--set PATH=JSON` items to a spec (the data stage's spec takes those it has)."""
    for item in items:
        path, _, value = item.partition("=")
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            node = node.get(key, {})
        if leaf in node:
            node[leaf] = json.loads(value)
        elif strict:
            raise SystemExit(f"--set {item}: the spec has no {path}")
    return spec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study")
    p.add_argument("experiment")
    p.add_argument("shard")
    p.add_argument("--config", default="config/paper.yaml")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--batching", choices=("map", "vmap"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="PATH=JSON",
                   help="set a key of the bounded spec, e.g. settings.record_points=2 (an evaluation that "
                        "does not scale with the steps, shortened; the step time does not depend on it)")
    a = p.parse_args(argv)
    spec, full_steps = bounded_spec(a)
    with tempfile.TemporaryDirectory(prefix="ssmflow-paper-shard-") as tmp:
        tmp = Path(tmp)
        (tmp / "spec.json").write_text(json.dumps(spec))
        data_spec = json.dumps(set_keys(json.loads(ssmflow("spec", "--config", a.config, "--study", a.study,
                                                           "--experiment", a.experiment, "--data", check=True).stdout),
                                        a.set, strict=False))
        ssmflow("data", "--spec", data_spec, "--out", str(tmp / "data.zarr"), "--threads", str(a.threads), check=True)
        t0 = time.perf_counter()
        job = ssmflow("train", "--spec", f"@{tmp / 'spec.json'}", "--data", str(tmp / "data.zarr"), "--out",
                      str(tmp / "shard.zarr"), "--threads", str(a.threads), "--checkpoint", "none")
        job_wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child yet: the job
        if job.returncode != 0:
            print(job.stderr[-3000:], file=sys.stderr)
            return 1
        budget = res.host_available_mb() - plan.PROBE_MEM_RESERVE_MB
        t0 = time.perf_counter()
        pr = ssmflow("probe", "--spec", f"@{tmp / 'spec.json'}", "--out", str(tmp / "probe.json"),
                     "--threads", str(a.threads), "--mem-budget", str(budget))
        probe_wall = time.perf_counter() - t0
        if pr.returncode not in (0, plan.PROBE_TOO_BIG_EXIT):
            print(pr.stderr[-3000:], file=sys.stderr)
            return 1
        probe = json.loads((tmp / "probe.json").read_text())
        pred = plan.predict(probe)
        if "too_big" in probe:
            print(f"probe: not run, needs {pred['peak_mb']:.0f} MB, {budget} MB available here")
            return 1
    log = job.stdout + job.stderr
    parts = parse_profile(log)
    step = steady_step_s(parts)
    compile_s = parts["compile"]
    print(f"{a.study}/{a.experiment}/{a.shard}: {spec['common'].get('batching', 'map')} batching, {a.threads} thread(s), "
          f"bounded to {a.steps} steps in chunks of {a.chunk} (full job: {full_steps} steps)")
    print("| | probe (plan) | real job | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| time per ensemble step | {pred['step_s']:.4g} s | {step:.4g} s | {pred['step_s'] / step:.2f} |")
    print(f"| compilation | {pred['compile_s']:.1f} s | {compile_s:.1f} s | {pred['compile_s'] / compile_s:.2f} |")
    print(f"| peak memory | {pred['peak_mb']:.0f} MB | {peak_mb:.0f} MB | {pred['peak_mb'] / peak_mb:.2f} |")
    job_other = parts["setup"] + parts["evaluate"] + parts["write"]  # model setup, evaluation, store write
    print(f"| setup, evaluation and write | {pred['setup_eval_s']:.1f} s | {job_other:.1f} s | "
          f"{pred['setup_eval_s'] / job_other:.2f} |")
    print(f"| wall time of the bounded job | {pred['wall_s']:.1f} s | {job_wall:.1f} s | {pred['wall_s'] / job_wall:.2f} |")
    print(f"probe took {probe_wall:.1f} s; the full job's {full_steps} steps at the probed step time: "
          f"{pred['step_s'] * full_steps / 3600:.2f} h of training (its evaluation, which the bounded "
          "spec may shorten, not included; `ssmflow plan` of the unbounded config predicts both)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
