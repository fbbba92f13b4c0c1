"""Shared fixtures: float64 JAX, strict promotion, the repository root and a config factory."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from ssmflow.cli import retain_heap

# The in-process tests compute with the allocator settings every JAX job of the workflow
# runs with (`ssmflow.cli.retain_heap`), set before JAX starts its thread pools.
retain_heap()

# The suite compiles with most of XLA's optimizations off (`jax_disable_most_optimizations`:
# backend optimization level 0, no expensive LLVM passes), in-process and in every job of
# the small pipelines it runs (subprocesses inherit the variable): its programs are small and
# run briefly, so compiling them is most of the in-process tests' time (two workers: 601
# CPU-s with the optimizations, 442 without; BENCHMARKS.md, "Test suite"). The
# tests check identities and tolerances, which do not depend on how the code was optimized,
# and compare runs made under one setting. The default config's run (`default_run`), whose
# numbers are the acceptance checks, runs as a user's run does: with the optimizations.
UNOPTIMIZED = "JAX_DISABLE_MOST_OPTIMIZATIONS"
os.environ.setdefault(UNOPTIMIZED, "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]

# Each pytest-xdist worker computes on one thread (`ssmflow.cli.limit_threads`): the
# workers are as many as the cores, so a worker that spread a matmul over every core would
# only contend with the others (and with the single-threaded jobs of the pipelines the
# tests run). Set before any test computes: XLA reads it when its CPU client starts.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("NPROC", "1")

# Every Snakemake project a test makes compiles into one JAX persistent cache, absolute and
# shared by the whole session, so the many small pipelines of the suite compile each
# program once, not once per project copy. A config naming another cache (a test of the
# cache itself) keeps it.
DEFAULT_CACHE = "results/.jax_cache"
CACHE_ENV = "SSMFLOW_TEST_JAX_CACHE"


def session_cache() -> str:
    """The session's compile cache directory (made on first use, then read from the env).

    Under pytest-xdist every worker of one run uses the same directory (named by the run's
    id), so a program compiled by one worker is a cache hit for the other.
    """
    if not os.environ.get(CACHE_ENV):
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        if run_id:
            path = Path(tempfile.gettempdir()) / f"ssmflow-test-jax-cache-{run_id}"
            path.mkdir(exist_ok=True)
            os.environ[CACHE_ENV] = str(path)
        else:
            os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="ssmflow-test-jax-cache-")
    return os.environ[CACHE_ENV]


# The suite runs on pytest-xdist workers (`-n auto` in pyproject.toml), scheduled by
# `SuiteScheduling`: each test module is one unit of work, so its module-scoped fixtures (a
# small pipeline, a trained model) are made once; the tests that read the session's
# `default_run` form one unit, so that run is made once: every test of `DEFAULT_RUN_MODULES`,
# and the tests named `test_default*` of `MIXED_MODULES`, whose other tests use the module's
# own small projects and go out as the module's unit, beside the default run on the other
# worker (the default run's unit is the longest: what it need not do, it should not wait
# for). Units go out in the order of `UNIT_ORDER`, then as collected: the default run first
# and the SLURM tests next on the other worker (they mostly wait for the cluster, which
# leaves the cores to the default run).
DEFAULT_RUN_MODULES = ("tests/test_icl_workflow.py", "tests/test_freqbias_workflow.py")
MIXED_MODULES = ("tests/test_workflow.py", "tests/test_s4d_workflow.py")
DEFAULT_RUN_TESTS = "test_default"
SHARED_RUN_UNIT = "default_run"
UNIT_ORDER = (SHARED_RUN_UNIT, "tests/test_slurm.py")


def work_unit(nodeid: str) -> str:
    """The unit of work (see above) of a test."""
    module, _, name = nodeid.partition("::")
    if module in DEFAULT_RUN_MODULES or (module in MIXED_MODULES and name.startswith(DEFAULT_RUN_TESTS)):
        return SHARED_RUN_UNIT
    return module


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "default_run" in getattr(item, "fixturenames", ()) and work_unit(item.nodeid) != SHARED_RUN_UNIT:
            raise pytest.UsageError(f"{item.nodeid} uses the session's default_run: add its module to "
                                    "DEFAULT_RUN_MODULES in tests/conftest.py, or name it test_default* in one of "
                                    "MIXED_MODULES, so the run is made once")
    rank = {unit: k for k, unit in enumerate(UNIT_ORDER)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # stable


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order of the collection
    return SuiteScheduling(config, log)


@pytest.fixture
def default_config() -> dict:
    with open(ROOT / "config" / "config.yaml") as f:
        return yaml.safe_load(f)


def tiny_config(**experiments) -> dict:
    """A small dynamics config (short sequences, few seeds) for fast workflow tests."""
    base = {
        "studies": ["dynamics"],
        "compile_cache": "results/.jax_cache",
        "dynamics": {
            "precision": "float64",
            "seeds": 2,
            "record_points": 200,
            "chunk_steps": 500,
            "data": {"length": 128, "n_seq": 8},
            "experiments": experiments
            or {
                "F1": {"t_record": [0.01, 20.0], "axes": {"a": [0.5], "p0": [0.0001], "kappa": [0.02]}},
                "F3": {"t_record": [0.0001, 15.0], "axes": {"N": [1, 2], "param": ["tied"], "p0": [0.000001], "kappa": [0.02]}},
            },
        },
    }
    return copy.deepcopy(base)


def million_run_config(**top) -> dict:
    """tiny_config with one shard of 1,000,000 runs: 2 seeds x 1000 poles a x 500 initial products p0."""
    cfg = tiny_config()
    cfg["dynamics"]["experiments"]["F1"]["axes"].update(a=[round(-0.999 + 0.0018 * k, 4) for k in range(1000)],
                                                        p0=[1e-4 * (k + 1) for k in range(500)])
    cfg.update(top)
    return cfg


#: what the refusal names: study, experiment, shard, its runs, its memory, the limit, what to do
MILLION_RUN_FRAGMENTS = ["study dynamics, experiment F1, shard N=1_param=untied_depth=1_conv=circular",
                         "1000000 runs", "2 seeds x a (1000 values) x p0 (500 values)", "ask for 20001500 MB",
                         "the limit is max_job_mem_mb=64000 MB", "Lower `seeds`", "max_runs_per_shard (e.g. to 3125",
                         "never along seeds"]


def make_project(tmp: Path, config: dict | str) -> Path:
    """A copy of the workflow (Snakefile, rules, schemas, package sources) with `config`
    (a dict, or the text of config/config.yaml as written)."""
    for name in ("Snakefile", "workflow"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp / name)
    shutil.copytree(ROOT / "src", tmp / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (tmp / "config").mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "README.md", tmp / "config" / "README.md")
    if isinstance(config, str):
        (tmp / "config" / "config.yaml").write_text(config)
        return tmp
    if config.get("compile_cache") == DEFAULT_CACHE:
        config = {**config, "compile_cache": session_cache()}
    with open(tmp / "config" / "config.yaml", "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    return tmp


# The default config's acceptance checks of the four studies read one run of it, made once
# per session (`default_run`): each study's section exactly as in config/config.yaml, with
# the experiments those checks read (dynamics F1 and F3, s4d delay, tones and ablation; icl and freqbias whole).
# One Snakemake process schedules all four, so one study's gate (its checks job) or last
# training job never leaves a core idle while another study has work.
ACCEPTANCE_EXPERIMENTS = {"dynamics": ("F1", "F3"), "s4d": ("delay", "tones", "lra", "ablation")}


def acceptance_config() -> dict:
    """The default config, its experiments narrowed to those the acceptance checks read."""
    with open(ROOT / "config" / "config.yaml") as f:
        cfg = yaml.safe_load(f)
    for study, keep in ACCEPTANCE_EXPERIMENTS.items():
        cfg[study]["experiments"] = {name: exp for name, exp in cfg[study]["experiments"].items() if name in keep}
    return cfg


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A complete run of `acceptance_config()` (all four studies, --cores 2), read-only for
    the tests that use it: they check its stores and dry-run edits (restored) on it."""
    proj = make_project(tmp_path_factory.mktemp("default_run"), acceptance_config())
    smk(proj, optimized=True)
    return proj


def smk(proj: Path, *args: str, check: bool = True, optimized: bool = False):
    """Real Snakemake (`--cores 2`) in a project; raises with its output's tail when it fails.
    `optimized`: its jobs compile with XLA's optimizations, as outside the suite (`UNOPTIMIZED`)."""
    import subprocess

    env = venv_env()
    if optimized:
        env.pop(UNOPTIMIZED, None)
    res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=proj, capture_output=True, text=True,
                         env=env)
    if check and res.returncode != 0:
        raise AssertionError(res.stdout[-3000:] + res.stderr[-3000:])
    return res


def venv_env() -> dict:
    """The environment for subprocesses: this interpreter's bin first on PATH (the `ssmflow`
    and `snakemake` commands the rules run), whether or not the venv was activated."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def assert_config_error(cfg: dict, fragments) -> None:
    """`cfg` is refused by validation with a message holding every fragment (key, value, allowed)."""
    import pytest

    from ssmflow import config as cfgmod

    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.validate(cfg)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


# Config refusals through real Snakemake, every case of the suite in one Snakemake process
# (tests/snakemake_batch.py): test modules register their cases at import, the first test
# that asks for the results runs them all.
REFUSALS: dict[str, tuple[dict, list[str]]] = {}


def register_refusals(study: str, cases, make_config, bad) -> list[str]:
    """Register each of `cases` (keys of `bad`: case -> (mutate, fragments)) as a refusal
    case: the config `make_config()` mutated by `bad[case][0]`, or, where `bad[case][0]` is
    text, the config file of that text. Returns the case ids."""
    ids = []
    for case in cases:
        mutate, fragments = bad[case]
        if isinstance(mutate, str):
            cfg = mutate
        else:
            cfg = make_config()
            mutate(cfg)
        ids.append(f"{study}: {case}")
        REFUSALS[ids[-1]] = (cfg, fragments)
    return ids


@pytest.fixture(scope="session")
def snakemake_refusals(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Every registered case run by real Snakemake, all in one process: id -> (project, result)."""
    import json
    import subprocess

    projects = {case: make_project(tmp_path_factory.mktemp("refuse"), cfg) for case, (cfg, _) in REFUSALS.items()}
    out = tmp_path_factory.mktemp("refusals") / "results.json"
    cmd = [sys.executable, str(ROOT / "tests" / "snakemake_batch.py"), str(out), *map(str, projects.values())]
    res = subprocess.run(cmd, capture_output=True, text=True, env=venv_env())
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads(out.read_text())
    return {case: (proj, results[str(proj.resolve())]) for case, proj in projects.items()}


def assert_snakemake_refused(refusals: dict, case: str) -> None:
    """Real Snakemake stopped on the case's config with a message holding every fragment
    (key, value, allowed), and ran nothing."""
    proj, result = refusals[case]
    assert result["refused"], f"Snakemake accepted the config of {case!r}"
    for fragment in REFUSALS[case][1]:
        assert fragment in result["message"], (fragment, result["message"][-2000:])
    assert not (proj / "results").exists()  # nothing ran


def quadratic_ensemble(curv=(1.0, 2.0), n_steps: int = 600, record_every: float = 7.0, lam: float = 0.1):
    """Engine inputs for a toy ensemble: run i does GD at rate `lam` on 0.5 curv_i w^2 from w = 1.

    Returns `(init_fn, loss_fn, observe_fn, runs, steps)` for `train.train_ensemble`; the
    weight is recorded every `record_every` steps up to `n_steps`.
    """
    import jax.numpy as jnp
    import numpy as np

    from ssmflow import train

    def init_fn(run):
        return {"w": jnp.asarray(1.0)}

    def loss_fn(params, run, key):
        return 0.5 * run["curv"] * params["w"] ** 2

    def observe_fn(params, run):
        return {"w": params["w"]}

    n = len(curv)
    runs = {"key": jnp.stack([train.run_key("t", {"i": i}) for i in range(n)]), "lam": jnp.full(n, lam), "curv": jnp.asarray(curv)}
    steps = train.record_steps(np.arange(0, float(n_steps), record_every), np.ones(n), np.full(n, float(n_steps)))
    return init_fn, loss_fn, observe_fn, runs, steps
