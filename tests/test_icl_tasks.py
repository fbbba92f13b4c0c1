"""Task generators of the icl study (spec T10)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.studies.icl import theory as th
from ssmflow.studies.icl.tasks import linear_tasks, query_loss, sine_tasks


@pytest.mark.parametrize("variant", ["vector", "scalar"])
def test_linear_tasks_shapes_order_and_targets(variant):
    d, n, batch = 4, 6, 50
    t = linear_tasks(jax.random.key(0), batch, d, n, variant=variant, dtype=jnp.float64)
    d_y = d if variant == "vector" else 1
    assert t.tokens.shape == (batch, 2 * n + 1, d)
    assert t.x.shape == (batch, n + 1, d) and t.y.shape == (batch, n + 1, d_y) and t.w.shape == (batch, d_y, d)
    np.testing.assert_array_equal(t.tokens[:, 0::2], t.x)  # x_1, ..., x_N, x_q at even positions
    labels = t.tokens[:, 1::2]
    if variant == "vector":
        np.testing.assert_array_equal(labels, t.y[:, :n])
    else:
        np.testing.assert_array_equal(labels[..., -1:], t.y[:, :n])  # ytil = y e_d
        assert not np.any(labels[..., :-1])
    np.testing.assert_allclose(t.y[:, -1], np.einsum("bed,bd->be", t.w, t.x[:, -1]), atol=1e-6)  # y_q = W x_q


def test_linear_inputs_and_weights_follow_c1_c2():
    """x ~ U(-r/2, r/2) within [-r/2, r/2] with mean and variance within 3 SE; W ~ N(0, s^2)."""
    r, s = 2.0, 1.5
    t = linear_tasks(jax.random.key(1), 4000, 5, 10, input_range=r, weight_scale=s, dtype=jnp.float64)
    x, w = np.asarray(t.x).ravel(), np.asarray(t.w).ravel()
    assert x.min() >= -r / 2 and x.max() <= r / 2
    var = r**2 / 12
    assert abs(x.mean()) < 3 * np.sqrt(var / x.size)
    assert abs(x.var() - var) < 3 * np.sqrt((r**4 / 80 - var**2) / x.size)
    assert abs(w.var() - s**2) < 3 * s**2 * np.sqrt(2 / w.size)


def test_sine_tasks_independent_and_shared_draws():
    """Sine: |corr(a, phi)| < 0.02 over 1e5 independent draws; under the shared draw a = 0.1 + 0.4 phi / pi exactly."""
    t = sine_tasks(jax.random.key(2), 100_000, 3, dtype=jnp.float64)
    a, phi = np.asarray(t.w).T
    assert t.tokens.shape == (100_000, 7, 1)
    assert abs(np.corrcoef(a, phi)[0, 1]) < 0.02
    assert a.min() >= 0.1 and a.max() <= 0.5 and phi.min() >= 0 and phi.max() <= np.pi
    np.testing.assert_allclose(t.y, a[:, None, None] * np.sin(t.x + phi[:, None, None]), atol=1e-12)
    sh = sine_tasks(jax.random.key(3), 1000, 3, draw="shared", dtype=jnp.float64)
    a, phi = np.asarray(sh.w).T
    np.testing.assert_allclose(a, 0.1 + 0.4 * phi / np.pi, atol=1e-12)


def test_query_loss_is_per_output_dimension():
    y = jnp.ones((8, 4))
    assert float(query_loss(jnp.zeros((8, 4)), y)) == pytest.approx(0.5)  # (1/(2 d_y)) ||y||^2 = 0.5


def test_eval_set_depends_on_task_configuration_only():
    common = {"input_range": 1.0, "weight_scale": 1.0, "eval_tasks": 100, "eval_seed": 0}
    a = th.eval_set(common, d=3, n_context=5)
    b = th.eval_set(common, d=3, n_context=5)
    c = th.eval_set(common | {"eval_seed": 1}, d=3, n_context=5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.tokens.dtype == jnp.float32 and not np.array_equal(a.tokens, c.tokens)
