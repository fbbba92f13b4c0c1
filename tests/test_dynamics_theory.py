"""Tests of `ssmflow.studies.dynamics.theory` (spec `dynamics.md`, section 3 and tests T2, T4-T6).

Every closed form is checked against an independent computation: a series or an
adaptive quadrature for the statistics, an explicit GD loop on the parameters for the
exact maps, and an ODE solver (DOP853, rtol 1e-12) for the flows. Tolerances are the
spec's where it states one; otherwise they say why they have that value.
"""

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from ssmflow.studies.dynamics import theory as th

# Default teacher (section 4) seen by a state at a = a* = 0.6 with white input:
# sigma = g*/(1 - a a*), eta = 1/(1 - a^2), p* = g*.
A_STAR, G_STAR = 0.6, 0.8
SIGMA, ETA = G_STAR / (1 - A_STAR**2), 1 / (1 - A_STAR**2)
P_STAR = SIGMA / ETA


def _rel(x, ref):
    return np.max(np.abs(np.asarray(x) - ref)) / np.max(np.abs(ref))


def _fitted_time_constant(t, p, p_star):
    """T12: -1/slope of ln|p - p*| over the records with 1e-3 < |p - p*|/|p0 - p*| < 0.3."""
    gap = np.abs(p - p_star) / np.abs(p[0] - p_star)
    keep = (gap > 1e-3) & (gap < 0.3)
    return -1 / np.polyfit(t[keep], np.log(np.abs(p[keep] - p_star)), 1)[0]


# --- 3.1 Sufficient statistics --------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "rho"), [(0.0, 0.6, 0.0), (0.5, 0.6, 0.5), (0.9, -0.3, 0.7)])
def test_gamma_ar1_matches_autocovariance_series(a, b, rho):
    # <z_a z_b> = sum_{j,l} a^j b^l rho^|j-l| for unit-variance AR(1); 400 terms leave < 1e-17.
    j = np.arange(400)
    series = np.sum(np.outer(a**j, b**j) * rho ** np.abs(j[:, None] - j[None, :]))
    assert abs(th.gamma_ar1(a, b, rho) - series) < 1e-12 * abs(series)


@pytest.mark.parametrize("rho", [0.0, 0.5])
@pytest.mark.parametrize("a_n", [[0.0], [0.5], [0.2, 0.5, 0.8]])
def test_population_sigma_eta_matches_quadrature(a_n, rho):
    # T2 second half: (9) agrees with the quadrature of the population integrals to 1e-10.
    sigma_cf, eta_cf = th.population_sigma_eta(a_n, A_STAR, G_STAR, rho)
    sigma_q, eta_q = th.population_sigma_eta_quadrature(a_n, A_STAR, G_STAR, rho)
    assert sigma_cf.shape == (len(a_n),) and eta_cf.shape == (len(a_n), len(a_n))
    assert _rel(sigma_q, sigma_cf) < 1e-10
    assert _rel(eta_q, eta_cf) < 1e-10


def test_quadrature_rule_matches_adaptive_quad():
    # The periodic trapezoid rule itself against scipy's adaptive quad, at a pole near 1.
    a, rho = 0.9, 0.5

    def integrand(w, b):
        z = np.exp(-1j * w)
        s_uu = (1 - rho**2) / abs(1 - rho * z) ** 2
        return np.real(np.conj(1 / (1 - a * z)) / (1 - b * z)) * s_uu / (2 * np.pi)

    eta_ref = quad(integrand, -np.pi, np.pi, args=(a,), epsabs=0, epsrel=1e-13, limit=200)[0]
    sigma_ref = G_STAR * quad(integrand, -np.pi, np.pi, args=(A_STAR,), epsabs=0, epsrel=1e-13, limit=200)[0]
    sigma_q, eta_q = th.population_sigma_eta_quadrature([a], A_STAR, G_STAR, rho)
    assert abs(eta_q[0, 0] - eta_ref) < 1e-11 * eta_ref
    assert abs(sigma_q[0] - sigma_ref) < 1e-11 * sigma_ref


def test_white_noise_closed_forms():
    # Section 3.1, last bullet: sigma = g*/(1 - a a*), eta = 1/(1 - a^2), Syy = g*^2/(1 - a*^2).
    a = np.array([0.0, 0.5, 0.9])
    sigma_n, eta_nm = th.population_sigma_eta(a, A_STAR, G_STAR, 0.0)
    np.testing.assert_allclose(sigma_n, G_STAR / (1 - a * A_STAR), rtol=1e-14)
    np.testing.assert_allclose(np.diag(eta_nm), 1 / (1 - a**2), rtol=1e-14)
    np.testing.assert_allclose(sigma_n / np.diag(eta_nm), G_STAR * (1 - a**2) / (1 - a * A_STAR), rtol=1e-14)
    np.testing.assert_allclose(th.population_syy(A_STAR, G_STAR, 0.0, 0.1), G_STAR**2 / (1 - A_STAR**2) + 0.01, rtol=1e-14)


# --- 3.3 One layer: closed forms against the ODE -------------------------------------


@pytest.mark.parametrize("p0", [1e-4, 0.3, -0.2])
@pytest.mark.parametrize("delta", [0.01, 0.5, 3.0, -2.0])
def test_unbalanced_p_matches_scalar_ode(delta, p0):
    # T5: (15)-(16) against the ODE (12); max abs error / p* < 1e-8 (the ODE reaches ~5e-11).
    t = np.linspace(0.0, 30.0, 3001)
    p = th.unbalanced_p(t, p0, delta, SIGMA, ETA)
    assert np.max(np.abs(p - th.scalar_flow(t, p0, delta, SIGMA, ETA))) / P_STAR < 1e-8
    assert abs(p[-1] - P_STAR) < 1e-12


@pytest.mark.parametrize("p0", [1e-4, 0.3])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_unbalanced_p_tends_to_logistic(p0, sign):
    # T5: against (13), error < 1e-6 when |Delta| <= 1e-8 p0; exactly (13) at Delta = 0.
    t = np.linspace(0.0, 30.0, 3001)
    logistic = th.logistic_p(t, p0, SIGMA, ETA)
    near = th.unbalanced_p(t, p0, sign * 1e-8 * p0, SIGMA, ETA)
    assert np.max(np.abs(near - logistic)) / P_STAR < 1e-6
    np.testing.assert_array_equal(th.unbalanced_p(t, p0, 0.0, SIGMA, ETA), logistic)


def test_unbalanced_p_broadcasts_and_stays_finite_for_tiny_delta():
    t = np.linspace(0.0, 30.0, 301)[:, None]
    p0 = np.array([0.0, 1e-4, -0.2, 0.0, 1e-4, -0.2])
    delta = np.array([1e-300, -1e-150, 1e-100, 0.0, 0.0, 0.0])
    with np.errstate(all="raise", under="ignore"):
        p = th.unbalanced_p(t, p0, delta, SIGMA, ETA)
    assert p.shape == (301, 6) and np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], p0, rtol=1e-14, atol=1e-150)


def test_logistic_p_balanced_negative_start_decays_like_ode():
    # A balanced start with c0 = -b0 has p0 < 0; (12) with Delta = 0 then decays to 0.
    # Compared early, while the unstable fixed point p = 0 does not amplify ODE error.
    t = np.linspace(0.0, 3.0, 301)
    p = th.logistic_p(t, -0.2, SIGMA, ETA)
    np.testing.assert_allclose(p, th.scalar_flow(t, -0.2, 0.0, SIGMA, ETA), rtol=1e-9)
    assert th.logistic_p(5.0, 0.0, SIGMA, ETA) == 0.0


def test_logistic_times_hit_half_and_ninety_percent():
    t_half, t_90 = th.logistic_times(1e-4, SIGMA, ETA)
    np.testing.assert_allclose(th.logistic_p([t_half, t_90], 1e-4, SIGMA, ETA), [0.5 * P_STAR, 0.9 * P_STAR], rtol=1e-13)


@pytest.mark.parametrize(("p", "delta"), [(0.3, 0.0), (1e-6, -20.0), (-1e-6, -20.0), (1e-6, 20.0), (-0.2, 3.0), (0.0, -2.0)])
def test_params_from_p_inverts_product_and_imbalance(p, delta):
    # (16): c b = p and c^2 - b^2 = Delta, c >= 0; relative to the scales involved, to rounding.
    b, c = th.params_from_p(p, delta)
    assert c >= 0
    assert abs(c * b - p) <= 1e-15 * max(abs(p), 1e-300)
    assert abs(c**2 - b**2 - delta) <= 1e-15 * np.hypot(delta, 2 * p)


def test_init_from_product_matches_eq5():
    p0, delta = np.array([1e-4, 0.3, 2.0]), np.array([0.5, 0.0, -1.0])
    c0 = np.sqrt((delta + np.sqrt(delta**2 + 4 * p0**2)) / 2)
    b0, c = th.init_from_product(p0, delta)
    np.testing.assert_allclose(c, c0, rtol=1e-14)
    np.testing.assert_allclose(b0, p0 / c0, rtol=1e-14)


def test_loss_from_p_matches_quadratic_form():
    # (17) against (10) for N = 1; Loss* is the minimum over p.
    syy = th.population_syy(A_STAR, G_STAR, 0.0, 0.1)
    p = np.linspace(-1.0, 2.0, 31)
    quadratic = 0.5 * (syy - 2 * p * SIGMA + p**2 * ETA)
    np.testing.assert_allclose(th.loss_from_p(p, SIGMA, ETA, syy), quadratic, rtol=1e-14, atol=1e-15)
    assert th.loss_from_p(P_STAR, SIGMA, ETA, syy) == pytest.approx(float(th.loss_star(SIGMA, ETA, syy)), rel=1e-15)
    np.testing.assert_allclose(th.loss_star(SIGMA, ETA, syy), 0.005, rtol=1e-12)  # noise only: s_eps^2/2


@pytest.mark.parametrize("delta", [0.0, 0.5, -3.0, 40.0])
def test_terminal_time_constant_matches_late_decay(delta):
    # (15): late-time slope of ln|p - p*| is -2 lambda_Delta; fitted where |p - p*| in (1e-9, 1e-5)
    # (the next order is |p - p*| itself, so 1e-4 relative is the right tolerance).
    t = np.linspace(0.0, 60.0, 60001)
    p = th.unbalanced_p(t, 1e-4, delta, SIGMA, ETA)
    gap = np.abs(p - P_STAR)
    keep = (gap < 1e-5) & (gap > 1e-9)
    slope = np.polyfit(t[keep], np.log(gap[keep]), 1)[0]
    assert -1 / slope == pytest.approx(float(th.terminal_time_constant(SIGMA, ETA, delta)), rel=1e-4)


@pytest.mark.parametrize("delta", [-20.0, 16.0])
def test_lazy_fit_matches_lazy_time_constant(delta):
    # T12 on the closed form: |Delta| eta >= 20 sigma; the fit is within 5% of tau/(eta |Delta|).
    assert abs(delta) * ETA >= 20 * SIGMA
    t = np.linspace(0.0, 2.0, 20001)
    fitted = _fitted_time_constant(t, th.unbalanced_p(t, 1e-4, delta, SIGMA, ETA), P_STAR)
    assert fitted == pytest.approx(float(th.lazy_time_constant(SIGMA, ETA, delta)), rel=0.05)


# --- 3.2, 3.4 Conservation and exact GD maps ------------------------------------------


def _gd_bc(b, c, sigma, eta, lam, n_steps):
    """Explicit GD on (10) with N = 1 in the parameters (b, c): the records of p and Delta."""
    p, d = [c * b], [c**2 - b**2]
    for _ in range(n_steps):
        r = sigma - eta * c * b
        b, c = b + lam * c * r, c + lam * b * r
        p.append(c * b)
        d.append(c**2 - b**2)
    return np.array(p), np.array(d)


def test_delta_step_matches_explicit_gd_step():
    # T4: (19) against one explicit GD step to 1e-12.
    rng = np.random.default_rng(0)
    for b, c, lam in zip(rng.normal(size=20), rng.normal(size=20), rng.uniform(0.01, 0.5, 20), strict=True):
        r = SIGMA - ETA * c * b
        b1, c1 = b + lam * c * r, c + lam * b * r
        assert abs(th.delta_step(c**2 - b**2, r, lam) - (c1**2 - b1**2)) < 1e-12 * max(1.0, b**2 + c**2)


def test_delta_conserved_under_vector_flow():
    # T4: under the ODE solver (rtol 1e-12), each Delta_n drifts by less than 1e-9.
    a_n = np.array([0.3, 0.6, 0.9])
    sigma_n, eta_nm = th.population_sigma_eta(a_n, A_STAR, G_STAR, 0.5)
    b0, c0 = th.init_from_product([1e-3, 0.1, -0.05], [0.5, -2.0, 0.0])
    b, c = th.vector_flow(np.linspace(0.0, 50.0, 501), b0, c0, sigma_n, eta_nm)
    assert np.max(np.abs((c**2 - b**2) - (c0**2 - b0**2))) < 1e-9


def test_gd_map_balanced_matches_explicit_gd():
    lam, p0 = 2e-2 / SIGMA, 1e-4
    b0, c0 = th.init_from_product(p0, 0.0)
    p_gd, d_gd = _gd_bc(float(b0), float(c0), SIGMA, ETA, lam, 3000)
    np.testing.assert_allclose(th.gd_map_balanced(p0, SIGMA, ETA, lam, 3000), p_gd, rtol=1e-12)
    assert np.all(d_gd == 0.0)  # (19): Delta = 0 stays exactly 0


@pytest.mark.parametrize(("p0", "delta"), [(1e-4, 0.5), (0.3, -2.0), (-0.2, 3.0)])
def test_gd_map_unbalanced_matches_explicit_gd(p0, delta):
    lam = 1e-2 / float(th.lambda_delta(SIGMA, ETA, delta))
    b0, c0 = th.init_from_product(p0, delta)
    p_gd, d_gd = _gd_bc(float(b0), float(c0), SIGMA, ETA, lam, 3000)
    p_map, d_map = th.gd_map_unbalanced(p0, delta, SIGMA, ETA, lam, 3000)
    assert np.max(np.abs(p_map - p_gd)) < 1e-12 * P_STAR
    assert np.max(np.abs(d_map - d_gd)) < 1e-12 * abs(delta)


def test_gd_map_balanced_error_is_first_order_in_lam():
    # 3.4 rule of thumb and T7/T8 on the exact map: max relative error of (18) against (13)
    # is about 3 lam sigma at p0 = 1e-4, and falls linearly over a 10x change of lam.
    errors = []
    for kappa in (2e-3, 2e-4):
        lam = kappa / SIGMA
        n_steps = int(np.ceil(12.0 / lam))
        p_map = th.gd_map_balanced(1e-4, SIGMA, ETA, lam, n_steps)
        flow = th.logistic_p(lam * np.arange(n_steps + 1), 1e-4, SIGMA, ETA)
        errors.append(np.max(np.abs(p_map - flow) / flow))
    assert 1.5 * 2e-3 < errors[0] < 6 * 2e-3
    assert 7 <= errors[0] / errors[1] <= 13


# --- 3.5 Depth ------------------------------------------------------------------------


@pytest.mark.parametrize("depth_D", [2, 4, 6])
def test_gd_map_depth_matches_explicit_gd(depth_D):
    # T3 (24): explicit GD on D scalars w_i with p = prod w_i, from all-equal w = p0^{1/D}.
    lam, p0, n_steps = 1e-2, 1e-2, 2000
    w = np.full(depth_D, p0 ** (1 / depth_D))
    p_gd = [np.prod(w)]
    for _ in range(n_steps):
        r = SIGMA - ETA * np.prod(w)
        w = w + lam * r * np.array([np.prod(np.delete(w, i)) for i in range(depth_D)])
        p_gd.append(np.prod(w))
    np.testing.assert_allclose(th.gd_map_depth(p0, SIGMA, ETA, lam, depth_D, n_steps), p_gd, rtol=1e-11)
    if depth_D == 2:
        balanced = th.gd_map_balanced(p0, SIGMA, ETA, lam, n_steps)
        np.testing.assert_allclose(th.gd_map_depth(p0, SIGMA, ETA, lam, 2, n_steps), balanced, rtol=1e-14)


def test_depth_flow_p_d2_matches_logistic():
    t = np.linspace(0.0, 20.0, 2001)
    np.testing.assert_allclose(th.depth_flow_p(t, 1e-4, SIGMA, ETA, 2), th.logistic_p(t, 1e-4, SIGMA, ETA), rtol=1e-9)


@pytest.mark.parametrize("depth_D", [4, 6])
def test_depth_flow_p_inverts_depth_time(depth_D):
    # The ODE (21) and the quadrature (22) are independent: t(p(t)) = t up to the first crossing of 0.99 p*.
    t = np.linspace(0.0, 60.0, 61)
    p = th.depth_flow_p(t, 1e-3, SIGMA, ETA, depth_D)
    keep = (t > 0) & (p < 0.99 * P_STAR)
    np.testing.assert_allclose(th.depth_time(p[keep], 1e-3, SIGMA, ETA, depth_D), t[keep], rtol=1e-9)
    if depth_D == 4:
        np.testing.assert_allclose(th.depth_time_d4(p[keep], 1e-3, SIGMA, ETA), t[keep], rtol=1e-9)


@pytest.mark.parametrize(
    ("depth_D", "p0", "reference"),
    [(2, 1e-2, 2.30), (4, 1e-2, 4.68), (6, 1e-2, 5.35), (2, 1e-4, 4.61), (4, 1e-4, 49.7), (6, 1e-4, 116)],
)
def test_depth_time_reproduces_reference_values(depth_D, p0, reference):
    # T6: T_D of section 3.5 (sigma = eta = 1, so p* = 1 and T_D = t_half) to 3 significant digits.
    t_half = float(th.depth_t_half(p0, 1.0, 1.0, depth_D))
    assert float(f"{t_half:.3g}") == reference


@pytest.mark.parametrize(("sigma", "eta"), [(1.0, 1.0), (SIGMA, ETA), (2.0, 0.5)])
def test_depth_time_d4_matches_quadrature(sigma, eta):
    # T6: (23) matches (22) to 1e-10 relative.
    p_star = sigma / eta
    p = p_star * np.array([2e-4, 1e-2, 0.1, 0.5, 0.9, 0.999])
    closed = th.depth_time_d4(p, 1e-4 * p_star, sigma, eta)
    np.testing.assert_allclose(closed, th.depth_time(p, 1e-4 * p_star, sigma, eta, 4), rtol=1e-10)


@pytest.mark.parametrize("depth_D", [2, 4, 6])
def test_depth_t_half_scaling_law(depth_D):
    # (25): t_half = T_D(p0/p*) tau / (eta p*^{2 - 2/D}); D = 2 gives (14).
    sigma, eta, ratio = 2.0, 0.5, 1e-3
    p_star = sigma / eta
    t_half = th.depth_t_half(ratio * p_star, sigma, eta, depth_D)
    t_unit = th.depth_t_half(ratio, 1.0, 1.0, depth_D)
    assert t_half == pytest.approx(float(t_unit / (eta * p_star ** (2 - 2 / depth_D))), rel=1e-10)
    if depth_D == 2:
        expected = th.logistic_times(ratio * p_star, sigma, eta)
        np.testing.assert_allclose([t_half, th.depth_t_90(ratio * p_star, sigma, eta, 2)], expected, rtol=1e-10)


# --- 3.6 Latent size N ----------------------------------------------------------------


def _tied_flow(t, b0, c0, sigma_n, eta_nm):
    """Gradient flow of (10) in the shared scalars (b, c) of B = b 1, C = c 1^T: total gain N c b."""

    def rhs(_, y):
        b, c = y
        r = np.sum(sigma_n - eta_nm @ np.full(len(sigma_n), c * b))
        return [c * r, b * r]

    sol = solve_ivp(rhs, (0.0, t[-1]), [b0, c0], method="DOP853", t_eval=t, rtol=1e-12, atol=1e-15)
    return len(sigma_n) * sol.y[0] * sol.y[1]


@pytest.mark.parametrize("delta", [0.0, 0.5, -2.0])
@pytest.mark.parametrize("init_norm", ["per_state", "total"])
@pytest.mark.parametrize("param", ["tied", "untied"])
def test_nscaling_matches_n_state_flow(param, init_norm, delta):
    # (26)-(28): the total gain of the N-state flow with identical a_n is the scalar closed form.
    n, s0 = 4, 1e-3
    sigma_n, eta_nm = np.full(n, SIGMA), np.full((n, n), ETA)
    red = th.nscaling(param, init_norm, n, SIGMA, ETA, s0, delta)
    b0, c0 = th.init_from_product(red.p0_entry, red.delta_entry)
    t = np.linspace(0.0, 20.0, 2001)
    if param == "tied":
        p_flow = _tied_flow(t, float(b0), float(c0), sigma_n, eta_nm)
    else:
        b, c = th.vector_flow(t, np.full(n, b0), np.full(n, c0), sigma_n, eta_nm)
        p_flow = np.sum(c * b, axis=1)
    p_m = th.unbalanced_p(red.m * t, red.p0_total, red.delta_eff, SIGMA, ETA)
    p_eff = th.unbalanced_p(t, red.p0_total, red.delta_eff, red.sigma_eff, red.eta_eff)
    assert np.max(np.abs(p_m - p_flow)) / P_STAR < 1e-8
    assert np.max(np.abs(p_eff - p_m)) / P_STAR < 1e-12
    assert red.p0_total == pytest.approx(p_flow[0], rel=1e-14)


def test_nscaling_tied_spread_poles_is_exact():
    # 3.6: tied with spread a_n follows (26) exactly, with sigma = sigma_N/N and eta = eta_N/N^2.
    n = 4
    a_n = 0.3 + 0.6 * (np.arange(1, n + 1) - 0.5) / n
    sigma_n, eta_nm = th.population_sigma_eta(a_n, A_STAR, G_STAR, 0.0)
    sigma_bar, eta_bar = np.sum(sigma_n) / n, np.sum(eta_nm) / n**2
    red = th.nscaling("tied", "per_state", n, sigma_bar, eta_bar, 1e-3, -2.0)
    b0, c0 = th.init_from_product(red.p0_entry, red.delta_entry)
    t = np.linspace(0.0, 20.0, 2001)
    p_flow = _tied_flow(t, float(b0), float(c0), sigma_n, eta_nm)
    p_red = th.unbalanced_p(red.m * t, red.p0_total, red.delta_eff, sigma_bar, eta_bar)
    assert np.max(np.abs(p_red - p_flow)) / (sigma_bar / eta_bar) < 1e-8


# Table 3.6, per row: balanced rate / (2 sigma), N inside ln(sigma/(N^? eta s0) - 1), lazy rate / (eta |Delta|).
_TABLE = {
    ("tied", "per_state"): (lambda n: n, lambda n: n, lambda n: n**2),
    ("tied", "total"): (lambda n: n, lambda n: 1, lambda n: n),
    ("untied", "per_state"): (lambda n: 1, lambda n: n, lambda n: n),
    ("untied", "total"): (lambda n: 1, lambda n: 1, lambda n: 1),
}
_NS = np.array([1, 2, 4, 8, 16])


@pytest.mark.parametrize(("param", "init_norm"), list(_TABLE))
def test_nscaling_reproduces_table_rates(param, init_norm):
    # Table 3.6 with s0 = 1e-6 (F3): balanced t_half measured on a fine grid of the reduction
    # (grid error < 1e-5 relative), lazy time constant fitted as in T12 at Delta = -20 (within 5%).
    bal_rate, log_n, lazy_rate = _TABLE[(param, init_norm)]
    s0, delta = 1e-6, -20.0
    for n in _NS:
        red = th.nscaling(param, init_norm, n, SIGMA, ETA, s0, 0.0)
        t_half_table = np.log(SIGMA / (log_n(n) * ETA * s0) - 1) / (2 * bal_rate(n) * SIGMA)
        t = np.linspace(0.0, 2 * t_half_table, 40001)
        p = th.unbalanced_p(red.m * t, red.p0_total, red.delta_eff, SIGMA, ETA)
        assert th.t_half_numeric(t, p, P_STAR) == pytest.approx(t_half_table, rel=1e-5)
        assert th.logistic_times(red.p0_total, red.sigma_eff, red.eta_eff)[0] == pytest.approx(t_half_table, rel=1e-12)

        lazy = th.nscaling(param, init_norm, n, SIGMA, ETA, s0, delta)
        assert abs(lazy.delta_eff) * ETA >= 25 * SIGMA  # F3: lazy regime at every N
        tau_lazy = 1 / (lazy_rate(n) * ETA * abs(delta))
        t = np.linspace(0.0, 10 * tau_lazy, 20001)
        p = th.unbalanced_p(lazy.m * t, lazy.p0_total, lazy.delta_eff, SIGMA, ETA)
        assert _fitted_time_constant(t, p, P_STAR) == pytest.approx(tau_lazy, rel=0.05)


def test_nscaling_tied_per_state_exponents():
    # T13/T14 on the theory: raw t_half slope in [-1.15, -0.95], log-corrected slope 0 +/- 0.02,
    # lazy time constant times N^2 constant to 5%; other rows' lazy exponents -1, -1, 0 (+/- 0.05).
    s0, log_n = 1e-6, np.log(_NS)
    reductions = [th.nscaling("tied", "per_state", n, SIGMA, ETA, s0, 0.0) for n in _NS]
    t_half = np.array([th.logistic_times(r.p0_total, r.sigma_eff, r.eta_eff)[0] for r in reductions])
    corrected = t_half * 2 * _NS * SIGMA / np.log(SIGMA / (_NS * ETA * s0) - 1)
    assert -1.15 <= np.polyfit(log_n, np.log(t_half), 1)[0] <= -0.95
    assert abs(np.polyfit(log_n, np.log(corrected), 1)[0]) < 0.02
    for (param, init_norm), exponent in zip(_TABLE, (-2, -1, -1, 0), strict=True):
        taus = []
        for n in _NS:
            red = th.nscaling(param, init_norm, n, SIGMA, ETA, s0, -20.0)
            t = np.linspace(0.0, 10 * th.lazy_time_constant(red.sigma_eff, red.eta_eff, red.delta_eff), 20001)
            p = th.unbalanced_p(t, red.p0_total, red.delta_eff, red.sigma_eff, red.eta_eff)
            taus.append(_fitted_time_constant(t, p, P_STAR))
        assert np.polyfit(log_n, np.log(taus), 1)[0] == pytest.approx(exponent, abs=0.05)
        if exponent == -2:
            assert np.ptp(np.array(taus) * _NS**2) < 0.05 * np.min(np.array(taus) * _NS**2)


def test_nscaling_rejects_unknown_choices():
    with pytest.raises(ValueError, match="param='shared'"):
        th.nscaling("shared", "total", 2, SIGMA, ETA, 1e-6, 0.0)
    with pytest.raises(ValueError, match="init_norm='mean'"):
        th.nscaling("tied", "mean", 2, SIGMA, ETA, 1e-6, 0.0)


# --- 3.7 Trained A --------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.5])
@pytest.mark.parametrize("a", [-0.4, 0.0, 0.3, 0.8])
def test_gamma_ar1_derivatives_match_finite_differences(a, rho):
    # Central differences with h = 1e-5 have truncation error ~1e-10 relative here.
    h = 1e-5

    def sigma_of(x):
        return G_STAR * th.gamma_ar1(x, A_STAR, rho)

    def eta_of(x):
        return th.gamma_ar1(x, x, rho)

    d_sigma = G_STAR * th.gamma_ar1_da(a, A_STAR, rho)
    d_eta = 2 * th.gamma_ar1_da(a, a, rho)
    assert d_sigma == pytest.approx(float(sigma_of(a + h) - sigma_of(a - h)) / (2 * h), rel=1e-8)
    assert d_eta == pytest.approx(float(eta_of(a + h) - eta_of(a - h)) / (2 * h), rel=1e-8)


def _population_loss(b, c, a, rho):
    p = c * b
    sigma, eta = G_STAR * th.gamma_ar1(a, A_STAR, rho), th.gamma_ar1(a, a, rho)
    return 0.5 * (th.population_syy(A_STAR, G_STAR, rho) - 2 * p * sigma + p**2 * eta)


def test_trained_a_flow_matches_finite_difference_gradient_flow():
    # Independent reference: gradient flow of the population loss with a central-difference
    # gradient (error ~1e-10, so its solver runs at rtol 1e-10); trajectories agree to 1e-7.
    rho, h = 0.5, 1e-6

    def rhs(_, y):
        grad = [(_population_loss(*(y + h * e), rho) - _population_loss(*(y - h * e), rho)) / (2 * h) for e in np.eye(3)]
        return -np.array(grad)

    t = np.linspace(0.0, 20.0, 201)
    y0 = [0.05, 0.2, 0.1]
    ref = solve_ivp(rhs, (0.0, t[-1]), y0, method="DOP853", t_eval=t, rtol=1e-10, atol=1e-12).y
    np.testing.assert_allclose(np.stack(th.trained_a_flow(t, *y0, A_STAR, G_STAR, rho)), ref, atol=1e-7)


@pytest.mark.parametrize("a0", [0.0, 0.3, 0.6])
def test_trained_a_flow_decreases_loss_and_finds_teacher(a0):
    # F5: b0 = c0 = 0.01; the loss never rises (beyond rounding of Syy ~ 1e-16), Delta stays 0,
    # and on noiseless data the flow ends at the teacher (a*, g*).
    t = np.linspace(0.0, 40.0, 4001)
    b, c, a = th.trained_a_flow(t, 0.01, 0.01, a0, A_STAR, G_STAR, 0.0)
    loss = _population_loss(b, c, a, 0.0)
    syy = th.population_syy(A_STAR, G_STAR, 0.0)
    assert np.all(np.diff(loss) <= 1e-14 * syy)
    assert loss[-1] < 1e-8 * syy
    assert np.max(np.abs(c**2 - b**2)) < 1e-9
    assert a[-1] == pytest.approx(A_STAR, abs=1e-6)
    assert c[-1] * b[-1] == pytest.approx(G_STAR, abs=1e-6)


# --- Measurement ----------------------------------------------------------------------


def test_t_half_numeric_matches_logistic_times():
    # Linear interpolation on a grid with spacing dt errs by O(dt^2 sigma): 1e-6 relative here.
    t = np.linspace(0.0, 10.0, 10001)
    p = th.logistic_p(t, 1e-4, SIGMA, ETA)
    t_half, t_90 = th.logistic_times(1e-4, SIGMA, ETA)
    assert th.t_half_numeric(t, p, P_STAR) == pytest.approx(float(t_half), rel=1e-6)
    assert th.t_half_numeric(t, p, P_STAR, level=0.9) == pytest.approx(float(t_90), rel=1e-6)
    assert np.isnan(th.t_half_numeric(t[:10], p[:10], P_STAR))
    assert th.t_half_numeric(t, p, 1e-4) == 0.0
