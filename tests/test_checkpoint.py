"""Preemption-safe training: a killed `ssmflow train` resumes from its checkpoint and gives a
trajectory bit-identical to an uninterrupted run, without repeating finished chunks."""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import quadratic_ensemble, tiny_config, venv_env

from ssmflow import config as cfgmod
from ssmflow import grid, store, train

SSMFLOW = [sys.executable, "-m", "ssmflow.cli"]
CHUNK = 1000


def _spec() -> dict:
    """One shard long enough to be killed mid-run (causal convolution: ~31k GD steps, 2 runs)."""
    cfg = tiny_config(F2={"t_record": [0.001, 100.0], "axes": {"a": [0.6], "p0": [0.0001], "kappa": [0.0005], "conv": ["causal"]}})
    cfg["dynamics"].update(chunk_steps=CHUNK, seeds=2, data={"length": 256, "n_seq": 8})
    return grid.expand(cfgmod.validate(cfg), "dynamics")["F2"][0].spec


def _train_cmd(spec_file: Path, out: Path, *extra: str) -> list[str]:
    return [*SSMFLOW, "train", "--spec", f"@{spec_file}", "--out", str(out), *extra]


def _header(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            return json.loads(f.readline())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The spec file and an uninterrupted reference run (started in the background)."""
    tmp = tmp_path_factory.mktemp("ckpt")
    spec_file = tmp / "spec.json"
    spec_file.write_text(json.dumps(_spec()))
    ref = tmp / "reference.zarr"
    proc = subprocess.Popen(_train_cmd(spec_file, ref, "--checkpoint", "none"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=venv_env())
    return {"tmp": tmp, "spec": spec_file, "ref": ref, "ref_proc": proc}


def _reference(job) -> xr.Dataset:
    assert job["ref_proc"].wait(timeout=600) == 0
    return store.open_store(job["ref"]).load()


def _kill_then_resume(job, name: str, sig: int, every: str) -> tuple[str, int]:
    """Start training, send `sig` once a checkpoint (or progress) exists, restart; the restart's log."""
    out, ckpt, log = job["tmp"] / f"{name}.zarr", job["tmp"] / f"{name}.ckpt", job["tmp"] / f"{name}.log"
    cmd = _train_cmd(job["spec"], out, "--checkpoint", str(ckpt), "--checkpoint-every", every)
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=venv_env())
    deadline = time.time() + 300
    if sig == signal.SIGKILL:  # wait for a checkpoint two chunks in, then pull the plug
        while time.time() < deadline and proc.poll() is None and ((_header(ckpt) or {}).get("done", 0) < 2 * CHUNK):
            time.sleep(0.02)
    else:  # SIGTERM (what SLURM sends before preemption or a time-out) as soon as training runs
        while time.time() < deadline and proc.poll() is None and not re.search(r"step \d+/\d+", log.read_text()):
            time.sleep(0.02)
    assert proc.poll() is None, "training finished (or died) before it could be interrupted:\n" + log.read_text()
    proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    first = log.read_text()
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM), (rc, first)
    assert not out.exists()  # nothing half-written
    saved = _header(ckpt)
    assert saved is not None and 0 < saved["done"] < saved["n_total"], saved
    if sig == signal.SIGTERM:
        assert f"checkpoint at step {saved['done']}/" in first and "(SIGTERM" in first, first

    with open(log, "w") as f:  # the restart: same command
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=venv_env(), check=True, timeout=600)
    second = log.read_text()
    assert not ckpt.exists() and not list(job["tmp"].glob(f"{name}.ckpt*"))  # removed once the store is written
    return second, saved["done"]


def _check_resumed(second: str, saved_done: int, ds: xr.Dataset, ref: xr.Dataset) -> int:
    m = re.search(r"resumed at step (\d+)/(\d+) from checkpoint", second)
    assert m, second
    k, n_total = int(m.group(1)), int(m.group(2))
    assert k == saved_done and 0 < k < n_total
    chunks = int(re.search(r"ran (\d+) chunks", second).group(1))
    assert chunks == math.ceil((n_total - k) / CHUNK)  # finished chunks are not repeated
    xr.testing.assert_equal(ds, ref)  # every variable and coord, bit for bit (attrs aside)
    for name in ("p", "loss", "b", "c"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert int(ds.attrs["n_steps"]) == n_total
    return k


def test_sigkilled_training_resumes_bit_identical(job):
    second, saved = _kill_then_resume(job, "killed", signal.SIGKILL, "0")
    ds, ref = store.open_store(job["tmp"] / "killed.zarr").load(), _reference(job)
    k = _check_resumed(second, saved, ds, ref)
    print(f"SIGKILL: resumed at step {k}/{ds.attrs['n_steps']}")


def test_sigterm_saves_a_checkpoint_and_resumes_bit_identical(job):
    # an interval far beyond the run: the only checkpoint is the one SIGTERM triggers
    second, saved = _kill_then_resume(job, "terminated", signal.SIGTERM, "100000")
    ds, ref = store.open_store(job["tmp"] / "terminated.zarr").load(), _reference(job)
    k = _check_resumed(second, saved, ds, ref)
    print(f"SIGTERM: resumed at step {k}/{ds.attrs['n_steps']}")


# ---------------------------------------------------------------- engine-level, in-process


def _toy(curv=(1.0, 2.0)):
    return quadratic_ensemble(curv, n_steps=600, record_every=7.0)


def test_checkpoint_of_another_job_or_a_corrupt_file_is_ignored(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ssmflow.train")
    path = tmp_path / "c.ckpt"
    with train.checkpointing(path, 0, key="job-a"):
        first = train.train_ensemble(*_toy(), chunk_steps=100)
    assert path.exists() and first.resumed_at == 0 and first.chunks_run == 6
    caplog.clear()
    with train.checkpointing(path, 0, key="job-a"):  # finished checkpoint: nothing to redo
        again = train.train_ensemble(*_toy(), chunk_steps=100)
    # 596 steps (the last recorded step is 595), not the 600 of six whole chunks
    assert first.n_steps == 596 and again.resumed_at == 596 and again.chunks_run == 0
    assert "resumed at step 596/596 from checkpoint" in caplog.text, caplog.text
    np.testing.assert_array_equal(again.records["w"], first.records["w"])

    for other in (dict(key="job-b"), dict(key="job-a", curv=(1.0, 3.0)), dict(key="job-a", chunk_steps=50)):
        with train.checkpointing(path, 10**9, key=other.get("key")):
            res = train.train_ensemble(*_toy(other.get("curv", (1.0, 2.0))), chunk_steps=other.get("chunk_steps", 100))
        assert res.resumed_at == 0, other
    assert "ignoring checkpoint" in caplog.text

    path.write_bytes(b'{"format": "ssmflow-checkpoint-1", "digest": "x"\n')  # truncated
    res = train.train_ensemble(*_toy(), chunk_steps=100, checkpoint=path, checkpoint_every_s=10**9)
    assert res.resumed_at == 0


def test_several_ensembles_in_one_job_get_their_own_checkpoints(tmp_path):
    path = tmp_path / "sub" / "c.ckpt"
    with train.checkpointing(path, 0):
        train.train_ensemble(*_toy(), chunk_steps=100)
        train.train_ensemble(*_toy((3.0,)), chunk_steps=100)
    assert path.exists() and path.with_name("c.ckpt.1").exists()
    with train.checkpointing(path, 0):
        a = train.train_ensemble(*_toy(), chunk_steps=100)
        b = train.train_ensemble(*_toy((3.0,)), chunk_steps=100)
    assert a.resumed_at == b.resumed_at == 596  # the real last step, not six whole chunks
    (path.parent / "c.ckpt.tmp-1234").write_bytes(b"")
    (path.parent / "c.ckpt.other").write_bytes(b"")
    train.clear_checkpoints(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.ckpt.other"]


def test_a_failed_checkpoint_write_names_the_file(tmp_path):
    import resource

    def full_disk():  # in the child: files stop growing at 200 bytes, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    path = tmp_path / "c.ckpt"
    code = f"import jax.numpy as jnp; from ssmflow import train; train.save_checkpoint({str(path)!r}, {{'w': jnp.zeros(1000)}}, digest='d', done=0, n_total=1)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=venv_env(), timeout=300, preexec_fn=full_disk)
    assert res.returncode == 1 and f"writing checkpoint failed: File too large: {str(path)!r}" in res.stderr, res.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # the temporary is removed
