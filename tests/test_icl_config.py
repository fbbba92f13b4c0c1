"""icl config: bad values fail before any job with key, value and what is allowed; grid and figures."""

from __future__ import annotations

import copy

import pytest
from conftest import assert_config_error, assert_snakemake_refused, register_refusals, tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid
from ssmflow.studies import icl


def icl_config(**experiments) -> dict:
    """tiny_config() with a small icl section (for config checks and workflow runs)."""
    cfg = tiny_config()
    cfg["studies"] = ["icl"]
    cfg["icl"] = {
        "seeds": 2, "steps": 200, "eval_every": 50, "chunk_steps": 100, "eval_tasks": 200, "ref_draws": 2000, "max_gd_steps": 2,
        "optimizer": {"lr": 0.003, "lr_ssm": 0.001, "lsa_lr": 0.002},
        "experiments": experiments or {
            "E1": {"kind": "gdssm", "axes": {"d": [3], "n_context": [4], "blocks": [1]}},
            "E5": {"kind": "baselines", "axes": {"model": ["lti_ssm"], "d": [3], "n_context": [4]}},
        },
    }
    return copy.deepcopy(cfg)


BAD = {
    "d < 1": (lambda c: c["icl"]["experiments"]["E1"]["axes"].update(d=[0]), ["icl.experiments.E1.axes.d[0]", "0", ">= 1"]),
    "N < 1": (lambda c: c["icl"]["experiments"]["E1"]["axes"].update(n_context=[4, -2]),
              ["icl.experiments.E1.axes.n_context[1]", "-2", ">= 1"]),
    "unknown baseline": (lambda c: c["icl"]["experiments"]["E5"]["axes"].update(model=["mamba"]),
                         ["icl.experiments.E5.axes.model[0]", "'mamba'", "lsa", "lti_ssm", "diag_wq", "no_gate"]),
    "unknown kind": (lambda c: c["icl"]["experiments"]["E1"].update(kind="rnn"), ["icl.experiments.E1.kind", "'rnn'", "gdssm"]),
    "axis of another kind": (lambda c: c["icl"]["experiments"]["E5"]["axes"].update(blocks=[2]),
                             ["icl.experiments.E5.axes", "['blocks']", "'baselines'", "['model', 'd', 'n_context']"]),
    "missing axis": (lambda c: c["icl"]["experiments"]["E1"]["axes"].pop("blocks"), ["icl.experiments.E1.axes", "missing key(s) ['blocks']", "'gdssm'", "['d', 'n_context', 'blocks']"]),
    "too many blocks": (lambda c: c["icl"]["experiments"]["E1"]["axes"].update(blocks=[3]),
                        ["icl.experiments.E1.axes.blocks", "[3]", "icl.max_gd_steps (=2)"]),
    "chunk not dividing steps": (lambda c: c["icl"].update(chunk_steps=150), ["icl.chunk_steps", "150", "divisor of icl.steps (=200)"]),
    "unknown optimizer key": (lambda c: c["icl"]["optimizer"].update(momentum=0.9), ["icl.optimizer", "momentum", "allowed"]),
    "icl enabled without a section": (lambda c: c.pop("icl"), ["missing key(s) ['icl']", "studies"]),
    "ood factor not positive": (lambda c: c["icl"]["experiments"]["E1"].update(ood={"input": [0.5, 0.0]}),
                                ["icl.experiments.E1.ood.input[1]", "0.0", "(0, 100]"]),
    "unknown ood shift": (lambda c: c["icl"]["experiments"]["E1"].update(ood={"scale": [1.0]}),
                          ["icl.experiments.E1.ood", "['scale']", "['input', 'weight']"]),
    "ood on baselines": (lambda c: c["icl"]["experiments"]["E5"].update(ood={"input": [1.0]}),
                         ["icl.experiments.E5", "['ood']", "'baselines'"]),
}


def test_small_icl_config_is_valid_and_expands():
    cfg = cfgmod.validate(icl_config())
    assert cfg["icl"]["optimizer"]["weight_decay"] == 0.05  # schema default filled in
    shards = grid.expand(cfg, "icl")
    assert [s.name for s in shards["E1"]] == ["d=3_n_context=4_blocks=1"]
    assert [s.name for s in shards["E5"]] == ["model=lti_ssm_d=3_n_context=4"]
    assert grid.shard_table(cfg, "icl")[0]["runs"] == 2  # seeds run inside the job


def test_default_and_paper_configs_are_valid(default_config):
    cfg = cfgmod.validate(default_config)
    exps = cfg["icl"]["experiments"]
    assert {"E1", "E2", "E3", "E4", "E5", "E6", "E7"} <= set(exps) and "ood" in exps["E1"]
    figs = icl.figure_inputs(exps)
    assert figs["F1_E1"] == ["E1"] and "F5_E1" not in figs and {"F5_E2", "F5_E3", "F8_E1"} <= set(figs)
    from conftest import ROOT

    paper = cfgmod.load(ROOT / "config" / "paper.yaml")
    assert len(grid.shard_table(paper, "icl")) == 34
    assert {"F5_E2", "F5_E3", "F8_E1"} <= set(icl.figure_inputs(paper["icl"]["experiments"]))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_icl_config_message(case):
    cfg = icl_config()
    BAD[case][0](cfg)
    assert_config_error(cfg, BAD[case][1])


# the same refusals through real Snakemake: all cases of the suite in one Snakemake process
SNAKEMAKE_CASES = register_refusals("icl", ["d < 1", "unknown baseline"], icl_config, BAD)


@pytest.mark.workflow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_stops_before_any_icl_job(case, snakemake_refusals):
    assert_snakemake_refused(snakemake_refusals, case)
