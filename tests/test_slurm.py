"""The real workflow on a real SLURM cluster, through `--workflow-profile workflow/profiles/slurm`.

Needs a running cluster: `tests/cluster/start_local_slurm.sh` (as root) starts a single-node
one on loopback; `.ci/run` does so. Without one these tests are skipped with the reason, and
with SSMFLOW_REQUIRE_SLURM=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
from conftest import make_project, tiny_config, venv_env

from ssmflow import plan, store
from ssmflow.resources import train_mem_mb

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

SMK = [sys.executable, "-m", "snakemake"]
# Snakemake with Python's Ctrl-C handler whatever SIGINT disposition the suite inherited: a
# shell without job control starts a background command (`bash .ci/run &`) with SIGINT
# ignored, every child inherits that, and Python then installs no KeyboardInterrupt handler.
SMK_INTERRUPTIBLE = [sys.executable, "-c", "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "sys.argv[0] = 'snakemake'; runpy.run_module('snakemake', run_name='__main__', alter_sys=True)"]
# the shipped profile, plus a fast first status poll (plugin default: 40 s)
SLURM = ["--workflow-profile", "workflow/profiles/slurm", "--slurm-init-seconds-before-status-checks", "2"]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)")


def cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a cluster is up and usable."""
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo not on PATH); start a local cluster with tests/cluster/start_local_slurm.sh (root)"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld not responding"
    if res.returncode != 0:
        return f"SLURM cluster not up (sinfo: {res.stderr.strip()[:200]}); start it with tests/cluster/start_local_slurm.sh"
    states = [s.strip().rstrip("*~#$@") for s in res.stdout.split()]
    if not any(s in ("idle", "mix", "alloc", "comp") for s in states):
        return f"no usable SLURM node (states: {states})"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def cluster():
    problem = cluster_problem()
    if problem is not None:
        if os.environ.get("SSMFLOW_REQUIRE_SLURM") == "1":
            pytest.fail(f"SSMFLOW_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


def run_smk(proj: Path, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Snakemake in `proj`; on time-out SIGINT (which makes it scancel its SLURM jobs), then kill."""
    proc = subprocess.Popen([*SMK, *args], cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or venv_env())
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        raise AssertionError(f"snakemake timed out after {timeout} s:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def submitted(out: str, rule: str | None = None) -> dict[str, str]:
    """SLURM job id -> its SLURM log path, from Snakemake's output (only `rule`'s jobs if given)."""
    jobs = {m.group(1): m.group(2) for m in SUBMITTED.finditer(out)}
    return {j: log for j, log in jobs.items() if rule is None or f"/rule_{rule}/" in log}


def canonical_csv(path: Path) -> pd.DataFrame:
    """A metrics CSV with sorted columns and rows: the column order of a CSV written from a
    reopened Zarr store follows the order in which zarr lists its arrays, which varies."""
    df = pd.read_csv(path)
    df = df[sorted(df.columns)]
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def shard_stores(proj: Path) -> list[Path]:
    return sorted(proj.glob("results/dynamics/*/shards/*.zarr"))


@pytest.fixture(scope="module")
def slurm_and_local(cluster, tmp_path_factory):
    """The tiny config run once through SLURM and once locally (no profile)."""
    cfg = tiny_config()
    on_slurm = make_project(tmp_path_factory.mktemp("slurm"), cfg)
    local = make_project(tmp_path_factory.mktemp("local"), cfg)
    t0 = time.time()
    # the local run goes on beside the SLURM run (which mostly waits for job starts and polls)
    loc = subprocess.Popen([*SMK, "--cores", "1"], cwd=local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=venv_env())
    # plan, then submit (README, "Scaling up"): each training job asks for the plan's resources
    planned = subprocess.run([sys.executable, "-m", "ssmflow.cli", "plan", "--json", "--jobs", "1"], cwd=on_slurm,
                             env=venv_env(), capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr[-3000:]
    (on_slurm / "plan.json").write_text(planned.stdout)
    res = run_smk(on_slurm, *SLURM)
    slurm_s = time.time() - t0
    loc_out, _ = loc.communicate(timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    assert loc.returncode == 0, loc_out[-4000:]
    print(f"\ntiny config, side by side: SLURM run {slurm_s:.0f} s, both done after {time.time() - t0:.0f} s")
    return on_slurm, local, res.stdout


def test_every_training_job_ran_as_a_slurm_job(slurm_and_local):
    proj, _, out = slurm_and_local
    jobs = submitted(out)
    train = {j for j, log in jobs.items() if "/rule_dynamics_train/" in log}
    data = {j for j, log in jobs.items() if "/rule_dynamics_data/" in log}
    shards = shard_stores(proj)
    assert len(shards) == 3 and len(train) == 3 and len(data) == 2, (shards, jobs)  # 3 shards; data of F1, F3
    ids = {str(store.open_store(s).attrs["slurm_job_id"]) for s in shards}
    assert ids == train, (ids, jobs)  # each shard written inside its own SLURM job
    # only data synthesis and training are submitted: checks, gather, theory, evaluate and figures are local rules
    assert set(jobs) == train | data, jobs
    for exp in ("F1", "F3"):
        gathered = store.open_store(proj / f"results/dynamics/{exp}/trajectories.zarr")
        assert all(re.fullmatch(r"\d+", str(j)) for j in gathered.attrs["slurm_job_ids"])
    assert not list(proj.glob("results/.checkpoints/**/*.ckpt"))  # removed once the stores exist


def slurm_request(job_id: str) -> tuple[int, int]:
    """(memory in MB, time limit in minutes) that SLURM holds for a job (`scontrol show job`;
    the local cluster keeps finished jobs for MinJobAge = 600 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True).stdout
    mem = re.search(r"\bMinMemoryNode=(\d+)([MG])\b", out)
    days, hms = re.search(r"\bTimeLimit=(?:(\d+)-)?([\d:]+)\b", out).groups()
    h, m, s = (["0"] * 2 + hms.split(":"))[-3:]
    assert mem and s == "00", out
    return int(mem.group(1)) * (1024 if mem.group(2) == "G" else 1), int(days or 0) * 1440 + int(h) * 60 + int(m)


def test_each_training_job_asks_slurm_for_its_planned_resources(slurm_and_local):
    """The memory and time limit SLURM granted each training job are the plan's prediction
    with its safety factors (ssmflow.plan), not the defaults."""
    proj, _, out = slurm_and_local
    rows = {r["shard"]: r for r in json.loads((proj / "plan.json").read_text())["shards"]}
    jobs = submitted(out, "dynamics_train")
    assert len(rows) == len(jobs) == 3, (rows, jobs)
    for shard in shard_stores(proj):
        job = str(store.open_store(shard).attrs["slurm_job_id"])
        r = rows[shard.stem]
        assert r["study"] == "dynamics" and not r["cached"]
        want = (plan.job_mem_mb(r["peak_mb"]), plan.job_runtime_min(r["wall_s"]))
        assert slurm_request(job) == want, (shard.stem, job, r)
        assert want != (train_mem_mb(r["runs"]), 60)  # the defaults would be another request


def test_slurm_results_equal_a_local_run(slurm_and_local):
    proj, local, _ = slurm_and_local
    for exp in ("F1", "F3"):
        for name in ("trajectories.zarr", "theory.zarr", "metrics.zarr"):
            a = store.open_store(proj / f"results/dynamics/{exp}/{name}").load()
            b = store.open_store(local / f"results/dynamics/{exp}/{name}").load()
            xr.testing.assert_equal(a, b)  # data and coords, bit for bit; attrs (time, job ids) aside
        a, b = (canonical_csv(p / f"results/dynamics/{exp}/metrics.csv") for p in (proj, local))
        pd.testing.assert_frame_equal(a, b)
    assert (proj / "results/dynamics/figures/F1.png").exists() and (proj / "results/dynamics/figures/F3.png").exists()
    # the local run had no SLURM job
    assert store.open_store(next(iter(shard_stores(local)))).attrs["slurm_job_id"] == ""


def test_a_failing_job_makes_snakemake_exit_nonzero(cluster, tmp_path):
    """A real failure: the run archive (`--reuse results/.runs`) lies where a regular file
    is, so every training job fails (inside its SLURM job) and no other job does."""
    cfg = tiny_config(F1={"t_record": [0.01, 20.0], "axes": {"a": [0.5], "p0": [0.0001], "kappa": [0.02]}})
    proj = make_project(tmp_path, cfg)
    (proj / "results").mkdir()
    (proj / "results/.runs").write_text("a file where the run archive's directory is expected\n")
    res = run_smk(proj, *SLURM)
    assert res.returncode != 0, res.stdout[-4000:]
    jobs = submitted(res.stdout, "dynamics_train")
    assert len(jobs) == 2, jobs  # the training job and the profile's one retry, both on SLURM
    assert len(submitted(res.stdout, "dynamics_data")) == 1  # its data job ran (on SLURM too) and succeeded
    assert re.search(r"Error in rule dynamics_train", res.stdout), res.stdout[-4000:]
    assert not shard_stores(proj) and not (proj / "results/dynamics/F1/trajectories.zarr").exists()
    log = (proj / "results/logs/dynamics/F1/train_N=1_param=untied_depth=1_conv=circular.log").read_text()
    assert ".runs" in log, log[-2000:]


def test_an_interrupted_run_resumes_from_the_checkpoint(cluster, tmp_path):
    """SIGINT to Snakemake cancels the running SLURM job mid-training; the rerun resumes the
    job from its checkpoint (not from step 0) and completes."""
    cfg = tiny_config(F2={"t_record": [0.001, 100.0], "axes": {"a": [0.6], "p0": [0.0001], "kappa": [0.0005], "conv": ["causal"]}})
    cfg["dynamics"].update(chunk_steps=1000, seeds=2, data={"length": 256, "n_seq": 8})
    cfg["checkpoint_every_s"] = 0  # a checkpoint after every chunk
    proj = make_project(tmp_path, cfg)
    name = "N=1_param=untied_depth=1_conv=causal"
    ckpt = proj / f"results/.checkpoints/dynamics/F2/{name}.ckpt"
    log = proj / f"results/logs/dynamics/F2/train_{name}.log"
    shard = proj / f"results/dynamics/F2/shards/{name}.zarr"

    target = "results/dynamics/F2/trajectories.zarr"  # training + gather; theory and figures add nothing here
    output = tmp_path / "snakemake.out"  # a file, so that the test reads it while Snakemake runs
    with open(output, "w") as sink:
        proc = subprocess.Popen([*SMK_INTERRUPTIBLE, *SLURM, target], cwd=proj, stdout=sink, stderr=subprocess.STDOUT, text=True,
                                env=venv_env())
    deadline, done = time.time() + 300, 0
    while time.time() < deadline and proc.poll() is None and done < 2000:
        time.sleep(0.1)
        try:
            done = json.loads(ckpt.read_bytes().split(b"\n", 1)[0]).get("done", 0)
        except (OSError, ValueError):
            done = 0
    assert proc.poll() is None and done >= 2000, f"no checkpoint while training ran: {proc.poll()}"
    # Ctrl-C, as a user presses it: again while Snakemake has not taken it (its log handler
    # drops a KeyboardInterrupt raised while it writes a line: snakemake/logging.py, `except
    # (KeyboardInterrupt, SystemExit): pass`); once taken, Snakemake scancels its SLURM jobs
    # and no further signal is sent.
    for _ in range(60):
        if proc.poll() is not None or "Terminating processes on user request" in output.read_text():
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(1)
    proc.wait(timeout=120)
    out = output.read_text()
    assert proc.returncode != 0, out[-3000:]
    (first_id,) = submitted(out, "dynamics_train")
    assert not shard.exists() and ckpt.exists()
    for _ in range(120):  # the cancelled job leaves the queue
        if "RUNNING" not in subprocess.run(["squeue", "-h", "-j", first_id, "-o", "%T"], capture_output=True, text=True).stdout:
            break
        time.sleep(0.5)

    res = run_smk(proj, *SLURM, target)
    assert res.returncode == 0, res.stdout[-4000:]
    (second_id,) = submitted(res.stdout, "dynamics_train")
    assert not submitted(res.stdout, "dynamics_data")  # the data store was complete: not redone
    text = log.read_text()
    m = re.search(r"resumed at step (\d+)/(\d+)", text)
    assert m and int(m.group(1)) >= 2000, text[-3000:]
    k, n_total = int(m.group(1)), int(m.group(2))
    assert int(re.search(r"ran (\d+) chunks", text).group(1)) == -(-(n_total - k) // 1000)
    ds = store.open_store(shard)
    assert str(ds.attrs["slurm_job_id"]) == second_id != first_id and int(ds.attrs["n_steps"]) == n_total
    assert not ckpt.exists() and (proj / target).exists()
    print(f"\ninterrupted SLURM job {first_id} resumed as job {second_id} at step {k}/{n_total}")
