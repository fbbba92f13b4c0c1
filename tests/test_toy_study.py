"""Adding a study: a toy study that lives in tests/toystudy runs end to end through the
generic rules (data -> train -> gather -> theory -> evaluate -> figure), registered by
`SSMFLOW_STUDIES` alone: no file of ssmflow or of the workflow names it (README "Add a study")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, make_project, venv_env

from ssmflow import store

pytestmark = pytest.mark.workflow

TOY = {
    "studies": ["toy"],
    "compile_cache": "results/.jax_cache",
    "toy": {"seeds": 2, "steps": 100, "record_every": 10, "experiments": {"fit": {"axes": {"dim": [2, 3], "lr": [0.05, 0.2]}}}},
}


def toy_env() -> dict:
    env = venv_env()
    env["SSMFLOW_STUDIES"] = "toystudy"
    env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def smk(proj: Path, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=proj, capture_output=True, text=True, env=toy_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("toy"), TOY)
    (proj / "workflow/report/toy_figure.rst").write_text("Toy least squares: GD losses (dots) on the closed form (lines).\n")
    smk(proj)
    return proj


def test_toy_study_runs_every_generic_stage(toy):
    res = toy / "results/toy/fit"
    data = store.open_store(res / "data.zarr")
    assert dict(data.sizes) == {"seed": 2, "sample": 64, "feature": 3}
    assert sorted(p.name for p in (res / "shards").iterdir()) == ["dim=2.zarr", "dim=3.zarr"]
    traj = store.open_store(res / "trajectories.zarr")
    assert traj.dim.values.tolist() == [2, 3] and traj.sizes["feature"] == 3  # ragged feature dim padded
    assert np.isnan(traj.w.sel(dim=2, feature=2)).all()
    m = pd.read_csv(res / "metrics.csv")
    assert len(m) == 2 * 2 * 2 and (m.max_rel_err_loss < 1e-10).all()  # the engine against the closed form, float64
    assert (toy / "results/toy/figures/loss_fit.png").stat().st_size > 10_000


def test_toy_rules_are_the_generic_stages(toy):
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall"], cwd=toy, capture_output=True, text=True, env=toy_env())
    jobs = res.stdout.split("Job stats:")[1].split("total")[0]
    for rule, n in {"toy_data": 1, "toy_train": 2, "toy_gather": 1, "toy_theory": 1, "toy_evaluate": 1, "toy_figure": 1}.items():
        assert f"{rule}" in jobs and int(jobs.split(rule)[1].split()[0]) == n, jobs
    # every job that may run JAX programs (data, train and the stages) uses the compile cache
    commands = [line.split("Shell command:", 1)[1].strip() for line in res.stdout.splitlines() if "Shell command: ssmflow " in line]
    jax_jobs = [c for c in commands if c.split()[1] in ("data", "train", "stage", "study-store", "checks")]
    assert len(jax_jobs) == 1 + 2 + 2 and all(" --cache " in c for c in jax_jobs), commands


def test_the_compile_cache_covers_jobs_that_import_jax_after_it_is_set(tmp_path):
    """`cli.enable_compilation_cache` before JAX is imported (a stage job imports it late,
    or not at all) still makes JAX keep its programs in the cache."""
    cache = tmp_path / "cache"
    code = ("from ssmflow import cli; import sys; cli.enable_compilation_cache(sys.argv[1]); "
            "import jax, jax.numpy as jnp; jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(7)).block_until_ready()")
    subprocess.run([sys.executable, "-c", code, str(cache)], check=True, env=venv_env(), timeout=120)
    assert any(cache.iterdir()), "no program was written to the cache"


def test_the_toy_is_not_known_without_registration(tmp_path):
    proj = make_project(tmp_path, TOY)
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=proj, capture_output=True, text=True, env=venv_env())
    assert res.returncode != 0 and "toy" in res.stdout + res.stderr
    assert "dynamics" in res.stdout + res.stderr  # the error names the registered studies
