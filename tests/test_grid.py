"""Config -> shards expansion (a pure function)."""

from __future__ import annotations

from conftest import tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid


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
