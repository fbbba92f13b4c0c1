"""Baselines, ablations and comparison metrics of the icl study (spec T5 quantities, T7, 10.1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.studies.icl import checks, gd
from ssmflow.studies.icl.baselines import LSA
from ssmflow.studies.icl.init import hippo_legs_normal_eigenvectors, init_gdssm, init_lti, init_nogate, init_sine
from ssmflow.studies.icl.gauge import gauge_fix
from ssmflow.studies.icl.metrics import functional_metrics, gauge_alignment
from ssmflow.studies.icl.model import GDSSM
from ssmflow.studies.icl.tasks import linear_tasks, sine_tasks


@pytest.mark.parametrize(("d", "n"), checks.SPEC_GRID)
def test_constructed_lsa_and_gated_token_ssm_are_one_gd_step(d, n):
    """T7: the constructed LSA (21) and gated-token SSM (8.4) equal one GD step to 1e-10."""
    lsa, token = checks.baseline_errors(d, n)
    assert lsa < checks.EXACT_TOL and token < checks.EXACT_TOL


def test_lti_ssm_is_linear_in_the_tokens():
    """8.2: no multiplicative interaction, so the query output is linear in the sequence."""
    model = init_lti(jax.random.key(0), 4, state=16)
    u = jax.random.normal(jax.random.key(1), (2, 9, 4))
    f = model.query
    np.testing.assert_allclose(f(2.0 * u[0] - 3.0 * u[1]), 2.0 * f(u[0]) - 3.0 * f(u[1]), rtol=1e-9, atol=1e-12)
    J = model.query_jacobian(u[0])
    np.testing.assert_allclose(J, jax.jacfwd(lambda xq: f(u[0].at[-1].set(xq)))(u[0, -1]), atol=1e-12)


def test_no_gate_and_diag_wq_ablations():
    d = 3
    t = linear_tasks(jax.random.key(2), 5, d, 4, dtype=jnp.float64)
    nogate = init_nogate(jax.random.key(3), d)
    assert jax.vmap(nogate.query)(t.tokens).shape == (5, d)
    diag = init_gdssm(jax.random.key(4), d, 1, diag_wq=True)
    off = diag.wq.at[0, 0, 1].add(5.0)  # off-diagonal entries of W_q have no effect
    np.testing.assert_allclose(jax.vmap(diag.query)(t.tokens), jax.vmap(GDSSM(off, diag.lam, diag.log_step, diag.C, diag.D, diag_wq=True).query)(t.tokens))


def test_sine_model_outputs_one_prediction():
    for embed in ("linear", "mlp"):
        model = init_sine(jax.random.key(5), 10, embed)
        t = sine_tasks(jax.random.key(6), 4, 10)
        assert jax.vmap(model.query)(t.tokens).shape == (4, 1)


def test_hippo_eigenvectors_diagonalise_the_normal_legs_part():
    n = 6
    v = hippo_legs_normal_eigenvectors(n)
    q = np.sqrt(2 * np.arange(n) + 1.0)
    a = -np.tril(np.outer(q, q), -1) - np.diag(np.arange(n) + 1.0)
    s = a + np.outer(np.sqrt(np.arange(n) + 0.5), np.sqrt(np.arange(n) + 0.5))
    lam = v.conj().T @ s @ v
    np.testing.assert_allclose(lam - np.diag(np.diag(lam)), 0, atol=1e-10)
    np.testing.assert_allclose(np.diag(lam).real, -0.5, atol=1e-10)  # the -1/2 real part of lam's init


def test_functional_metrics_of_the_construction_are_perfect():
    d, n = 5, 10
    t = linear_tasks(jax.random.key(7), 50, d, n, dtype=jnp.float64)
    eta = gd.eta_star_one_step(d, n, 1.0)
    model = GDSSM.constructed(eta, n, d)
    x, y = np.asarray(t.x), np.asarray(t.y)
    w = gd.gd_weights(x[:, :n], y[:, :n], [eta], n)
    yhat, J = jax.vmap(model.query)(t.tokens), jax.vmap(model.query_jacobian)(t.tokens)
    m = functional_metrics(yhat, J, jnp.einsum("bei,bi->be", w, x[:, n]), jnp.asarray(w))
    assert float(m["model_cos"]) == pytest.approx(1.0, abs=1e-12)
    assert float(m["preds_diff"]) < 1e-12 and float(m["model_diff"]) < 1e-12
    other = functional_metrics(yhat, -J, yhat, J)
    assert float(other["model_cos"]) == pytest.approx(-1.0, abs=1e-12)


def test_gauge_alignment_of_rescaled_construction_is_perfect():
    """(25) of a rescaled construction (negative factors) gives align 1 and the construction's gain."""
    d, n, eta = 4, 8, 3.0
    star = GDSSM.constructed([eta, eta], n, d)
    wq, C, D = np.asarray(star.wq), np.asarray(star.C), np.asarray(star.D)
    alpha, delta = np.array([-2.0, 0.5, 3.0]), -0.25
    gamma = np.where(np.arange(3) % 2 == 0, 1 / (alpha * delta), 1 / alpha)
    lbar = np.ones((3, d, d))
    q = gauge_alignment(wq * alpha[:, None, None], C * gamma[:, None, None], D * delta, lbar, C, n_norm=n)
    for name in ("align_wq", "align_c", "gain_ratio", "lambda_mean", "lambda_min"):
        np.testing.assert_allclose(q[name], 1.0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(q["eta_hat"], eta, atol=1e-12)
    assert q["align_d"] == pytest.approx(1.0)
    what, chat, dhat = gauge_fix(wq * alpha[:, None, None], C * gamma[:, None, None], D * delta)
    np.testing.assert_allclose(what, wq, atol=1e-12)
    np.testing.assert_allclose(chat, C, atol=1e-12)
    np.testing.assert_allclose(dhat, D, atol=1e-12)


def test_gauge_quantities_invariant_for_random_parameters():
    """T5: the quantities (25) change by <= 1e-6 under the gauge, negative factors included."""
    _, q_err = checks.gauge_errors()
    assert q_err < checks.GAUGE_TOL


def test_lsa_construction_matches_one_gd_step_float32():
    d, n, eta = 6, 12, 5.0
    t = linear_tasks(jax.random.key(8), 30, d, n, dtype=jnp.float32)
    out = jax.vmap(LSA.constructed(eta, n, d, dtype=jnp.float32).query)(t.tokens)
    x, y = np.asarray(t.x, np.float64), np.asarray(t.y, np.float64)
    want = np.einsum("bei,bi->be", gd.gd_weights(x[:, :n], y[:, :n], [eta], n), x[:, n])
    assert np.abs(np.asarray(out) - want).max() / np.abs(want).max() < 1e-5
