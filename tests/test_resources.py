"""Training-job memory (one formula) and the check that every shard fits, before any job."""

from __future__ import annotations

import os

import pytest
from conftest import MILLION_RUN_FRAGMENTS, million_run_config, tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid, resources


def test_train_mem_mb_grows_with_runs_and_attempts_up_to_the_limit():
    assert resources.train_mem_mb(0) == 1500 and resources.train_mem_mb(100) == 3500
    assert resources.train_mem_mb(100, attempt=3) == 10500
    assert resources.train_mem_mb(100, attempt=3, limit_mb=8000) == 8000  # a retry never outgrows the nodes
    assert resources.max_runs_within(64000) == 3125 and resources.train_mem_mb(3125) <= 64000 < resources.train_mem_mb(3126)


def test_million_run_shard_is_refused_naming_shard_runs_memory_and_limit():
    cfg = cfgmod.validate(million_run_config(max_job_mem_mb=64000))
    shards = {"dynamics": grid.expand(cfg, "dynamics")}
    with pytest.raises(cfgmod.ConfigError) as err:
        resources.check_shards(shards, cfg)
    for fragment in MILLION_RUN_FRAGMENTS:
        assert fragment in str(err.value), (fragment, str(err.value))
    assert "experiment F3" not in str(err.value)  # only the shards over the limit are named


def test_default_limit_is_this_hosts_physical_memory():
    cfg = cfgmod.validate(tiny_config())
    assert cfg["max_job_mem_mb"] is None
    expected = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert resources.job_mem_limit_mb(cfg) == resources.host_mem_mb() == expected
    resources.check_shards({"dynamics": grid.expand(cfg, "dynamics")}, cfg)  # the tiny grid fits
    with pytest.raises(cfgmod.ConfigError, match="this host's physical memory .*on SLURM set it to your nodes' memory"):
        resources.check_shards({"dynamics": grid.expand(cfgmod.validate(million_run_config()), "dynamics")},
                               cfgmod.validate(million_run_config()))


def test_split_shards_fit_where_the_whole_would_not():
    cfg = cfgmod.validate(million_run_config(max_job_mem_mb=64000, max_runs_per_shard=3125))
    shards = {"dynamics": grid.expand(cfg, "dynamics")}
    resources.check_shards(shards, cfg)
    assert max(grid.shard_runs(s.spec) for s in shards["dynamics"]["F1"]) <= 3125
