"""The LegS kernel limit (s4d.md section 7): weak convergence of S4D-LegS to the LegS basis.

Thresholds are the spec's (test 7): pointwise errors stay O(1); step-averaged and
smooth-input errors fall monotonically with N; the un-halved B does not converge.
"""

from __future__ import annotations

import numpy as np
import pytest

from ssmflow.studies.s4d import legs_limit

NS = [16, 32, 64, 128, 256, 512, 1024]


@pytest.fixture(scope="module")
def limit():
    return legs_limit.convergence_dataset(NS, [0.01, 0.002])


def _err(ds, measure, dt=0.01, c=0.5):
    return ds.rel_error.sel(measure=measure, dt=dt, c=c).values


def test_kept_modes_reproduce_the_dense_normal_part(limit):
    """2 Re over the N/2 kept modes = expm(dt A^(N)) applied to B/2 (checks eq. 9) to 1e-10."""
    assert float(limit.dense_error.max()) < 1e-10


def test_pointwise_error_stays_order_one(limit):
    assert (_err(limit, "pointwise") >= 0.5).all()


def test_step_averaged_error_falls_monotonically_and_is_small_at_1024(limit):
    avg = _err(limit, "avg")
    assert (np.diff(avg) < 0).all(), avg
    assert avg[-1] <= 0.05
    assert (_err(limit, "avg", dt=0.002) > avg).all()  # a finer window converges later


def test_smooth_input_error_falls_fast(limit):
    sm = _err(limit, "smooth")
    assert (np.diff(sm) < 0).all(), sm
    assert (sm[np.asarray(NS) >= 512] <= 1e-3).all()
    assert sm[NS.index(1024)] <= sm[NS.index(64)] / 10


def test_unhalved_b_does_not_converge(limit):
    assert (_err(limit, "avg", c=1.0) >= 0.8).all()
    assert (_err(limit, "smooth", c=1.0) >= 0.8).all()
    assert (_err(limit, "pointwise", c=1.0) >= 0.5).all()


def test_store_layout(limit):
    assert dict(limit.rel_error.sizes) == {"N": len(NS), "measure": 3, "dt": 2, "c": 2}
    assert np.isnan(limit.rel_error.sel(measure="pointwise", dt=0.002)).all()  # pointwise only on the first grid
    assert limit.basis.sizes["t"] == 200 and list(limit.kind.values) == ["analytic", "pointwise", "avg"]
