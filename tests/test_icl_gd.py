"""GD references of the icl study (spec 14.B: T8, T9): closed forms against Monte Carlo,
grid search and direct GD on the eval tasks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmflow.studies.icl import gd
from ssmflow.studies.icl import theory as th
from ssmflow.studies.icl.model import GDSSM

COMMON = {"input_range": 1.0, "weight_scale": 1.0, "eval_tasks": 10000, "eval_seed": 0, "ref_seed": 1, "ref_draws": 100000,
          "max_gd_steps": 3, "eta_search": "closed_form"}


@pytest.fixture(scope="module")
def ref10():
    return th.linear_reference(COMMON, 10, 10, "vector")


@pytest.fixture(scope="module")
def eval10():
    return th.eval_set(COMMON, d=10, n_context=10, variant="vector")


def test_trace_moments_and_zero_loss_match_monte_carlo(ref10):
    """T8: Monte Carlo mu_1, mu_2 (1e5 draws) within 3 SE of (8); L_0 within 3 SE of (10)."""
    closed = gd.trace_moments(10, 10, 1.0)
    for m in (1, 2):
        assert abs(ref10.mu_mc[m] - closed[m]) < 3 * ref10.mu_se[m], m
    assert abs(ref10.zero_loss_mc - ref10.zero_loss_pop) < 3 * ref10.zero_loss_mc_se
    assert ref10.zero_loss_pop == pytest.approx(10 / 24)  # s^2 d sigma^2 / 2 with sigma^2 = 1/12


@pytest.mark.parametrize(("d", "n"), [(10, 10), (5, 20), (20, 5)])
def test_closed_form_gd_loss_matches_monte_carlo(d, n):
    """The risk (7) at eta*_K equals a Monte Carlo estimate over 1e5 fresh tasks within 3 SE (K = 1 closed form (9))."""
    ref = th.linear_reference(COMMON | {"eval_tasks": 1000}, d, n, "vector")
    for k in (1, 2, 3):
        assert abs(ref.gd_loss_pop[k - 1] - ref.gd_loss_mc[k - 1]) < 3 * ref.gd_loss_mc_se[k - 1], k
    mu = gd.trace_moments(d, n, 1.0)
    assert ref.eta_star[0] == pytest.approx(n * mu[1] / mu[2], rel=1e-10)  # (9)
    assert ref.gd_loss_pop[0] == pytest.approx(0.5 / 12 * (d - mu[1] ** 2 / mu[2]), rel=1e-10)


def test_eta_star_against_eval_minimiser_and_grid_search(ref10):
    """T9: population eta*_1 within 4 bootstrap SE of the exact eval-set minimiser; the
    official grid argmin within 0.1 of it; both stored."""
    assert abs(ref10.eta_star[0] - ref10.eta_star_eval) < 4 * ref10.eta_star_eval_se
    assert abs(ref10.eta_star_grid[0] - ref10.eta_star_eval) <= 0.1
    grid = gd.official_eta_grid()
    assert grid[0] == 0.001 and grid[-1] < 25 and np.isclose(np.diff(grid), 0.1).all()


def test_loss_ordering(ref10):
    """T9: L_0 > L_1 > L_2 > L_3, and the per-step risk <= the shared-eta risk."""
    losses = [ref10.zero_loss_pop, *ref10.gd_loss_pop]
    assert all(a > b for a, b in zip(losses, losses[1:], strict=False))
    assert (ref10.gd_loss_ps_pop <= ref10.gd_loss_pop + 1e-15).all()
    assert ref10.gd_loss_ps_pop[2] < ref10.gd_loss_pop[2] * 0.999  # per-step is noticeably lower at K = 3


def test_eval_polynomial_equals_direct_gd_on_eval_tasks(ref10, eval10):
    """The Gram-matrix eval losses equal K-step GD run directly on the eval tasks, at any etas."""
    x, y = th.as_float64(eval10)
    n = 10
    for etas in ([ref10.eta_star[0]], [3.0, 7.0], ref10.eta_perstep[2, :3]):
        w = gd.gd_weights(x[:, :n], y[:, :n], etas, n)
        direct = 0.5 * np.mean(np.sum((y[:, n] - np.einsum("bei,bi->be", w, x[:, n])) ** 2, axis=1)) / 10
        assert gd.loss_from_grams(ref10.grams_eval, etas, n, 10) == pytest.approx(direct, rel=1e-10)
    eta = ref10.eta_star[1]
    poly = np.polynomial.polynomial.polyval(eta, ref10.poly_eval[1])
    assert poly == pytest.approx(ref10.gd_loss_eval[1], rel=1e-12)


def test_vector_and_scalar_risks_agree():
    """T8: the one-step risk at eta*_1 of the vector-y and scalar-y variants agree within 3 SE (Monte Carlo)."""
    vec = th.linear_reference(COMMON | {"eval_tasks": 1000}, 5, 10, "vector")
    sca = th.linear_reference(COMMON | {"eval_tasks": 1000}, 5, 10, "scalar")
    se = np.hypot(vec.gd_loss_mc_se[0], sca.gd_loss_mc_se[0])
    assert abs(vec.gd_loss_mc[0] - sca.gd_loss_mc[0]) < 3 * se
    assert vec.gd_loss_pop[0] == sca.gd_loss_pop[0]  # (7) is the same for both


def test_float32_constructed_gdssm_reproduces_eval_gd_loss(ref10, eval10):
    """T9: the float32 constructed GD-SSM at eta*_1 reproduces gd_loss_eval to <= 1e-4 relative."""
    model = GDSSM.constructed(ref10.eta_star[0], 10, 10, dtype=jnp.float32)
    tokens = eval10.tokens.astype(jnp.float32)
    yhat = np.asarray(jax.vmap(model.query)(tokens), np.float64)
    loss = 0.5 * np.mean(np.sum((np.asarray(eval10.y[:, -1], np.float64) - yhat) ** 2, axis=1)) / 10
    assert loss == pytest.approx(ref10.gd_loss_eval[0], rel=1e-4)


def test_sine_references_by_monte_carlo():
    """3.3: the prior mean is the best context-free predictor (its MC loss is below a rescaled one), shared draw closed form."""
    common = COMMON | {"ref_draws": 100000}
    ind, sh = th.sine_reference(common, 10, "independent"), th.sine_reference(common, 10, "shared")
    for ref in (ind, sh):
        assert ref["zero"][0] > ref["prior"][0] > ref["gd_affine"][0]
        assert ref["gd_raw"][0] < ref["zero"][0]
    u = np.linspace(0, 1, 200001)
    x = np.array([-0.4, 0.1, 0.5])
    quad = np.trapezoid((0.1 + 0.4 * u)[:, None] * np.sin(x[None] + np.pi * u[:, None]), u, axis=0)
    np.testing.assert_allclose(th.prior_mean(x, "shared"), quad, rtol=1e-8)


def test_theory_store_of_an_experiment():
    """The theory store on a trajectory's (d, n_context): stored polynomials give the optimal losses,
    constructed parameters are padded, exactness errors are round-off."""
    import xarray as xr

    from ssmflow.studies.icl import reference

    common = COMMON | {"eval_tasks": 500, "ref_draws": 5000, "max_gd_steps": 2,
                       "model": {"pred_sign": -1, "c_norm": "N"}}
    traj = xr.Dataset(coords={"d": [3, 5], "n_context": [10]}, attrs={"icl": common, "kind": "gdssm", "variant": "vector"})
    with jax.enable_x64(False):  # as in a float32 job: the store is float64 all the same
        theory = reference.theory_dataset(traj)
    assert theory.sizes["row"] == 5 and theory.role.values.tolist() == [0, 1, 0]
    eta = theory.eta_star.sel(d=3, n_context=10)
    at_star = reference.gd_loss_eta(theory.gd_loss_eta_coef.sel(d=3, n_context=10), eta)
    np.testing.assert_allclose(at_star.values, theory.gd_loss_pop.sel(d=3, n_context=10).values, rtol=1e-12)
    grid = reference.gd_loss_eta(theory.gd_loss_eta_coef.sel(d=5, n_context=10, gd_steps=1), np.linspace(0, 25, 2501))
    assert float(grid.min()) >= float(theory.gd_loss_pop.sel(d=5, n_context=10, gd_steps=1)) - 1e-15
    assert np.isnan(theory.C_star.sel(d=3, gd_steps=1, sublayer=1)).all()  # K = 1 has one sublayer
    assert np.isnan(theory.C_star.sel(d=3, gd_steps=2, sublayer=0, row=4)).all()  # d = 3 padded to 5
    np.testing.assert_allclose(theory.C_star.sel(d=5, n_context=10, gd_steps=1, sublayer=0).values,
                               -float(theory.eta_star.sel(d=5, n_context=10, gd_steps=1)) / 10 * np.eye(5), rtol=1e-15)
    assert float(theory.exact_err.max()) < 1e-10
