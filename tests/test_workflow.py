"""The real Snakemake workflow on small configs: stores, incremental reruns, kill safety, report."""

from __future__ import annotations

import copy
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import ROOT, make_project, smk, tiny_config, venv_env

from ssmflow import store

pytestmark = pytest.mark.workflow

SMK = [sys.executable, "-m", "snakemake"]


def scheduled(proj: Path, *args: str) -> dict[str, int]:
    """rule -> number of jobs a dry run (with Snakemake arguments `args`) schedules."""
    out = smk(proj, "-n", *args).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def scheduled_after_edit(proj: Path, rel: str, text: str | None = None) -> dict[str, int]:
    """`scheduled` while the project file `rel` is edited (a comment appended, or replaced by
    `text`); the file is restored afterwards, whatever happens."""
    path = proj / rel
    old = path.read_text()
    path.write_text(old + "\n# edited\n" if text is None else text)
    try:
        return scheduled(proj)
    finally:
        path.write_text(old)


def study_jobs(jobs: dict[str, int], study: str) -> dict[str, int]:
    """The jobs of one study's rules (`<study>_<stage>`) among scheduled `jobs`."""
    return {rule: n for rule, n in jobs.items() if rule.startswith(f"{study}_")}


def rerun_table(proj: Path, study: str) -> dict[str, set[str]]:
    """Rules scheduled by appending a comment to each file that is not training code, after
    a complete run: file -> set of rules (without `all`). Issue 10's rerun table."""
    files = ["src/ssmflow/plots.py", f"workflow/report/{study}_figure.rst", "config/README.md"]
    files += [f"src/ssmflow/studies/{study}/{m}.py" for m in ("figures", "evaluate", "reference")
              if (proj / f"src/ssmflow/studies/{study}/{m}.py").exists()]
    return {f: set(scheduled_after_edit(proj, f)) - {"all"} for f in files}


def assert_rerun_table(proj: Path, study: str, expected: dict[str, set[str]]) -> None:
    """The rerun table of a complete project equals `expected` (keys: file names relative to
    src/ssmflow/studies/<study>/ or the project), and schedules no data, checks or training."""
    table = rerun_table(proj, study)
    own = f"src/ssmflow/studies/{study}/"
    named = {k.removeprefix(own): set(study_jobs(dict.fromkeys(v, 1), study)) for k, v in table.items()}
    assert named == expected, named
    # in a project of several studies, a file of this study's package reruns nothing of another
    others = {k: v - named[k.removeprefix(own)] for k, v in table.items() if k.startswith(own) or k.endswith(f"/{study}_figure.rst")}
    assert not any(others.values()), others
    assert not any(r.endswith(("_train", "_data", "_checks")) for rules in table.values() for r in rules), table
    assert scheduled(proj) == {}  # every edit was restored


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("tiny"), tiny_config())
    smk(proj)
    return proj


def test_trajectory_and_theory_stores(tiny):
    for exp in ("F1", "F3"):
        traj = xr.open_zarr(tiny / f"results/dynamics/{exp}/trajectories.zarr")
        theory = xr.open_zarr(tiny / f"results/dynamics/{exp}/theory.zarr")
        assert {"step", "seed", "N", "param", "p0"} <= set(traj.dims)
        assert {"loss", "p"} <= set(traj.data_vars) and {"loss", "p", "b", "c"} <= set(theory.data_vars)
        assert str(traj.param.values[0]) == "tied" if exp == "F3" else "untied"
        for key in ("ssmflow_version", "git_commit", "source_digest", "config_digest", "jax_version", "precision", "created"):
            assert traj.attrs[key], key
            assert theory.attrs[key], key
        assert traj.attrs["precision"] == "float64" and traj.p.dtype == np.float64
        diff = traj.p - theory.p  # same coords, no renaming
        assert diff.sizes == traj.p.sizes and float(np.abs(diff).max()) < 0.2
    f3 = xr.open_zarr(tiny / "results/dynamics/F3/trajectories.zarr")
    assert f3.N.values.tolist() == [1, 2] and f3.sizes["state"] == 2
    assert np.isnan(f3.b.sel(N=1, state=1)).all()  # ragged state axis padded with NaN


def test_every_training_log_ends_with_its_job_profile(tiny):
    """One line per training job: its parts add up to its wall time, the engine's compile is
    apart from its steps, and `steps` counts every chunk (`cli.job_profile`)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from job_profile import PARTS, parse_profile, profiles, table

    rows = profiles(tiny / "results")
    assert len(rows) == 3  # F1's one shard and F3's two
    cfg = tiny_config()["dynamics"]
    for _, job, parts in rows:
        assert abs(sum(parts[p] for p in PARTS) - parts["total"]) < 0.05, (job, parts)  # 8 values to 0.01 s
        assert all(parts[p] >= 0 for p in PARTS), (job, parts)
        assert parts["compile"] > 0 and parts["train"] > 0, (job, parts)
        # each record schedule ends at the run's last step: the chunks of 500 cover it
        assert parts["steps"] == parts["n_chunks"] * cfg["chunk_steps"] and parts["n_chunks"] >= 1, (job, parts)
    assert parse_profile("no profile here") is None
    assert "| all | 3 |" in table(rows)


def test_readme_code_opens_the_stores_without_a_warning(tiny):
    """README "What you get": stores the workflow made, each holding the `.snakemake_timestamp`
    Snakemake adds to a `directory()` output, open under -W error (both warnings were raised)."""
    assert (tiny / "results/dynamics/F1/trajectories.zarr/.snakemake_timestamp").is_file()
    code = ("import xarray as xr\n"
            "traj = xr.open_zarr('results/dynamics/F1/trajectories.zarr')\n"
            "theory = xr.open_zarr('results/dynamics/F1/theory.zarr')\n"
            "err = (traj.p - theory.p) / theory.p\n"
            "print(float(abs(err).max()))\n")
    res = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-W", "error::UserWarning", "-c", code],
                         cwd=tiny, capture_output=True, text=True, env=venv_env())
    assert res.returncode == 0 and not res.stderr, res.stderr[-3000:]


def _drop_a_chunk(path: Path, array: str = "p") -> str:
    """Delete one chunk file of `array` in the store at `path`; its key (e.g. 'p/c/0/0/1/0')."""
    chunk = sorted(f for f in (path / array / "c").rglob("*") if f.is_file())[-1]
    chunk.unlink()
    return chunk.relative_to(path).as_posix()


def test_a_store_that_lacks_a_chunk_stops_the_stage_that_reads_it(tiny, tmp_path):
    """A lost chunk file was read as NaN and every stage exited 0; now the job that reads the
    store fails, its log naming the store and the chunk (a copy of the complete project)."""
    proj = tmp_path / "proj"
    shutil.copytree(tiny, proj, symlinks=True)
    res = proj / "results/dynamics"
    cases = [  # (store to damage, rule forced to run, target, its log)
        (res / "F3/theory.zarr", "dynamics_evaluate", "results/dynamics/F3/metrics.csv", res.parent / "logs/dynamics/F3/evaluate.log"),
        (res / "F3/trajectories.zarr", "dynamics_theory", "results/dynamics/F3/theory.zarr", res.parent / "logs/dynamics/F3/theory.log"),
        (next((res / "F1/shards").glob("*.zarr")), "dynamics_gather", "results/dynamics/F1/trajectories.zarr", res.parent / "logs/dynamics/F1/gather.log"),
    ]
    for damaged, rule, target, log in cases:
        key = _drop_a_chunk(damaged)
        out = smk(proj, "--forcerun", rule, target, check=False)
        assert out.returncode != 0, (rule, out.stdout[-2000:])
        assert f"store {damaged.relative_to(proj)} is incomplete: 'p' lacks 1 chunk(s), e.g. {key}" in log.read_text(), log.read_text()[-2000:]


def test_chunks_are_per_run(tiny):
    path = tiny / "results/dynamics/F1/trajectories.zarr"
    p = xr.open_zarr(path).p
    enc = p.encoding["chunks"]
    assert all(c == 1 or d in ("step", "seed") for c, d in zip(enc, p.dims, strict=True))
    assert np.prod(enc) * 8 <= 16 * 2**20


def test_metrics_files(tiny):
    import pandas as pd

    m = pd.read_csv(tiny / "results/dynamics/F1/metrics.csv")
    assert {"max_rel_err_p", "max_rel_err_map", "t_half", "t_half_th", "t_half_rel_err"} <= set(m.columns)
    assert (m.max_rel_err_map < 1e-10).all()
    assert (m.t_half_rel_err < 0.05).all()


def test_stores_record_the_config_they_ran(tiny):
    """Each shard store holds the job spec it ran (whose digest is its `config_digest`), the
    spec the config expands to; the gathered store lists them."""
    import json

    from ssmflow import config as cfgmod
    from ssmflow import grid

    specs = {s.name: s.spec for s in grid.expand(cfgmod.load(tiny / "config/config.yaml"), "dynamics")["F3"]}
    for name, spec in specs.items():
        attrs = store.open_store(tiny / f"results/dynamics/F3/shards/{name}.zarr").attrs
        assert json.loads(attrs["job_spec"]) == spec and attrs["config_digest"] == cfgmod.digest(spec)
        assert attrs["batching"] == "map"  # what ran (dynamics batches with lax.map)
    gathered = store.open_store(tiny / "results/dynamics/F3/trajectories.zarr").attrs
    assert sorted(json.loads(s)["shard"] for s in gathered["job_specs"]) == sorted(specs)


def test_a_configfile_is_the_whole_config(tmp_path):
    """`--configfile` replaces config/config.yaml (no deep merge: a config with one
    experiment runs that experiment only, and inherits no value of the default file);
    `--config KEY=VALUE` still overrides a key of the file in effect."""
    proj = make_project(tmp_path, tiny_config())  # config/config.yaml: F1 and F3
    user = tiny_config(F1=tiny_config()["dynamics"]["experiments"]["F1"])
    user["dynamics"]["seeds"] = 3
    (proj / "mine.yaml").write_text(yaml.safe_dump(user, sort_keys=False))
    jobs = scheduled(proj, "--configfile", "mine.yaml")
    assert jobs["dynamics_gather"] == 1 and jobs["dynamics_train"] == 1, jobs  # F1 only: not F3 of config.yaml
    both = scheduled(proj)
    assert both["dynamics_gather"] == 2 and both["dynamics_train"] == 3, both
    out = smk(proj, "-n", "-p", "--configfile", "mine.yaml", "--config", "compile_cache=elsewhere").stdout
    assert "--cache elsewhere" in out and '"seeds": 3' in out, out[-2000:]


def test_a_store_that_no_longer_matches_its_config_reruns_without_snakemake_metadata(tmp_path):
    """With `.snakemake/metadata` gone (results copied, a new clone), a changed training or
    data setting still reruns its root job and what follows it (ssmflow.freshness), and a
    config that matches the stores again schedules nothing."""
    import shutil

    cfg = tiny_config(F1=tiny_config()["dynamics"]["experiments"]["F1"])
    proj = make_project(tmp_path, cfg)
    smk(proj)
    shutil.rmtree(proj / ".snakemake/metadata")
    assert scheduled(proj) == {}
    original = (proj / "config/config.yaml").read_text()
    changed = copy.deepcopy(cfg)
    changed["dynamics"]["experiments"]["F1"]["axes"]["kappa"] = [0.03]
    jobs = scheduled_after_edit(proj, "config/config.yaml", yaml.safe_dump(changed, sort_keys=False))
    assert jobs.get("dynamics_train") == 1 and "dynamics_data" not in jobs and jobs.get("dynamics_figure") == 1, jobs
    changed = copy.deepcopy(cfg)
    changed["dynamics"]["data"]["n_seq"] = 9
    jobs = scheduled_after_edit(proj, "config/config.yaml", yaml.safe_dump(changed, sort_keys=False))
    assert jobs.get("dynamics_data") == 1 and jobs.get("dynamics_train") == 1, jobs
    assert (proj / "config/config.yaml").read_text() == original and scheduled(proj) == {}


def test_complete_run_schedules_nothing(tiny):
    assert scheduled(tiny) == {}


def test_adding_a_state_size_schedules_only_new_shard_and_dependents(tiny):
    cfg = yaml.safe_load((tiny / "config/config.yaml").read_text())
    cfg["dynamics"]["experiments"]["F3"]["axes"]["N"].append(4)
    jobs = scheduled_after_edit(tiny, "config/config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    assert jobs == {"all": 1, "dynamics_train": 1, "dynamics_gather": 1, "dynamics_theory": 1, "dynamics_evaluate": 1, "dynamics_figure": 1}, jobs


def test_editing_a_dynamics_module_reruns_dynamics_jobs(tiny):
    jobs = scheduled_after_edit(tiny, "src/ssmflow/studies/dynamics/theory.py")
    assert jobs["dynamics_train"] == 3 and jobs["dynamics_checks"] == 1, jobs
    assert all(r == "all" or r.startswith("dynamics_") for r in jobs)
    assert scheduled(tiny) == {}  # restored file: same checksum, nothing to do


def test_rerun_table_no_figure_or_evaluation_edit_retrains(tiny):
    """Issue 10: a figure edit redraws figures, an evaluation edit re-evaluates, never training."""
    assert_rerun_table(tiny, "dynamics", {
        "src/ssmflow/plots.py": {"dynamics_figure"},
        "figures.py": {"dynamics_figure"},
        "evaluate.py": {"dynamics_evaluate", "dynamics_figure"},
        "reference.py": {"dynamics_theory", "dynamics_evaluate", "dynamics_figure"},
        "workflow/report/dynamics_figure.rst": set(),
        "config/README.md": set(),
    })


def test_editing_another_studys_core_module_reruns_nothing_here(tiny):
    assert scheduled_after_edit(tiny, "src/ssmflow/ssm/transfer.py") == {}  # dynamics never imports ssm/


def test_raising_seeds_trains_only_the_new_seed(tmp_path):
    """Issue 10: seeds 2 -> 3 trains seed 2 only (the shard's job reuses seeds 0-1 from
    results/.runs) and the gathered store equals a from-scratch run's with 3 seeds."""
    exp = {"F1": {"t_record": [0.01, 20.0], "axes": {"a": [0.5], "p0": [0.0001], "kappa": [0.02, 0.05]}}}
    (tmp_path / "grown").mkdir()
    (tmp_path / "scratch").mkdir()
    grown = make_project(tmp_path / "grown", tiny_config(**exp))
    smk(grown, "results/dynamics/F1/metrics.csv")
    cfg = tiny_config(**exp)
    cfg["dynamics"]["seeds"] = 3
    (grown / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert scheduled(grown)["dynamics_train"] == 1
    smk(grown, "results/dynamics/F1/metrics.csv")
    log = next((grown / "results/logs/dynamics/F1").glob("train_*.log")).read_text()
    assert "reusing seeds [0, 1]" in log and "training seeds [2]" in log, log[-2000:]
    scratch = make_project(tmp_path / "scratch", cfg)
    smk(scratch, "results/dynamics/F1/metrics.csv")
    for name in ("trajectories.zarr", "theory.zarr", "metrics.zarr"):
        a, b = (store.open_store(p / f"results/dynamics/F1/{name}").load() for p in (grown, scratch))
        xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
        assert a.attrs["config_digest"] == b.attrs["config_digest"], name


def test_report_holds_every_figure_and_headline_table(tiny):
    smk(tiny, "--report", "results/report.html")
    html = (tiny / "results/report.html").read_text(errors="replace")
    for fig in ("F1.png", "F3.png"):
        assert fig in html
    # each experiment's headline metrics as a table (HTML, shown inline), from its metrics store
    assert "metrics.html" in html and "headline tables" in html
    from ssmflow import tables
    from ssmflow.studies import dynamics

    page = (tiny / "results/dynamics/F1/metrics.html").read_text()
    metrics = store.open_store(tiny / "results/dynamics/F1/metrics.zarr").load()
    frame = tables.headline_frame(metrics, dynamics.STUDY.stage("evaluate").headline, [*dynamics.STUDY.run_dims, "seed"])
    assert len(frame) == metrics.t_half_rel_err.isel(seed=0).size  # one row per setting
    assert all(cell in page for cell in frame.t_half_rel_err)


def test_sigkill_mid_training_leaves_no_corrupt_store(tmp_path):
    import psutil

    cfg = tiny_config(F2={"t_record": [0.001, 200.0], "axes": {"a": [0.6], "p0": [0.0001], "kappa": [0.0002]}})
    cfg["dynamics"]["chunk_steps"] = 2000
    proj = make_project(tmp_path, cfg)
    shard = proj / "results/dynamics/F2/shards/N=1_param=untied_depth=1_conv=circular.zarr"
    log = proj / "results/logs/dynamics/F2/train_N=1_param=untied_depth=1_conv=circular.log"
    proc = subprocess.Popen([*SMK, "--cores", "1"], cwd=proj, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=venv_env())
    deadline = time.time() + 180
    while time.time() < deadline and not (log.exists() and "step " in log.read_text()):
        time.sleep(0.5)
    assert log.exists() and "step " in log.read_text(), "training never started"
    trainers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "train" in c.cmdline() and any("ssmflow" in a for a in c.cmdline())]
    assert len(trainers) == 1
    trainers[0].send_signal(signal.SIGKILL)  # the training job dies mid-run
    assert proc.wait(timeout=120) != 0  # snakemake reports the failed job
    assert not shard.exists()  # nothing half-written at the final path
    smk(proj)  # a plain rerun completes
    ds = store.open_store(shard)
    assert np.isfinite(ds.p.isel(step=0)).all() and int(ds.attrs["n_steps"]) > 10_000
    assert not list(shard.parent.glob("*.tmp-*"))  # no stale temporaries


def test_lint_has_no_findings_beyond_missing_conda():
    res = subprocess.run([*SMK, "--lint"], cwd=ROOT, capture_output=True, text=True, env=venv_env())
    kinds = set(re.findall(r"^\s+\* (.+?):$", res.stdout + res.stderr, re.M))
    # one project venv for every rule is deliberate (README); anything else is a finding
    assert kinds <= {"Specify a conda environment or container for each rule."}, kinds


def test_default_grid_metrics(default_run):
    """The default config's stored metrics show the acceptance numbers (F1, F3)."""
    import pandas as pd

    proj = default_run
    f1 = pd.read_csv(proj / "results/dynamics/F1/metrics.csv")
    small = f1[(f1.kappa <= 2e-3) & (f1.p0 == 1e-4)]
    assert len(small) == 18 and (small.max_rel_err_p < 1e-2).all()  # N = 1, balanced, lam sigma <= 2e-3
    assert (f1.max_rel_err_map < 1e-10).all()  # exact discrete GD map
    assert (f1[f1.kappa <= 2e-3].t_half_rel_err < 0.02).all()  # half-time within 2%
    f3 = pd.read_csv(proj / "results/dynamics/F3/metrics.csv")
    sel = f3[(f3.balance == 0) & (f3.spread == "identical") & (f3.init_norm == "per_state")].groupby(["param", "N"]).t_half.mean()
    tied = np.polyfit(np.log(sel["tied"].index), np.log(sel["tied"].values), 1)[0]
    untied = np.polyfit(np.log(sel["untied"].index), np.log(sel["untied"].values), 1)[0]
    assert abs(tied + 1) < 0.1, tied
    assert abs(untied + 1) > 0.5, untied
