"""Config -> shards expansion (a pure function)."""

from __future__ import annotations

import itertools

import pytest
import xarray as xr
import yaml
from conftest import make_project, smk, tiny_config

from ssmflow import cli, grid, store
from ssmflow import config as cfgmod


def test_shard_axes_become_jobs_and_the_rest_is_vmapped():
    cfg = cfgmod.validate(tiny_config())
    shards = grid.expand(cfg, "dynamics")
    assert [s.name for s in shards["F3"]] == ["N=1_param=tied_depth=1_conv=circular", "N=2_param=tied_depth=1_conv=circular"]
    spec = shards["F3"][1].spec
    assert spec["axes"]["N"] == [2] and spec["axes"]["p0"] == [0.000001]
    rows = grid.shard_table(cfg, "dynamics")
    assert sum(r["runs"] for r in rows if r["experiment"] == "F1") == 2  # 2 seeds vmapped in one job


def test_adding_a_grid_value_adds_only_new_shards_and_keeps_old_specs():
    cfg = tiny_config()
    before = grid.expand(cfgmod.validate(cfg), "dynamics")["F3"]
    cfg["dynamics"]["experiments"]["F3"]["axes"]["N"].append(4)
    after = grid.expand(cfgmod.validate(cfg), "dynamics")["F3"]
    assert [s.spec for s in after[:2]] == [s.spec for s in before]
    assert after[2].name == "N=4_param=tied_depth=1_conv=circular"


def test_default_config_shard_count(default_config):
    rows = grid.shard_table(cfgmod.validate(default_config), "dynamics")
    assert len(rows) == 21  # F1, F1c, F2, F5 one each; F3 10; F3fixed 4; F4 3


def split_config(max_runs=None) -> dict:
    """F1 with 4 poles x 3 learning rates x 2 seeds = 24 runs in one shard."""
    cfg = tiny_config(F1={"t_record": [0.01, 20.0], "axes": {"a": [0.2, 0.4, 0.5, 0.7], "p0": [0.0001], "kappa": [0.01, 0.02, 0.03]}})
    cfg["max_runs_per_shard"] = max_runs
    return cfg


def runs_of(shards) -> list[tuple]:
    """Every (axis values..., seed) run the shards train, sorted."""
    runs = []
    for s in shards:
        axes = s.spec["axes"]
        for combo in itertools.product(*axes.values(), grid.seed_values(s.spec)):
            runs.append(combo)
    return sorted(runs)


@pytest.mark.parametrize(("max_runs", "n_parts"), [(None, 1), (24, 1), (12, 2), (6, 4), (4, 6), (2, 12), (1, 12)])
def test_max_runs_per_shard_splits_batched_axes_never_seeds(max_runs, n_parts):
    whole = grid.expand(cfgmod.validate(split_config()), "dynamics")["F1"]
    shards = grid.expand(cfgmod.validate(split_config(max_runs)), "dynamics")["F1"]
    assert len(shards) == n_parts
    assert len({s.name for s in shards}) == n_parts  # distinct names
    assert runs_of(shards) == runs_of(whole)  # the same runs, each once
    for s in shards:
        assert s.spec["common"]["seeds"] == 2 and grid.seed_values(s.spec) == [0, 1]  # seeds are never split
        assert grid.shard_runs(s.spec) <= max(max_runs or 24, 2)
        assert s.spec["shard"] == s.name and (n_parts == 1) == ("part=" not in s.name)
    if n_parts > 1:
        assert shards[0].name == f"N=1_param=untied_depth=1_conv=circular_part=1of{n_parts}"


def test_split_parts_have_monotonic_coords_for_gather():
    # unsorted values are split in sorted order, so each part's coords are monotonic
    cfg = split_config(2)
    cfg["dynamics"]["experiments"]["F1"]["axes"]["a"] = [0.5, 0.2, 0.7, 0.4]
    cfg["dynamics"]["experiments"]["F1"]["axes"]["kappa"] = [0.02]
    shards = grid.expand(cfgmod.validate(cfg), "dynamics")["F1"]
    assert [s.spec["axes"]["a"] for s in shards] == [[0.2], [0.4], [0.5], [0.7]]
    assert grid.split_summary({"F1": shards}) == [
        "dynamics/F1/N=1_param=untied_depth=1_conv=circular: 8 runs split into 4 shards of 2 runs each (max_runs_per_shard)"]


def test_shards_count_shows_the_split(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    for max_runs, count in ((None, 3), (6, 6)):  # F1: 1 shard, or 4 parts; F3: 2 shards of 2 runs
        cfg = split_config(max_runs)
        cfg["dynamics"]["experiments"]["F3"] = tiny_config()["dynamics"]["experiments"]["F3"]
        path.write_text(yaml.safe_dump(cfg))
        assert cli.main(["shards", "--config", str(path), "--count"]) == 0
        assert capsys.readouterr().out.strip() == f"{count} shards"


@pytest.mark.workflow
def test_split_experiment_gathers_the_unsplit_store_bit_for_bit(tmp_path):
    # 2 poles x 2 learning rates x 2 seeds = 8 runs: one shard, or 4 parts of 2 runs (one
    # (a, kappa) value each, both seeds) with max_runs_per_shard 2
    experiments = {"F1": {"t_record": [0.01, 20.0], "axes": {"a": [0.5, 0.7], "p0": [0.0001], "kappa": [0.02, 0.04]}}}
    target = "results/dynamics/F1/trajectories.zarr"
    gathered = {}
    for max_runs in (None, 2):
        cfg = tiny_config(**experiments)
        cfg["max_runs_per_shard"] = max_runs
        (tmp_path / f"max_runs_{max_runs}").mkdir()
        proj = make_project(tmp_path / f"max_runs_{max_runs}", cfg)
        res = smk(proj, target)
        shards = sorted(p.name for p in (proj / "results/dynamics/F1/shards").iterdir())
        gathered[max_runs] = store.open_store(proj / target).load()
        if max_runs is None:
            assert shards == ["N=1_param=untied_depth=1_conv=circular.zarr"]
        else:
            assert shards == [f"N=1_param=untied_depth=1_conv=circular_part={k}of4.zarr" for k in range(1, 5)]
            assert "split shard dynamics/F1/N=1_param=untied_depth=1_conv=circular: 8 runs split into 4 shards" in res.stderr
            assert gathered[max_runs].attrs["shards"] == shards
    # bit for bit (batching: map; run keys from run coordinates only): every variable and
    # coordinate exactly equal; the attrs differ only in what names the shards
    xr.testing.assert_equal(gathered[2], gathered[None])
    assert dict(gathered[2].sizes) == dict(gathered[None].sizes) and gathered[2].sizes["seed"] == 2
    assert bool(gathered[2].p.notnull().any()) and not bool(gathered[2].diverged.any())  # real trajectories
