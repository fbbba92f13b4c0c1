"""The training engine: addressable seeds, bit-identical vmapping, divergence as data."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import quadratic_ensemble, tiny_config

from ssmflow import config as cfgmod
from ssmflow import grid, train
from ssmflow.studies.dynamics import job


def _spec(seeds: int, **axes):
    cfg = tiny_config(F1={"t_record": [0.01, 20.0], "axes": {"a": [0.5], "p0": [0.0001], "kappa": [0.02], **axes}})
    cfg["dynamics"]["seeds"] = seeds
    return grid.expand(cfgmod.validate(cfg), "dynamics")["F1"][0].spec


def test_run_key_depends_on_coordinates_only():
    assert train.run_seed("dynamics", {"rho": 0.0001, "seed": 1}) == train.run_seed("dynamics", {"seed": 1, "rho": 1e-4})
    assert train.run_seed("dynamics", {"rho": 0.0, "seed": 1}) != train.run_seed("dynamics", {"rho": 0.0, "seed": 2})


def test_trajectory_bit_identical_alone_or_vmapped_beside_others():
    alone = job.train_shard(_spec(1))
    crowd = job.train_shard(_spec(4, p0=[0.01, 0.0001], kappa=[0.02, 0.002]))
    sel = dict(seed=0, p0=0.0001, kappa=0.02)
    for name in ("p", "loss", "b", "c", "k"):
        a, b = alone[name].sel(seed=0).squeeze(), crowd[name].sel(**sel).squeeze()
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)
    assert np.isfinite(alone.p.sel(seed=0)).sum() > 100


def test_auto_batching_is_the_backends_choice_and_trains_as_it(monkeypatch):
    """`batching="auto"` resolves per backend (map on the CPU, vmap on an accelerator) and
    trains exactly as the batching it resolves to."""
    import jax

    assert jax.default_backend() == "cpu" and train.resolve_batching("auto") == "map"
    assert train.resolve_batching("vmap") == "vmap" and train.resolve_batching("map") == "map"
    with pytest.raises(ValueError, match="'map', 'vmap' or 'auto'"):
        train.resolve_batching("pmap")
    args = quadratic_ensemble((1.0, 0.5, 0.25), n_steps=300)
    auto, mapped = (train.train_ensemble(*args, chunk_steps=64, batching=b) for b in ("auto", "map"))
    for name in auto.records:
        np.testing.assert_array_equal(auto.records[name], mapped.records[name], err_msg=name)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert train.resolve_batching("auto") == "vmap"


def test_divergence_is_recorded_and_neighbours_go_on():
    res = train.train_ensemble(*quadratic_ensemble((1.0, 30.0), n_steps=2000, record_every=1.0), chunk_steps=256)
    assert res.diverged_at[0] == train.NO_STEP
    assert 0 < res.diverged_at[1] < 2000  # |1 - 0.1*30| = 2 per step: overflow after ~1000 steps
    assert abs(res.records["w"][0, 100] - 0.9**100) < 1e-12  # the stable neighbour is unaffected
    assert np.isfinite(res.records["w"][1, : res.diverged_at[1]]).all()


def test_divergence_of_the_last_update_is_recorded_and_logged(caplog):
    # one recorded step (step 0, finite loss): the step's update sends w to -1e199, whose
    # loss overflows; no step of the schedule evaluates it, the engine's final check does
    caplog.set_level(logging.INFO, logger="ssmflow.train")
    res = train.train_ensemble(*quadratic_ensemble((1.0, 1e200), n_steps=1, record_every=1.0), chunk_steps=10)
    assert res.diverged_at.tolist() == [train.NO_STEP, 1]
    assert np.isfinite(res.records["loss"][1]).all()  # the loss it recorded (step 0) was finite
    assert "diverged 1/2" in caplog.text and "1/2 runs diverged (non-finite loss), first at steps [1]" in caplog.text


def test_nan_loss_at_the_first_step_is_divergence():
    init_fn, loss_fn, observe_fn, runs, steps = quadratic_ensemble((1.0, float("nan")), n_steps=50)
    res = train.train_ensemble(init_fn, loss_fn, observe_fn, runs, steps, chunk_steps=16)
    assert res.diverged_at.tolist() == [train.NO_STEP, 0]
    assert np.isnan(res.records["loss"][1]).all()


def test_record_steps_refuse_a_rate_that_would_train_nothing():
    times = train.log_spaced_times(0.1, 10.0, 5)
    for lam, t_end in (([0.1, np.nan], [1.0, 1.0]), ([0.1, np.inf], [1.0, 1.0]), ([0.1, 0.0], [1.0, 1.0]), ([0.1, 0.1], [1.0, np.nan])):
        with pytest.raises(ValueError, match=r"runs \[1\]"):
            train.record_steps(times, np.array(lam), np.array(t_end))


def test_record_steps_follow_each_runs_own_learning_rate():
    times = train.log_spaced_times(0.1, 10.0, 5)
    steps = train.record_steps(times, np.array([0.01, 0.1]), np.array([10.0, 1.0]))
    assert steps[0].tolist() == [0, 10, 32, 100, 316, 1000]
    assert steps[1].tolist() == [0, 1, 3, 10, -1, -1]  # past t_end: not recorded
