"""The `ssmflow` command line (cli.py) as the rules run it: a subprocess, its log on stderr.
Commands fail loudly and early: a store that lacks a chunk, an output that cannot be
written, a full disk, each as one line naming the path (exit 1, no traceback)."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_config, venv_env

from ssmflow import cli, grid, store, study
from ssmflow import config as cfgmod

SSMFLOW = [sys.executable, "-m", "ssmflow.cli"]


def _shard(n: int) -> xr.Dataset:
    ds = xr.Dataset(
        {"p": (("N", "param", "seed", "step"), np.ones((1, 1, 2, 5))), "b": (("N", "param", "seed", "state", "step"), np.ones((1, 1, 2, n, 5)))},
        coords={"N": [n], "param": np.array(["tied"], dtype=object), "seed": [0, 1], "step": np.arange(5), "state": np.arange(n)},
    )
    ds.attrs = store.provenance(f"digest{n}", "float64")
    return ds


def _spec(data: bool = False) -> dict:
    """The first F1 shard of the tiny dynamics config (2 runs), or its experiment's data spec."""
    cfg = cfgmod.validate(tiny_config())
    if data:
        return grid.experiment_spec(cfg, "dynamics", "F1")
    return grid.expand(cfg, "dynamics")["F1"][0].spec


def _full_disk() -> None:
    """In the child: files stop growing at 200 bytes, as on a full disk (EFBIG, not a signal)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))


def test_gather_fails_naming_a_shard_that_lacks_a_chunk(tmp_path, capsys):
    shards = [store.write_atomic(_shard(n), tmp_path / f"N={n}.zarr") for n in (1, 2)]
    (shards[1] / "b" / "c" / "0" / "0" / "0" / "1" / "0").unlink()
    rc = cli.main(["gather", "--study", "dynamics", "--out", str(tmp_path / "all.zarr"), *map(str, shards)])
    err = capsys.readouterr().err
    assert rc == 1 and f"{shards[1]} is incomplete: 'b' lacks 1 chunk(s)" in err, err
    assert "Traceback" not in err and not (tmp_path / "all.zarr").exists()


def test_train_checks_its_output_before_training(tmp_path):
    (tmp_path / "results").write_text("a file where the output folder should be")
    out = tmp_path / "results" / "shard.zarr"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec()))
    res = subprocess.run([*SSMFLOW, "train", "--spec", f"@{spec}", "--out", str(out), "--checkpoint", "none"],
                         capture_output=True, text=True, env=venv_env(), timeout=600)
    assert res.returncode == 1, res.stderr[-3000:]
    assert f"ssmflow train: cannot write {out}: {tmp_path / 'results'} is a file, not a folder" in res.stderr, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "training dynamics" not in res.stderr  # refused before the work


def test_a_full_disk_names_the_store(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec(data=True)))
    out = tmp_path / "data.zarr"
    res = subprocess.run([*SSMFLOW, "data", "--spec", f"@{spec}", "--out", str(out)], capture_output=True, text=True,
                         env=venv_env(), timeout=600, preexec_fn=_full_disk)
    assert res.returncode == 1, res.stderr[-3000:]
    assert f"ssmflow data: writing store {out} failed: File too large" in res.stderr, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.json"]  # no temporary is left


def test_a_job_log_holds_ssmflow_lines_and_no_backend_probes(tmp_path):
    # JAX logs at INFO every backend it probed and could not load ("Unable to initialize
    # backend 'tpu'"): a job log shows ssmflow's INFO lines and other libraries' warnings only
    cfg = cfgmod.validate(tiny_config())
    spec = study.get("dynamics").data_keys(grid.experiment_spec(cfg, "dynamics", "F1"))
    cmd = [sys.executable, "-m", "ssmflow.cli", "data", "--spec", json.dumps(spec), "--out", str(tmp_path / "data.zarr")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=venv_env(), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"^\S+ \S+ ssmflow INFO wrote ", res.stderr, re.M), res.stderr
    assert "Unable to initialize backend" not in res.stderr, res.stderr
    assert not re.search(r"^\S+ \S+ (?!ssmflow)\S+ (INFO|DEBUG) ", res.stderr, re.M), res.stderr


THREADED_MATMUL = """
import resource, sys, time
from ssmflow import cli
cli.limit_threads(int(sys.argv[1]) if len(sys.argv) > 1 else None)
import jax, jax.numpy as jnp
f = jax.jit(lambda a: jnp.tanh(a @ a).sum())
x = jnp.ones((1500, 1500))
f(x).block_until_ready()  # compile outside the timing
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
for _ in range(15):
    f(x).block_until_ready()
r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
print((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / wall)
"""


HEAP_FAULTS = """
import resource, sys
from ssmflow import cli
applied = cli.retain_heap() if sys.argv[1] == "retain" else None
import jax, jax.numpy as jnp
f = jax.jit(lambda a: jnp.fft.irfft(jnp.fft.rfft(a) * 2.0, n=a.shape[-1]).sum(axis=0))
x = jnp.ones((2048, 4096), jnp.float32)
temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes
for _ in range(5):
    f(x).block_until_ready()  # compile, then let the heap reach its size
r0 = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(10):
    f(x).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0.ru_minflt) / 10
print(applied, temp, faults * resource.getpagesize() / temp)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_retain_heap_stops_the_page_faults_of_xla_temporaries():
    # A program whose temporary buffer (67 MB: the rfft and the irfft) is above glibc's
    # largest dynamic mmap threshold (32 MB) and output small: by default every call maps
    # the buffer afresh and faults in every page of it (fraction 1.0); with `retain_heap`
    # (every JAX command's setup) the pages stay mapped across calls (0.00-0.08 measured)
    out = {}
    for mode in ("default", "retain"):
        res = subprocess.run([sys.executable, "-c", HEAP_FAULTS, mode], capture_output=True, text=True,
                             env=venv_env(), timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        applied, temp, fraction = res.stdout.split()
        assert int(temp) > 64 * 2**20, res.stdout  # the premise: above the mmap threshold's ceiling
        out[mode] = (applied, float(fraction))
    assert out["retain"][0] == "True", out
    assert out["default"][1] > 0.5, out  # faulted afresh each call
    assert out["retain"][1] < 0.25, out


def test_threads_limits_the_cores_a_job_computes_on():
    # `--threads 1` (the rules pass their declared `threads`) holds JAX's CPU client to one
    # thread: a large matmul, which XLA otherwise spreads over every core, then takes at
    # most one core's CPU time per second of wall time (1.97 unlimited on 2 idle cores)
    env = venv_env()
    env.pop("NPROC", None)  # the suite's own limit (conftest) must not make this pass
    res = subprocess.run([sys.executable, "-c", THREADED_MATMUL, "1"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.split()[-1]) < 1.2, res.stdout
    with pytest.raises(SystemExit, match="--threads must be a positive integer, got 0"):
        cli.limit_threads(0)


def test_jobs_ask_xla_for_deterministic_gpu_kernels(monkeypatch):
    from ssmflow.cli import deterministic_gpu

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    deterministic_gpu()
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=true"
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=false")  # a user's own choice stays
    deterministic_gpu()
    assert os.environ["XLA_FLAGS"] == "--xla_gpu_deterministic_ops=false"
