"""The `ssmflow` command line (cli.py) as the rules run it: a subprocess, its log on stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import tiny_config, venv_env

from ssmflow import config as cfgmod
from ssmflow import grid, study


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
