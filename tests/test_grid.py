"""Config -> shards expansion (a pure function)."""

from __future__ import annotations

import itertools

import pytest
import yaml
from conftest import tiny_config

from ssmflow import cli, grid
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
    assert len(rows) == 17


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

