"""s4d config errors: named key, bad value and what is allowed, before any job runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT, assert_config_error, assert_snakemake_refused, register_refusals, tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid
from ssmflow.studies import s4d


def s4d_config() -> dict:
    """The tiny dynamics config plus a small s4d section."""
    cfg = tiny_config()
    cfg["studies"] = ["dynamics", "s4d"]
    cfg["s4d"] = {
        "seeds": 3,
        "model": {"channels": 4, "depth": 1},
        "kernel_limit": {"N": [16, 32]},
        "experiments": {"delay": {"task": "delay", "length": 32, "steps": 20, "record_points": 3,
                                  "axes": {"init": ["legs", "real"], "disc": ["zoh"], "N": [4, 8]}}},
    }
    return copy.deepcopy(cfg)


BAD = {
    "unknown init": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(init=["legs", "hippo"]),
                     ["s4d.experiments.delay.axes.init[1]", "'hippo'", "legs", "inv", "lin", "real", "random"]),
    "odd N": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(N=[4, 17]),
              ["s4d.experiments.delay.axes.N[1]", "17", "even integer"]),
    "zero dt_min": (lambda c: c["s4d"]["model"].update(dt_min=0.0), ["s4d.model.dt_min", "0.0", "> 0"]),
    "negative dt_max": (lambda c: c["s4d"]["model"].update(dt_max=-0.1), ["s4d.model.dt_max", "-0.1", "> 0"]),
    "dt_min above dt_max": (lambda c: c["s4d"]["model"].update(dt_min=0.5, dt_max=0.1),
                            ["s4d.model.dt_min", "0.5", "dt_min <= dt_max"]),
    "unknown discretization": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(disc=["euler"]),
                               ["s4d.experiments.delay.axes.disc[0]", "'euler'", "zoh", "bilinear"]),
    "odd kernel-limit N": (lambda c: c["s4d"]["kernel_limit"].update(N=[16, 33]), ["s4d.kernel_limit.N[1]", "33", "even"]),
    "lag out of range": (lambda c: c["s4d"]["experiments"]["delay"].update(lag=1.5), ["s4d.experiments.delay.lag", "1.5", "(0, 1)"]),
    "unknown LegS B": (lambda c: c["s4d"]["model"].update(legs_b="halved"), ["s4d.model.legs_b", "'halved'", "paper", "official"]),
    "unknown real transform": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(real_transform=["exp", "softplus"]),
                               ["s4d.experiments.delay.axes.real_transform[1]", "'softplus'", "exp", "relu", "none"]),
    "unknown B choice": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(B=["fixed"]),
                         ["s4d.experiments.delay.axes.B[0]", "'fixed'", "trained", "frozen"]),
    "unknown task": (lambda c: c["s4d"]["experiments"]["delay"].update(task="copying"),
                     ["s4d.experiments.delay.task", "'copying'", "sdigits", "delay", "adding", "tones"]),
    "odd tones length": (lambda c: c["s4d"]["experiments"].update(tones={"task": "tones", "length": 101}),
                         ["s4d.experiments.tones.length", "101", "even integer"]),
    "delay key on adding": (lambda c: c["s4d"]["experiments"].update(adding={"task": "adding", "lag": 0.5}),
                            ["s4d.experiments.adding", "lag"]),
    "unknown sobolev filter": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(sobolev=["lra"]),
                               ["s4d.experiments.delay.axes.sobolev[0]", "'lra'", "off", "learnable"]),
    "alpha not positive": (lambda c: c["s4d"]["experiments"]["delay"]["axes"].update(alpha=[1.0, 0.0]),
                           ["s4d.experiments.delay.axes.alpha[1]", "0.0"]),
    "rate change off tones": (lambda c: c["s4d"]["experiments"]["delay"].update(rate_change={"rate": 2}),
                              ["s4d.experiments.delay", "rate_change"]),
    "rate change other than 2": (lambda c: c["s4d"]["experiments"].update(
        tones={"task": "tones", "length": 32, "rate_change": {"rate": 3}, "axes": {"init": ["lin"], "disc": ["zoh"], "N": [4]}}),
        ["s4d.experiments.tones.rate_change.rate", "3", "2"]),
}


def test_default_config_has_a_valid_s4d_study(default_config):
    cfg = cfgmod.validate(default_config)
    assert "s4d" in cfg["studies"]
    shards = grid.expand(cfg, "s4d")
    # (N, disc[, real_transform][, sobolev]) per job
    assert {e: len(s) for e, s in shards.items()} == {"sdigits": 4, "delay": 4, "tones": 1, "lra": 2, "ablation": 3}
    ablation = shards["ablation"][0].spec
    assert ablation["axes"]["B"] == ["trained", "frozen"] and ablation["axes"]["real_transform"] == ["exp"]  # B batched
    lra = shards["lra"][0].spec
    assert lra["axes"]["alpha"] == [1.0, 3.0, 5.0] and lra["axes"]["sobolev"] == ["off"] and lra["settings"]["bidirectional"]
    spec = shards["delay"][0].spec
    assert spec["axes"]["init"] == ["legs", "inv", "lin", "real", "random"] and spec["common"]["seeds"] >= 3
    assert "kernel_limit" not in spec["common"]  # kernel-limit edits rerun no training
    assert spec["common"]["model"]["legs_b"] == "paper"  # the grid states which LegS B it trains


def test_paper_config_is_valid():
    cfg = cfgmod.validate(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    assert "s4d" in cfg["studies"] and max(cfg["s4d"]["kernel_limit"]["N"]) >= 1024
    exps = cfg["s4d"]["experiments"]
    assert {e["task"] for e in exps.values()} == {"sdigits", "psdigits", "delay", "adding", "tones"}
    x4 = [e for e in exps.values() if "real_transform" in e["axes"]]  # X4: sdigits and tones, N = 64, ZOH, LegS and Lin
    assert sorted(e["task"] for e in x4) == ["sdigits", "tones"]
    for e in x4:
        assert e["axes"]["real_transform"] == ["exp", "relu", "none"] and e["axes"]["B"] == ["trained", "frozen"]
        assert e["axes"]["N"] == [64] and e["axes"]["disc"] == ["zoh"] and e["axes"]["init"] == ["legs", "lin"]
    assert exps["tones"]["length"] == 4096 and exps["adding"]["length"] == 1024 and exps["addinglong"]["length"] == 4096


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_s4d_config_message(case):
    cfg = s4d_config()
    BAD[case][0](cfg)
    assert_config_error(cfg, BAD[case][1])


def test_s4d_listed_without_its_section_is_an_error():
    cfg = s4d_config()
    del cfg["s4d"]
    with pytest.raises(cfgmod.ConfigError, match="s4d"):
        cfgmod.validate(cfg)


# the same refusals through real Snakemake: all cases of the suite in one Snakemake process
SNAKEMAKE_CASES = register_refusals("s4d", ["unknown init", "odd N", "zero dt_min"], s4d_config, BAD)


@pytest.mark.workflow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_stops_before_any_s4d_job(case, snakemake_refusals):
    assert_snakemake_refused(snakemake_refusals, case)
