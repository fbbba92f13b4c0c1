"""The GD-SSM construction (icl spec 14.A: T1-T6), float64 unless stated.

References are computed here, independently of `ssmflow.studies.icl.gd`: one GD step is
(eta/N) sum_i y_i (x_i . x_q), K steps the explicit recursion (5).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.studies.icl import checks
from ssmflow.studies.icl.init import init_gdssm
from ssmflow.studies.icl.model import GDSSM, bilinear_window, final_state, scan_parallel, scan_sequential, windows
from ssmflow.studies.icl.tasks import linear_tasks

EXACT = 1e-10  # T1: float64 round-off of O(N d) products is ~1e-15


def one_step(x: np.ndarray, y: np.ndarray, eta: float) -> np.ndarray:
    """(eta/N) sum_i y_i (x_i . x_q) for x (batch, N+1, d), y (batch, N+1, d_y)."""
    n = x.shape[1] - 1
    return (eta / n) * np.einsum("bne,bn->be", y[:, :n], np.einsum("bni,bi->bn", x[:, :n], x[:, n]))


def k_steps(x: np.ndarray, y: np.ndarray, etas, n_norm: int) -> np.ndarray:
    """W_K x_q by the recursion (5), one task at a time in plain loops."""
    out = []
    for xb, yb in zip(x, y, strict=True):
        k = len(xb) - 1 if len(yb) == len(xb) else len(yb)
        w = np.zeros((yb.shape[1], xb.shape[1]))
        for eta in etas:
            grad = sum(np.outer(w @ xb[i] - yb[i], xb[i]) for i in range(k)) / n_norm
            w = w - eta * grad
        out.append(w @ xb[k])
    return np.array(out)


@eqx.filter_jit
def states(model: GDSSM, tokens, parallel: bool):
    return jax.vmap(lambda u: model.states(u, parallel))(tokens)


@eqx.filter_jit
def outputs(model: GDSSM, tokens, parallel: bool = True):
    return jax.vmap(lambda u: model(u, parallel))(tokens)


@eqx.filter_jit
def queries(model: GDSSM, tokens):
    return jax.vmap(model.query)(tokens)


def tasks(seed: int, d: int, n: int, variant: str = "vector", batch: int = 100, dtype=jnp.float64):
    t = linear_tasks(jax.random.key(seed), batch, d, n, variant=variant, dtype=dtype)
    return t, np.asarray(t.x, np.float64), np.asarray(t.y, np.float64)


@pytest.mark.parametrize("variant", ["vector", "scalar"])
@pytest.mark.parametrize(("d", "n"), checks.SPEC_GRID)
def test_constructed_query_is_one_gd_step(d, n, variant):
    """T1: yhat_q = (eta/N) Syx x_q on 100 tasks per (d, N), both variants."""
    t, x, y = tasks(d * 100 + n, d, n, variant)
    eta = 0.7 * n  # any eta; the construction holds for all
    out = queries(GDSSM.constructed(eta, n, d), t.tokens)
    pred = out[:, -1:] if variant == "scalar" else out
    assert np.max(np.abs(np.asarray(pred) - one_step(x, y, eta))) < EXACT


@pytest.mark.parametrize(("d", "n"), [(5, 10), (10, 10)])
def test_every_window_is_prefix_gd(d, n):
    """T2: window k predicts x_{k+1} with one GD step of size eta k/N on pairs 1..k."""
    t, x, y = tasks(1, d, n)
    eta = 3.0
    out = np.asarray(outputs(GDSSM.constructed(eta, n, d), t.tokens))
    for k in range(1, n + 1):
        want = (eta * k / n) / k * np.einsum("bne,bn->be", y[:, :k], np.einsum("bni,bi->bn", x[:, :k], x[:, k]))
        assert np.max(np.abs(out[:, k - 1] - want)) < EXACT, k


def test_state_is_the_gradient_accumulator():
    """T3: S_k = sum_{i<=k} x_i y_i^T under E_12, sum x_i x_i^T under E_11; decayed sums with Lbar in (0, 1)."""
    d, n = 4, 8
    t, x, y = tasks(2, d, n, batch=10)
    U = jax.vmap(windows)(t.tokens)
    e12, e11 = jnp.zeros((3, 3)).at[0, 1].set(1.0), jnp.zeros((3, 3)).at[0, 0].set(1.0)
    ones = jnp.ones((d, d))
    s_yx = np.asarray(jax.vmap(lambda u: scan_parallel(ones, bilinear_window(u, e12)))(U))
    s_xx = np.asarray(jax.vmap(lambda u: scan_parallel(ones, bilinear_window(u, e11)))(U))
    np.testing.assert_allclose(s_yx, np.cumsum(np.einsum("bni,bnj->bnij", x[:, :n], y[:, :n]), axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s_xx, np.cumsum(np.einsum("bni,bnj->bnij", x[:, :n], x[:, :n]), axis=1), rtol=0, atol=1e-12)
    lbar = jax.random.uniform(jax.random.key(3), (d, d), jnp.float64, 0.05, 1.0)
    wq = jax.random.normal(jax.random.key(4), (3, 3), jnp.float64)
    A = np.asarray(jax.vmap(bilinear_window, in_axes=(0, None))(U, wq))
    got = np.asarray(jax.vmap(scan_parallel, in_axes=(None, 0))(lbar, jnp.asarray(A)))
    lb = np.asarray(lbar)
    for k in range(1, n + 1):
        want = sum(lb ** (k - i) * A[:, i - 1] for i in range(1, k + 1))
        np.testing.assert_allclose(got[:, k - 1], want, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(jax.vmap(final_state, in_axes=(None, 0))(lbar, jnp.asarray(A[:, :k]))), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_parallel_and_sequential_scans_agree(blocks):
    """T4: random parameters, Lbar in (0, 1): <= 1e-12 (float64) and <= 1e-6 relative (float32)."""
    d, n = 6, 12
    for dtype, tol in ((jnp.float64, 1e-12), (jnp.float32, 1e-6)):
        t, _, _ = tasks(5, d, n, batch=20, dtype=dtype)
        model = init_gdssm(jax.random.key(6), d, blocks, dtype=dtype)
        lam = -jax.random.uniform(jax.random.key(7), model.lam.shape, dtype, 0.1, 30.0)
        model = GDSSM(wq=model.wq, lam=lam, log_step=model.log_step, C=model.C, D=model.D)
        assert float(jnp.min(model.decays())) < 0.9  # a real test of the decay
        par, seq = np.asarray(states(model, t.tokens, True)), np.asarray(states(model, t.tokens, False))
        scale = np.abs(seq).max()
        assert np.abs(par - seq).max() / scale < tol
        out_par, out_seq = np.asarray(outputs(model, t.tokens, True)), np.asarray(outputs(model, t.tokens, False))
        assert np.abs(out_par - out_seq).max() / np.abs(out_seq).max() < tol
        query = np.asarray(queries(model, t.tokens))  # the closed-form last state
        assert np.abs(query - out_seq[:, -1]).max() / np.abs(out_seq[:, -1]).max() < tol


def test_scan_functions_agree_on_one_sequence():
    lbar = jax.random.uniform(jax.random.key(0), (3, 3), jnp.float64, 0.1, 1.0)
    A = jax.random.normal(jax.random.key(1), (9, 3, 3), jnp.float64)
    np.testing.assert_allclose(scan_parallel(lbar, A), scan_sequential(lbar, A), rtol=0, atol=1e-13)
    np.testing.assert_allclose(final_state(lbar, A), scan_sequential(lbar, A)[-1], rtol=0, atol=1e-13)


@pytest.mark.parametrize("blocks", [1, 2])
def test_gauge_rescaling_leaves_output_unchanged(blocks):
    """T5: (alpha W_q, gamma C, delta D) with alpha gamma delta = 1, negative factors included (float32, 1e-6 relative)."""
    d, n = 5, 10
    t, _, _ = tasks(8, d, n, batch=20, dtype=jnp.float32)
    model = init_gdssm(jax.random.key(9), d, blocks, dtype=jnp.float32)
    n_sub = 2 * blocks - 1
    alpha = jnp.array([-1.7, 0.4, -2.5][:n_sub], jnp.float32)
    delta = -0.6
    gamma = jnp.where(jnp.arange(n_sub) % 2 == 0, 1.0 / (alpha * delta), 1.0 / alpha)  # yx sublayers carry D's scale
    scaled = GDSSM(wq=model.wq * alpha[:, None, None], lam=model.lam, log_step=model.log_step,
                   C=model.C * gamma[:, None, None], D=model.D * delta)
    a, b = np.asarray(outputs(model, t.tokens)), np.asarray(outputs(scaled, t.tokens))
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-6
    assert np.abs(a).max() > 1e-3


@pytest.mark.parametrize("variant", ["vector", "scalar"])
@pytest.mark.parametrize("blocks", [1, 2, 3, 4])
def test_k_blocks_equal_k_steps_of_gd(blocks, variant):
    """T6: (19) with shared and per-step etas equals W_K x_q of (5), and prefix K-step GD at every window."""
    d, n = 5, 10
    t, x, y = tasks(10 + blocks, d, n, variant, batch=15)
    for etas in (np.full(blocks, 4.0), np.linspace(2.0, 6.0, blocks)):
        out = np.asarray(outputs(GDSSM.constructed(etas, n, d), t.tokens))
        if variant == "scalar":
            out = out[..., -1:]
        assert np.abs(out[:, -1] - k_steps(x, y, etas, n)).max() < EXACT
        for k in (1, n // 2, n - 1):
            prefix = k_steps(np.concatenate([x[:, :k], x[:, k : k + 1]], axis=1), y[:, :k], etas, n)
            assert np.abs(out[:, k - 1] - prefix).max() < EXACT, k


def test_float32_construction_relative_error():
    """T1 in float32: relative error <= 1e-5."""
    d, n = 10, 10
    t, x, y = tasks(11, d, n, dtype=jnp.float32)
    eta = 6.0
    out = np.asarray(queries(GDSSM.constructed(eta, n, d, dtype=jnp.float32), t.tokens))
    want = one_step(x, y, eta)
    assert out.dtype == np.float32
    assert np.abs(out - want).max() / np.abs(want).max() < 1e-5


def test_query_jacobian_is_w_for_the_construction():
    """The constructed model's d yhat_q / d x_q is W_1 = (eta/N) Syx (x_q enters o_N only)."""
    d, n, eta = 4, 6, 2.5
    t, x, y = tasks(12, d, n, batch=5)
    J = np.asarray(jax.vmap(GDSSM.constructed(eta, n, d).query_jacobian)(t.tokens))
    want = (eta / n) * np.einsum("bne,bni->bei", y[:, :n], x[:, :n])
    assert np.abs(J - want).max() < EXACT


def test_exactness_errors_used_by_the_theory_store():
    errs = checks.exact_errors(5, 10, 2, "scalar", n_tasks=20)
    assert set(errs) == set(checks.CHECKS)
    assert max(errs.values()) < checks.STATE_TOL
