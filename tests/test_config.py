"""Bad config input: a clear error naming key, value and what is allowed, before any job."""

from __future__ import annotations


import pytest
from conftest import assert_config_error, assert_snakemake_refused, register_refusals, tiny_config

from ssmflow import config as cfgmod

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
    "NaN learning rate": (
        lambda c: c.update(studies=["dynamics", "s4d"], s4d={"optim": {"lr": float("nan")}, "experiments": {
            "delay": {"task": "delay", "steps": 20, "axes": {"init": ["legs"], "disc": ["zoh"], "N": [4]}}}}),
        ["s4d.optim.lr", "got nan", "a finite number"],
    ),
}


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


# the same refusals through real Snakemake: all cases of the suite in one Snakemake process
SNAKEMAKE_CASES = register_refusals(
    "dynamics", ["unknown key", "wrong type", "negative state size", "unknown init name", "NaN teacher pole"], tiny_config, BAD)


@pytest.mark.workflow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_stops_before_any_job(case, snakemake_refusals):
    assert_snakemake_refused(snakemake_refusals, case)
