"""Bad config input: a clear error naming key, value and what is allowed, before any job."""

from __future__ import annotations

import pytest
from conftest import (MILLION_RUN_FRAGMENTS, assert_config_error, assert_snakemake_refused, make_project, million_run_config,
                      register_refusals, smk, tiny_config)
from snakemake.common.configfile import load_configfile

from ssmflow import cli
from ssmflow import config as cfgmod

# a small config file as a person writes it: numbers with exponents (YAML 1.2 floats), and
# top-level keys left to their defaults (compile_cache)
TEXT = """\
studies: [dynamics]
dynamics:
  seeds: 2
  record_points: 200
  chunk_steps: 500
  data: {length: 128, n_seq: 8}
  experiments:
    F1: {t_record: [1e-2, 2e+1], axes: {a: [0.5], p0: [1E-4], kappa: [2e-2]}}
"""

BAD = {
    "unknown key": (lambda c: c["dynamics"].update(learning_rate=0.1), ["learning_rate", "unknown key", "allowed"]),
    "wrong type": (lambda c: c["dynamics"].update(seeds="three"), ["dynamics.seeds", "'three'", "integer"]),
    "negative state size": (
        lambda c: c["dynamics"]["experiments"]["F3"]["axes"].update(N=[1, -4]),
        ["dynamics.experiments.F3.axes.N[1]", "-4", ">= 1"],
    ),
    "unknown init name": (
        lambda c: c["dynamics"]["experiments"]["F3"]["axes"].update(init_norm=["xavier"]),
        ["dynamics.experiments.F3.axes.init_norm[0]", "'xavier'", "per_state", "total"],
    ),
    "stack with N > 1": (
        lambda c: c["dynamics"]["experiments"]["F3"]["axes"].update(depth=[2]),
        ["dynamics.experiments.F3.axes.N", "depth > 1"],
    ),
    # a NaN passes every schema bound (each comparison with it is false)
    "NaN teacher pole": (
        lambda c: c["dynamics"].update(teacher={"a_star": float("nan")}),
        ["dynamics.teacher.a_star", "got nan", "a finite number"],
    ),
    "infinite kappa": (
        lambda c: c["dynamics"]["experiments"]["F1"]["axes"].update(kappa=[0.02, float("inf")]),
        ["dynamics.experiments.F1.axes.kappa[1]", "got inf", "a finite number"],
    ),
    "empty studies": (lambda c: c.update(studies=[]), ["config key studies", "got []", "a non-empty list", "runs nothing"]),
    "NaN learning rate": (
        lambda c: c.update(studies=["dynamics", "s4d"], s4d={"optim": {"lr": float("nan")}, "experiments": {
            "delay": {"task": "delay", "steps": 20, "axes": {"init": ["legs"], "disc": ["zoh"], "N": [4]}}}}),
        ["s4d.optim.lr", "got nan", "a finite number"],
    ),
}


# config files that are refused before validation: file, line and what is wrong
FILES = {
    "duplicate key": (TEXT.replace("  seeds: 2\n", "  seeds: 2\n  seeds: 3\n"),
                      ["config.yaml, line 4", "duplicate key 'seeds' (first at line 3)"]),
    "invalid YAML": (TEXT.replace("n_seq: 8}", "n_seq: 8"), ["config.yaml, line 7", "while parsing a flow mapping at line 6"]),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_bad_config_file_names_file_and_line(case, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(FILES[case][0])
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load(path)
    for fragment in [str(path), *FILES[case][1]]:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_exponent_numbers_are_numbers(tmp_path):
    # YAML 1.1 (PyYAML's safe_load) reads 1e-2, 2e+1... as text: ssmflow reads YAML 1.2 floats
    path = tmp_path / "config.yaml"
    path.write_text(TEXT)
    exp = cfgmod.load(path)["dynamics"]["experiments"]["F1"]
    assert exp["t_record"] == [0.01, 20.0] and exp["axes"]["p0"] == [0.0001] and exp["axes"]["kappa"] == [0.02]


def test_a_string_that_looks_like_a_number_says_why():
    cfg = tiny_config()
    cfg["dynamics"]["experiments"]["F1"]["t_record"] = ["1e-2", 20.0]
    assert_config_error(cfg, ["dynamics.experiments.F1.t_record[0]", "got '1e-2'", "a string, not a number", "quoted"])


def test_a_float_is_no_integer(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TEXT.replace("seeds: 2", "seeds: 1e1"))
    with pytest.raises(cfgmod.ConfigError, match=r"dynamics.seeds: got 10.0; allowed: a value of type integer; 10.0 is a float: write 10"):
        cfgmod.load(path)


def test_snakemake_config_takes_numbers_as_ssmflow_reads_them(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: 1e-3\nb: [2e4, x]\nc: '1e-3'\nd: 1.5\n")
    read = load_configfile(path)  # Snakemake's own reader (YAML 1.1)
    assert read["a"] == "1e-3" and read["b"] == ["2e4", "x"]
    out = cfgmod.snakemake_config({**read, "e": "1e-3"}, [path])  # e: a --config entry
    assert out == {"a": 0.001, "b": [20000.0, "x"], "c": "1e-3", "d": 1.5, "e": "1e-3"}


def test_cli_names_a_missing_or_broken_config_in_one_line(tmp_path, capsys):
    broken = tmp_path / "config.yaml"
    broken.write_text(FILES["duplicate key"][0])
    for path, fragment in ((tmp_path / "nope.yaml", "does not exist"), (broken, "duplicate key 'seeds'")):
        assert cli.main(["shards", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and str(path) in err and "\n" not in err, err


def test_nan_in_a_section_not_in_studies_blocks_nothing():
    cfg = tiny_config()
    cfg["s4d"] = {"optim": {"lr": float("nan")}}  # s4d is not in `studies`: its section is not checked
    assert cfgmod.validate(cfg)["studies"] == ["dynamics"]


def test_default_config_is_valid(default_config):
    cfg = cfgmod.validate(default_config)
    assert cfg["dynamics"]["experiments"]["F1"]["axes"]["param"] == ["untied"]  # schema default filled in


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_message(case):
    cfg = tiny_config()
    BAD[case][0](cfg)
    assert_config_error(cfg, BAD[case][1])


# a valid config whose training job would not fit in one job's memory (ssmflow.resources):
# refused at parse time, before any job
INFEASIBLE = {"million-run shard": (lambda c: c.update(million_run_config(max_job_mem_mb=64000)), MILLION_RUN_FRAGMENTS)}

# the same refusals through real Snakemake: all cases of the suite in one Snakemake process
SNAKEMAKE_CASES = register_refusals(
    "dynamics", ["unknown key", "wrong type", "negative state size", "unknown init name", "NaN teacher pole", "empty studies"],
    tiny_config, BAD) + register_refusals("config file", sorted(FILES), tiny_config, FILES) + register_refusals(
    "feasibility", sorted(INFEASIBLE), tiny_config, INFEASIBLE)


@pytest.mark.workflow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_stops_before_any_job(case, snakemake_refusals):
    assert_snakemake_refused(snakemake_refusals, case)


@pytest.mark.workflow
def test_snakemake_reads_exponent_numbers(tmp_path):
    # Snakemake's own reader gives '1e-2'; the workflow takes the numbers as ssmflow reads them
    res = smk(make_project(tmp_path, TEXT), "-n", check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
