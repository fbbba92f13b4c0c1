"""The default pipeline, its no-op reruns and CI of two commits, side by side on one machine.

    python bench/compare_commits.py BASE NEW [--what pipeline,warm,noop,ci] [--dir DIR]

Each commit is cloned fresh into DIR/<sha>/ssmflow (with ../shared beside it, a link to
this checkout's), gets its own virtual environment (`pip install -e '.[test]'`, not
timed), and then runs, BASE first and NEW second, one measurement after the other:

- pipeline: `snakemake --cores all` from nothing (no results/, cold compilation cache);
- warm:     the same again with only the compilation cache kept (results/.jax_cache);
- noop:     `snakemake -n` on the complete run, and `snakemake -n --configfile config/paper.yaml`;
- ci:       `bash .ci/run` (its own fresh virtual environment, the SLURM tests when root).

Wall time and CPU-seconds (user + system of every child process) are measured per step;
for pipeline runs the Snakemake log gives each job's wall time, summed per kind of job
(training or light). Prints a table with NEW / BASE ratios and writes DIR/compare.json.
Run it on a quiet machine: nothing else should share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()


def sh(cmd, cwd, env=None, log=None) -> dict:
    """Run `cmd`, return its wall seconds, CPU seconds (children) and exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") if log else open(os.devnull, "w") as out:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": rc}


def checkout(sha: str, root: Path) -> tuple[Path, dict]:
    """A fresh clone of `sha` with its own venv; returns (project dir, environment)."""
    base = root / sha
    proj = base / "ssmflow"
    if not proj.exists():
        base.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(proj)], check=True)
        subprocess.run(["git", "checkout", "-q", sha], cwd=proj, check=True)
        if SHARED.exists() and not (base / "shared").exists():
            (base / "shared").symlink_to(SHARED)
    venv = base / "venv"
    if not (venv / "bin" / "snakemake").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", ".[test]"], cwd=proj, check=True)
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    return proj, env


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+)")


def job_times(log: Path) -> list[tuple[str, float]]:
    """(rule, wall seconds) of every finished job in a Snakemake log (1 s resolution)."""
    stamp, rule, started, out = None, None, {}, []
    for line in log.read_text().splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule:
            started[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := _DONE.match(line)) and m.group(1) in started:
            name, t0 = started.pop(m.group(1))
            if name != "all":
                out.append((name, (stamp - t0).total_seconds()))
    return out


def job_summary(proj: Path) -> dict:
    logs = sorted((proj / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return {}
    jobs = job_times(logs[-1])
    train = [t for r, t in jobs if r.endswith("_train")]
    light = [t for r, t in jobs if not r.endswith("_train")]
    total = sum(train) + sum(light)
    per_rule: dict[str, list] = {}
    for rule, t in jobs:
        n, s = per_rule.get(rule, (0, 0.0))
        per_rule[rule] = [n + 1, s + t]
    return {
        "jobs": len(jobs),
        "train_jobs": len(train),
        "train_s": sum(train),
        "light_jobs": len(light),
        "light_s": sum(light),
        "light_share": round(sum(light) / total, 3) if total else None,
        "per_rule": {rule: {"jobs": n, "s": t} for rule, (n, t) in sorted(per_rule.items())},  # summed job wall time
    }


def measure(sha: str, root: Path, what: list[str]) -> dict:
    proj, env = checkout(sha, root)
    out: dict = {"commit": sha}
    logs = root / sha / "logs"
    logs.mkdir(exist_ok=True)
    if "pipeline" in what:
        shutil.rmtree(proj / "results", ignore_errors=True)
        shutil.rmtree(proj / ".snakemake", ignore_errors=True)
        out["pipeline"] = sh(["snakemake", "--cores", "all"], proj, env, logs / "pipeline.log") | job_summary(proj)
    if "noop" in what:
        out["noop"] = sh(["snakemake", "-n"], proj, env, logs / "noop.log")
        out["noop_paper"] = sh(["snakemake", "-n", "--configfile", "config/paper.yaml"], proj, env, logs / "noop_paper.log")
    if "warm" in what:
        cache = proj / "results" / ".jax_cache"
        if cache.exists():
            keep = root / sha / "jax_cache"
            shutil.rmtree(keep, ignore_errors=True)
            cache.rename(keep)
            shutil.rmtree(proj / "results")
            (proj / "results").mkdir()
            keep.rename(cache)
            shutil.rmtree(proj / ".snakemake", ignore_errors=True)
            out["warm"] = sh(["snakemake", "--cores", "all"], proj, env, logs / "warm.log") | job_summary(proj)
    if "ci" in what:
        out["ci"] = sh(["bash", ".ci/run"], proj, env, logs / "ci.log")
    return out


def table(base: dict, new: dict) -> str:
    rows = ["| step | measure | base | new | new / base |", "|---|---|---:|---:|---:|"]
    for step in ("pipeline", "warm", "noop", "noop_paper", "ci"):
        if step not in base or step not in new:
            continue
        for key in ("wall_s", "cpu_s", "train_s", "light_s", "light_share", "jobs", "rc"):
            a, b = base[step].get(key), new[step].get(key)
            if a is None or b is None:
                continue
            ratio = f"{b / a:.2f}" if isinstance(a, (int, float)) and a and key not in ("rc", "jobs") else ""
            rows.append(f"| {step} | {key} | {a} | {b} | {ratio} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--what", default="pipeline,noop,warm,ci")
    p.add_argument("--dir", default="/tmp/ssmflow-compare")
    p.add_argument("--only", choices=("base", "new"), help="measure one of the two now (the other's figures are kept in DIR/compare.json)")
    a = p.parse_args(argv)
    root = Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    what = a.what.split(",")
    shas = [subprocess.run(["git", "rev-parse", "--short", c], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip() for c in (a.base, a.new)]
    results = {}
    report = root / "compare.json"
    if report.exists():
        results = json.loads(report.read_text())
    for sha in shas if not a.only else [shas[a.only == "new"]]:
        print(f"[{datetime.now():%H:%M:%S}] {sha}: {','.join(what)}", flush=True)
        results[sha] = results.get(sha, {}) | measure(sha, root, what)
        report.write_text(json.dumps(results, indent=2))
        print(json.dumps(results[sha]), flush=True)
    if all(sha in results for sha in shas):
        print(table(results[shas[0]], results[shas[1]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
