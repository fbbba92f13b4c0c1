"""freqbias config errors: named key, bad value and what is allowed, before any job runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT, assert_config_error, assert_snakemake_refused, register_refusals, tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid


def freqbias_config() -> dict:
    """The tiny dynamics config plus a small freqbias section (smoke sizes of spec test 10)."""
    cfg = tiny_config()
    cfg["studies"] = ["dynamics", "freqbias"]
    cfg["freqbias"] = {
        "seeds": 1,
        "theory": {"tv_draws": 5, "probe_length": 4096},
        "experiments": {
            "waves": {"kind": "waves", "length": 128, "step": 0.0064, "cycles": [1, 2, 4, 8], "steps": 200, "n_test": 64,
                      "record_points": 3, "pairs": [[1.0, 0.0], [100.0, 1.0]],
                      "axes": {"filter": ["paper"], "alpha": [1.0, 100.0], "beta": [0.0, 1.0]}},
            "denoise": {"kind": "denoise", "rows": 32, "cols": 16, "state_size": 16, "sources": ["faces"], "faces_train": 64,
                        "faces_test": 8, "steps": 200, "record_points": 3, "n_examples": 2,
                        "axes": {"alpha": ["raw", "flip"], "beta": [0.0]}},
        },
    }
    return copy.deepcopy(cfg)


BAD = {
    "alpha <= 0": (lambda c: c["freqbias"]["experiments"]["waves"]["axes"].update(alpha=[1.0, -2.0]),
                   ["freqbias.experiments.waves.axes.alpha[1]", "-2.0", "a number > 0"]),
    "alpha = 0 (denoise)": (lambda c: c["freqbias"]["experiments"]["denoise"]["axes"].update(alpha=[0.0]),
                            ["freqbias.experiments.denoise.axes.alpha[0]", "0.0", "raw", "flip"]),
    "frequency above Nyquist": (lambda c: c["freqbias"]["experiments"]["waves"].update(cycles=[1, 2, 4, 64]),
                                ["freqbias.experiments.waves.cycles[3]", "64", "below Nyquist", "length/2 = 64"]),
    "unknown image": (lambda c: c["freqbias"]["experiments"]["denoise"].update(natural_train=["brick", "lena"]),
                      ["freqbias.experiments.denoise.natural_train[1]", "'lena'", "brick", "camera"]),
    "unknown image set": (lambda c: c["freqbias"]["experiments"]["denoise"].update(sources=["faces", "celeba"]),
                          ["freqbias.experiments.denoise.sources[1]", "'celeba'", "faces", "natural"]),
    "theory alpha aliases": (lambda c: c["freqbias"]["theory"].update(alpha=[1.0, 40.0]),
                             ["freqbias.theory.alpha[1]", "40.0", "< pi"]),
    "unknown filter": (lambda c: c["freqbias"]["experiments"]["waves"]["axes"].update(filter=["gauss"]),
                       ["freqbias.experiments.waves.axes.filter[0]", "'gauss'", "paper", "upstream-emul", "band"]),
    "band filter scale <= 0": (lambda c: (c["freqbias"]["experiments"]["waves"]["axes"].update(filter=["band"]),
                                          c["freqbias"]["experiments"]["waves"].update(filter_s0=-30.7)),
                               ["freqbias.experiments.waves.filter_s0", "-30.7", "a number > 0"]),
    "more faces than lfw_subset holds": (lambda c: c["freqbias"]["experiments"]["denoise"].update(faces_train=90, faces_test=20),
                                         ["freqbias.experiments.denoise.faces_test", "20", "faces_train + faces_test <= 100"]),
    "denoise alpha given as a number": (lambda c: c["freqbias"]["experiments"]["denoise"]["axes"].update(alpha=[3.14]),
                                        ["freqbias.experiments.denoise.axes.alpha[0]", "3.14", "'raw'", "'flip'"]),
    "band filter without a scale": (lambda c: c["freqbias"]["experiments"]["waves"]["axes"].update(filter=["paper", "band"]),
                                    ["freqbias.experiments.waves.filter_s0", "None", "a number > 0", "required with filter band"]),
}


def test_default_and_paper_configs_have_valid_freqbias_sections():
    for name in ("config.yaml", "paper.yaml"):
        cfg = yaml.safe_load((ROOT / "config" / name).read_text())
        cfg["studies"] = sorted(set(cfg["studies"]) | {"freqbias"})
        shards = grid.expand(cfgmod.validate(cfg), "freqbias")
        assert {"waves", "denoise"} <= set(shards)
    spec = shards["waves"][0].spec
    assert spec["axes"]["alpha"] == [0.01, 0.1, 1.0, 10.0, 100.0] and len(spec["axes"]["beta"]) == 5  # W1, paper.yaml


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_freqbias_config_message(case):
    cfg = freqbias_config()
    BAD[case][0](cfg)
    assert_config_error(cfg, BAD[case][1])


# the same refusals through real Snakemake: all cases of the suite in one Snakemake process
SNAKEMAKE_CASES = register_refusals("freqbias", ["alpha <= 0", "frequency above Nyquist", "unknown image set", "band filter scale <= 0"], freqbias_config, BAD)


@pytest.mark.workflow
@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_snakemake_stops_before_any_freqbias_job(case, snakemake_refusals):
    assert_snakemake_refused(snakemake_refusals, case)
