"""`ssmflow plan`: predictions from probes of the real training programs, and the jobs' resources from them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import make_project, smk, tiny_config, venv_env
from test_s4d_config import s4d_config

from ssmflow import config as cfgmod
from ssmflow import grid, plan, train


def test_prediction_is_compilation_plus_every_chunk_at_the_probed_step_time():
    probe = {"import_s": 3.0, "other_s": 2.0, "write_s": 0.5, "peak_mb": 700.0,
             "calls": [{"n_runs": 4, "n_total": 1001, "chunk_steps": 200, "probe_steps": 10,
                        "first_s": 5.1, "steady_s": [0.1, 0.12, 0.1, 0.5]}]}
    pred = plan.predict(probe)
    # median chunk 0.11 s over 10 steps; the job runs ceil(1001 / 200) = 6 chunks of 200 steps
    assert pred["train_s"] == pytest.approx(6 * 200 * 0.011)
    assert pred["compile_s"] == pytest.approx(5.1 - 0.11)
    assert pred["wall_s"] == pytest.approx(3.0 + 2.0 + 0.5 + 4.99 + 13.2)
    assert pred["steps"] == 1001 and pred["peak_mb"] == 700.0
    two = {**probe, "calls": probe["calls"] * 2}  # a job that trains two ensembles pays both
    assert plan.predict(two)["train_s"] == pytest.approx(2 * pred["train_s"])


def test_safety_factors_and_retries():
    assert plan.job_mem_mb(1000.0) == math.ceil(1000 * plan.MEM_SAFETY + plan.MEM_MARGIN_MB)
    assert plan.job_mem_mb(1000.0, attempt=2) == 2 * plan.job_mem_mb(1000.0)
    assert plan.job_runtime_min(10.0) == plan.MIN_RUNTIME_MIN  # a short job still gets the floor
    assert plan.job_runtime_min(3600.0) == math.ceil(3600 * plan.RUNTIME_SAFETY / 60)
    assert plan.job_runtime_min(3600.0, attempt=2) == 2 * plan.job_runtime_min(3600.0)


def test_shards_share_a_probe_exactly_when_only_a_shared_axis_differs():
    cfg = s4d_config()
    cfg["s4d"]["experiments"]["delay"]["axes"].update(disc=["zoh", "bilinear"], N=[4, 8])
    shards = grid.expand(cfgmod.validate(cfg), "s4d")["delay"]
    keys = {(s.fixed["N"], s.fixed["disc"]): plan.probe_key(s.spec) for s in shards}
    assert keys[(4, "zoh")] == keys[(4, "bilinear")] != keys[(8, "zoh")] == keys[(8, "bilinear")]
    # another learning rate, seed count or thread count is another program or another job
    spec = shards[0].spec
    assert plan.probe_key({**spec, "common": {**spec["common"], "seeds": 5}}) != plan.probe_key(spec)
    assert plan.probe_key(spec, threads=2) != plan.probe_key(spec)
    dyn = grid.expand(cfgmod.validate(tiny_config()), "dynamics")["F3"]  # dynamics shares nothing
    assert len({plan.probe_key(s.spec) for s in dyn}) == len(dyn) == 2


def test_probing_runs_a_few_short_chunks_of_the_real_program():
    from conftest import quadratic_ensemble

    *fns, runs, steps = quadratic_ensemble(n_steps=600)
    with train.probing(steps=7, chunks=5, steady_s=1e9) as probe:
        res = train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    (call,) = probe.calls
    assert call["probe_steps"] == 7 and call["chunk_steps"] == 100 and call["n_total"] == steps.max() + 1
    assert len(call["steady_s"]) == 4 and res.chunks_run == 5  # stopped at `chunks`, not at the run's end
    with train.probing(steps=7, chunks=50, steady_s=0.0) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    assert len(probe.calls[0]["steady_s"]) == 2  # at least two chunks after the first, then the time budget
    # what the probe trained is the start of the real run: the records of its 35 steps
    # agree with a full run's, the later ones are NaN (not recorded)
    full = train.train_ensemble(*fns, runs, steps, chunk_steps=7)
    for name, rec in res.records.items():
        early, late = (steps >= 0) & (steps < 35), steps >= 35
        assert (rec[early] == full.records[name][early]).all() and np.isnan(rec[late]).all(), name


def test_a_slow_step_is_probed_in_two_step_chunks(monkeypatch):
    """Where one step of the ensemble takes longer than PROBE_SLOW_STEP_S, the planner's
    probe times chunks of two steps (a loop, as in the job) and needs one steady chunk, not
    two; what it trained is still the start of the real run."""
    from conftest import quadratic_ensemble

    *fns, runs, steps = quadratic_ensemble(n_steps=600)
    monkeypatch.setattr(plan, "PROBE_SLOW_STEP_S", 0.0)  # every step counts as slow
    with train.probing(steps=7, chunks=5, steady_s=1e9, program=plan.probe_program) as probe:
        res = train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    (call,) = probe.calls
    assert call["probe_steps"] == 2 and len(call["steady_s"]) == 4 and res.chunks_run == 5
    assert 0 < call["compile_s"] <= call["first_s"] and call["program_mb"] > 0
    with train.probing(steps=7, chunks=5, steady_s=0.0, program=plan.probe_program) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    assert len(probe.calls[0]["steady_s"]) == 1  # the first chunk and one steady chunk
    full = train.train_ensemble(*fns, runs, steps, chunk_steps=7)
    for name, rec in res.records.items():
        early, late = (steps >= 0) & (steps < 10), steps >= 10
        assert (rec[early] == full.records[name][early]).all() and np.isnan(rec[late]).all(), name


def test_a_mapped_ensembles_slow_step_is_timed_on_its_first_runs(monkeypatch):
    """A `lax.map`ped ensemble runs one run after another, so the probe of a slow step
    times its first PROBE_MAP_RUNS runs and the plan scales the step by runs / timed runs;
    the job's whole chunk is compiled (its compilation and buffers), not run. What the
    probe trained is the start of those runs; the others stay as initialised (NaN records)."""
    from conftest import quadratic_ensemble

    *fns, runs, steps = quadratic_ensemble(curv=(1.0, 2.0, 3.0, 4.0, 5.0), n_steps=600)
    monkeypatch.setattr(plan, "PROBE_SLOW_STEP_S", 0.0)  # every step counts as slow
    with train.probing(steps=7, chunks=5, steady_s=0.0, program=plan.probe_program) as probe:
        res = train.train_ensemble(*fns, runs, steps, chunk_steps=100, batching="map")
    (call,) = probe.calls
    assert call["runs_timed"] == plan.PROBE_MAP_RUNS == 2 and call["n_runs"] == 5 and call["probe_steps"] == 2
    assert len(call["steady_s"]) == 2  # two steady chunks of the first runs
    assert call["compile_s"] > 0 and call["program_mb"] > 0 and call["overhead_s"] > 0 and call["extra_mb"] >= 0
    assert res.diverged_at.shape == (5,) and res.records["w"].shape == steps.shape
    full = train.train_ensemble(*fns, runs, steps, chunk_steps=7, batching="map")
    early = (steps >= 0) & (steps < 6)
    for name, rec in res.records.items():
        assert (rec[:2][early[:2]] == full.records[name][:2][early[:2]]).all(), name
        assert np.isnan(rec[2:]).all() and np.isnan(rec[:2][steps[:2] >= 6]).all(), name
    chunk_s = float(np.median(call["steady_s"]))
    probe_json = {"import_s": 0.0, "other_s": 0.0, "write_s": 0.0, "peak_mb": 100.0, "calls": [call]}
    assert plan.predict(probe_json)["step_s"] == pytest.approx(chunk_s / 2 * 5 / 2)
    assert plan.predict(probe_json)["peak_mb"] == pytest.approx(100.0 + call["extra_mb"])
    # vmap is one program over every run: it is timed whole
    with train.probing(steps=7, chunks=5, steady_s=0.0, program=plan.probe_program) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=100, batching="vmap")
    assert probe.calls[0]["runs_timed"] == 5


def test_a_probe_runs_a_few_items_of_an_evaluation_loop_and_the_plan_counts_the_rest():
    assert list(train.evaluated(range(10))) == list(range(10))  # a job evaluates every item
    seen = []
    with train.probing(eval_items=3, eval_s=1.0) as probe:
        for i in train.evaluated(range(10)):
            time.sleep(0.05 if i == 0 else 0.01)  # the first item compiles
            seen.append(i)
        assert list(train.evaluated(["only"])) == ["only"]
    with train.probing(eval_items=5, eval_s=0.1) as slow_probe:
        slow = [i for i in train.evaluated(range(10)) if time.sleep(0.15) is None]
    assert seen == [0, 1, 2]  # fast items: up to eval_items
    assert slow == [0, 1]  # the second item alone is past eval_s: two are enough
    (loop, single), (slow_loop,) = probe.evals, slow_probe.evals
    assert loop["n"] == 10 and len(loop["times"]) == 3 and single == {"n": 1, "times": [pytest.approx(0, abs=0.01)]}
    assert loop["times"][0] >= 0.05 and all(0.01 <= t < 0.05 for t in loop["times"][1:])
    assert slow_loop["n"] == 10 and len(slow_loop["times"]) == 2
    probe_json = {"import_s": 1.0, "other_s": 2.0, "write_s": 0.5, "peak_mb": 10.0, "calls": [],
                  "evals": [{"n": 10, "times": [5.0, 1.0, 3.0]}, {"n": 4, "times": [2.0]}]}
    # the 7 items not run at the median of the timed ones after the first (2 s); one timed item stands for the rest
    assert plan.predict(probe_json)["setup_eval_s"] == pytest.approx(2.5 + 7 * 2.0 + 3 * 2.0)


def test_a_fast_step_is_probed_in_chunks_of_a_fifth_of_a_second_at_most_the_jobs(monkeypatch):
    from conftest import quadratic_ensemble

    *fns, runs, steps = quadratic_ensemble(n_steps=6000)
    with train.probing(steps=7, chunks=5, program=plan.probe_program) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=1000)
    # microseconds a step (two steps timed are mostly dispatch): chunks longer than the least 7, up to the job's
    assert 10 < probe.calls[0]["probe_steps"] <= 1000
    monkeypatch.setattr(plan, "PROBE_CHUNK_S", 0.0)
    with train.probing(steps=7, chunks=5, program=plan.probe_program) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=1000)
    assert probe.calls[0]["probe_steps"] == 7  # never fewer than the probe's steps


def test_a_program_over_the_memory_budget_is_compiled_not_run():
    from conftest import quadratic_ensemble

    *fns, runs, steps = quadratic_ensemble(n_steps=600)
    with train.probing(steps=7, chunks=5, program=plan.probe_program) as probe:
        train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    program = probe.calls[0]["program_mb"]
    assert 0 < program < 50, program  # XLA's memory analysis of the compiled chunk
    held = plan.rss_mb()
    with train.probing(steps=7, chunks=5, mem_budget_mb=held / 2, program=plan.probe_program) as probe:
        with pytest.raises(plan.ProgramTooBig) as err:
            train.train_ensemble(*fns, runs, steps, chunk_steps=100)
    assert err.value.needed_mb > held / 2 and err.value.program_mb == pytest.approx(program, rel=1e-6)
    assert probe.calls == []  # nothing ran


def test_probes_share_the_memory_and_a_big_one_runs_again_alone(monkeypatch, tmp_path):
    """Two probes at once each get half the available memory; one whose program needs more
    is probed again alone with all of it, and one that needs more than all is not run."""
    cfg = cfgmod.validate(tiny_config())
    shards = [s for exp in grid.expand(cfg, "dynamics").values() for s in exp]
    assert len(shards) == 3
    needs = dict(zip([s.name for s in shards], [100.0, 1500.0, 5000.0], strict=True))
    budgets = []

    def fake_child(spec, threads, root, log_dir, timeout_s=None, mem_budget_mb=None):
        budgets.append((spec["shard"], mem_budget_mb))
        path = plan.probe_path(spec, threads, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        if needs[spec["shard"]] > mem_budget_mb:
            result = {"too_big": {"needed_mb": needs[spec["shard"]], "program_mb": 1.0, "budget_mb": mem_budget_mb}}
        else:
            result = {"import_s": 1.0, "other_s": 1.0, "write_s": 0.0, "peak_mb": needs[spec["shard"]],
                      "calls": [{"n_total": 10, "chunk_steps": 10, "probe_steps": 10, "first_s": 2.0, "steady_s": [1.0]}]}
        result.update(shard=spec["shard"], backend="cpu")
        path.write_text(json.dumps(result))
        return result

    monkeypatch.setattr(plan, "_probe_in_child", fake_child)
    monkeypatch.setattr(plan.res, "host_available_mb", lambda: 2000 + plan.PROBE_MEM_RESERVE_MB)
    rows, failures = plan.plan(cfg, ["dynamics"], jobs=2, root=tmp_path)
    assert not failures
    small, mid, big = (s.name for s in shards)
    assert sorted(budgets) == sorted([(small, 1000.0), (mid, 1000.0), (big, 1000.0), (mid, 2000.0)])
    got = {r["shard"]: (r["measured"], r["peak_mb"], r["wall_s"]) for r in rows}
    assert got == {small: (True, 100.0, 4.0), mid: (True, 1500.0, 4.0), big: (False, 5000.0, None)}  # 1 + 1 + 1 + 1 s
    with pytest.raises(cfgmod.ConfigError, match=rf"dynamics/\w+/{big}: .* predicted peak 5000 MB, asks 6450 MB, 2450 MB"):
        plan.check_fits(rows, 4000, "max_job_mem_mb=4000 MB")
    assert "too big to run on this host" in plan.table(rows)
    # a host with more memory probes the too-big shape again; the others stay cached
    budgets.clear()
    monkeypatch.setattr(plan.res, "host_available_mb", lambda: 6000 + plan.PROBE_MEM_RESERVE_MB)
    rows, _ = plan.plan(cfg, ["dynamics"], jobs=2, root=tmp_path)
    assert budgets == [(big, 3000.0), (big, 6000.0)] and all(r["measured"] for r in rows)


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A small project (one dynamics shard, one s4d shard) planned, then trained job by job."""
    cfg = s4d_config()
    cfg["dynamics"]["experiments"] = {"F1": tiny_config()["dynamics"]["experiments"]["F1"]}
    cfg["s4d"]["experiments"]["delay"]["axes"]["N"] = [8]
    proj = make_project(tmp_path_factory.mktemp("plan"), cfg)
    out = subprocess.run([sys.executable, "-m", "ssmflow.cli", "plan", "--json"], cwd=proj, env=venv_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout)["shards"]
    def ssmflow(*args):
        return subprocess.run([sys.executable, "-m", "ssmflow.cli", *args], cwd=proj, env=venv_env(),
                              capture_output=True, text=True, check=True).stdout

    measured = {}
    for row in rows:  # the real job of each shard, cold (no compile cache), one thread, as the rule runs it
        where = ["--study", row["study"], "--experiment", row["experiment"]]
        data = proj / f"{row['study']}_data.zarr"
        ssmflow("data", "--spec", ssmflow("spec", *where, "--data"), "--out", str(data), "--threads", "1")
        spec = ssmflow("spec", *where, "--shard", row["shard"])
        t0 = time.perf_counter()
        ssmflow("train", "--spec", spec, "--data", str(data), "--threads", "1", "--checkpoint", "none",
                "--out", str(proj / f"{row['study']}_{row['shard']}.zarr"))
        measured[row["study"]] = time.perf_counter() - t0
    return proj, rows, measured


def test_plan_predicts_each_jobs_wall_time_within_a_factor_two(planned):
    _, rows, measured = planned
    assert [(r["study"], r["shard"]) for r in rows] == [("dynamics", "N=1_param=untied_depth=1_conv=circular"),
                                                         ("s4d", "N=8_disc=zoh")]
    for r in rows:
        ratio = r["wall_s"] / measured[r["study"]]
        print(f"{r['study']}/{r['shard']}: predicted {r['wall_s']:.1f} s, measured {measured[r['study']]:.1f} s ({ratio:.2f}x)")
        assert 0.5 <= ratio <= 2.0, (r, measured)
        assert r["compile_s"] > 0 and r["steps"] > 0 and 100 < r["peak_mb"] < 4000 and not r["cached"]


def test_a_second_plan_reuses_the_cached_probes(planned):
    proj, rows, _ = planned
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ssmflow.cli", "plan"], cwd=proj, env=venv_env(),
                         capture_output=True, text=True, check=True)
    assert time.perf_counter() - t0 < 30 and "probing" not in out.stderr, out.stderr
    table = out.stdout.splitlines()
    assert table[0].split()[:3] == ["shard", "runs", "steps"] and "cached" in table[2] and "cached" in table[3]
    assert table[-1].startswith("2 training jobs:") and "core-hours on cpu" in table[-1]


def test_a_cached_plan_probes_nothing_and_says_what_it_lacks(planned):
    proj, rows, _ = planned
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["dynamics"]["experiments"]["F1"]["axes"]["kappa"] = [0.03]  # a dynamics spec never probed
    (proj / "unprobed.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "ssmflow.cli", "plan", "--cached", "--json", "--config", "unprobed.yaml"],
                         cwd=proj, env=venv_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["shards"]
    assert [(r["study"], r["shard"], r["cached"]) for r in got] == [("s4d", "N=8_disc=zoh", True)]
    assert "1 of 2 shards have no cached probe (--cached): not in the plan" in out.stderr
    assert not list((proj / "results/.plan/dynamics").rglob("*.tmp"))


def test_a_refresh_whose_probe_fails_shows_no_older_probe(planned):
    """`--refresh` with probes that fail (here: out of their time) reports the failures and
    leaves those shards out of the plan, instead of passing the older cached probe off as new."""
    proj, rows, _ = planned
    cfg = cfgmod.load(proj / "config/config.yaml")
    root = proj / "results/.plan"
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    got, failures = plan.plan(cfg, root=root, refresh=True, timeout_s=0.2)
    assert got == [] and len(failures) == len(rows), (got, failures)
    assert all("ran out of its 0.2 s (--probe-timeout)" in msg for msg in failures), failures
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before  # the cached probes are kept as they were
    again, failures = plan.plan(cfg, root=root)  # and a plan without --refresh still reads them
    assert not failures and [(r["shard"], r["cached"]) for r in again] == [(r["shard"], True) for r in rows]


def test_a_plan_whose_shard_does_not_fit_names_it_and_by_how_much(planned):
    proj, rows, _ = planned
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["max_job_mem_mb"] = 400
    (proj / "small.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "ssmflow.cli", "plan", "--config", "small.yaml"], cwd=proj, env=venv_env(),
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stdout + out.stderr
    for r in rows:
        mem = plan.job_mem_mb(r["peak_mb"])
        assert f"{r['study']}/{r['experiment']}/{r['shard']}: {r['runs']} runs" in out.stderr
        assert f"asks {mem} MB, {mem - 400} MB" in out.stderr
    assert "max_job_mem_mb=400 MB" in out.stderr


def test_training_jobs_ask_for_the_planned_resources(planned):
    """Snakemake sizes each training job from the cached plan, and again from the defaults
    once the config of a shard the plan measured changes."""
    proj, rows, _ = planned
    res = smk(proj, "-n", "--forceall")
    for r in rows:
        mem, runtime = plan.job_mem_mb(r["peak_mb"]), plan.job_runtime_min(r["wall_s"])
        assert f"mem_mb={mem}" in res.stdout and f"runtime={runtime}" in res.stdout, res.stdout[-3000:]
    cfg = yaml.safe_load((proj / "config/config.yaml").read_text())
    cfg["dynamics"]["experiments"]["F1"]["axes"]["kappa"] = [0.03]
    (proj / "other.yaml").write_text(yaml.safe_dump(cfg))
    res = smk(proj, "-n", "--forceall", "--configfile", "other.yaml")
    assert "runtime=60" in res.stdout  # the dynamics shard: its new spec was never probed
    s4d = next(r for r in rows if r["study"] == "s4d")
    assert f"runtime={plan.job_runtime_min(s4d['wall_s'])}" in res.stdout  # the s4d shard's probe still holds


def test_the_probe_key_follows_the_training_code(monkeypatch):
    spec = grid.expand(cfgmod.validate(tiny_config()), "dynamics")["F1"][0].spec
    key = plan.probe_key(spec)
    monkeypatch.setattr(plan, "_code_digest", lambda study: "edited")
    assert plan.probe_key(spec) != key
    edited = plan.probe_key(spec)
    monkeypatch.setattr(plan, "_method_digest", lambda: "another probing method")
    assert plan.probe_key(spec) != edited
