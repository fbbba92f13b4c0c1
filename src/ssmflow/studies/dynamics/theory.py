"""Theory of the `dynamics` study: closed forms, exact GD maps and ODE references.

Pure NumPy/SciPy in float64, one section per subsection of the spec
(`specs/dynamics.md`, eqs. 8-29). Time is in units of tau (t = k lam, C5). Unless a
docstring says otherwise, array arguments broadcast against each other and results
are float64 arrays of the broadcast shape. Gains are assumed to have sigma > 0 and
eta > 0 (C8). ODE references use DOP853 with rtol 1e-12 and start at t = 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike
from scipy.integrate import quad, solve_ivp

#: any float64 array-like, broadcast against the other arguments; results have the broadcast shape
FloatLike = Float[ArrayLike, "..."]
FloatArray = Float[np.ndarray, "..."]

_RTOL = 1e-12
_ATOL = 1e-15
_QUAD_EPSREL = 1e-13


def _f64(*xs: ArrayLike) -> list[np.ndarray]:
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in xs))


def _solve(rhs, t: np.ndarray, y0: np.ndarray) -> np.ndarray:
    """Integrate y' = rhs(y) from y(0) = y0 and return y at the sorted times t, (time, dim)."""
    t = np.asarray(t, dtype=np.float64)
    y0 = np.asarray(y0, dtype=np.float64)
    if t[-1] == 0:
        return np.tile(y0, (len(t), 1))
    sol = solve_ivp(
        lambda _, y: rhs(y), (0.0, t[-1]), y0, method="DOP853", t_eval=t, rtol=_RTOL, atol=_ATOL
    )
    if not sol.success:
        raise RuntimeError(f"ODE reference failed: {sol.message}")
    return sol.y.T


# --- 3.1 Sufficient statistics (population) -----------------------------------------


def gamma_ar1(a: FloatLike, b: FloatLike, rho: FloatLike) -> FloatArray:
    """Population <z_a z_b> for unit-variance AR(1) input filtered by poles a and b, eq. (8).

    **Arguments:** poles `a`, `b` and the AR(1) coefficient `rho` (0 is white), |.| < 1.
    **Returns:** Gamma(a, b) = (1 - a b rho^2) / ((1 - a b)(1 - a rho)(1 - b rho)).
    """
    a, b, rho = _f64(a, b, rho)
    return (1 - a * b * rho**2) / ((1 - a * b) * (1 - a * rho) * (1 - b * rho))


def gamma_ar1_da(a: FloatLike, b: FloatLike, rho: FloatLike) -> FloatArray:
    """Partial derivative of Gamma(a, b) of eq. (8) with respect to its first pole a.

    **Arguments:** as `gamma_ar1`.
    **Returns:** dGamma/da = Gamma (b/(1 - a b) + rho/(1 - a rho) - b rho^2/(1 - a b rho^2)).
    """
    a, b, rho = _f64(a, b, rho)
    log_da = b / (1 - a * b) + rho / (1 - a * rho) - b * rho**2 / (1 - a * b * rho**2)
    return gamma_ar1(a, b, rho) * log_da


def population_sigma_eta(
    a_n: Float[ArrayLike, " state"], a_star: float, g_star: float, rho: float
) -> tuple[Float[np.ndarray, " state"], Float[np.ndarray, "state state2"]]:
    """Population sigma_n and eta_nm for the one-pole teacher g* G_{a*}, eq. (9).

    **Arguments:** poles `a_n` (N,); teacher pole `a_star` and gain `g_star`; AR(1) `rho`.
    **Returns:** (sigma_n (N,), eta_nm (N, N)) = (g* Gamma(a_n, a*), Gamma(a_n, a_m)).
    """
    a_n = np.atleast_1d(np.asarray(a_n, dtype=np.float64))
    return g_star * gamma_ar1(a_n, a_star, rho), gamma_ar1(a_n[:, None], a_n[None, :], rho)


def population_sigma_eta_quadrature(
    a_n: Float[ArrayLike, " state"], a_star: float, g_star: float, rho: float, n_points: int = 8192
) -> tuple[Float[np.ndarray, " state"], Float[np.ndarray, "state state2"]]:
    """Population sigma_n and eta_nm as (1/2pi) integrals over w of the integrands of (7).

    The integrands are analytic and 2pi-periodic, so the trapezoidal rule on `n_points`
    equispaced nodes converges geometrically, with error of order max(|a|, |rho|)^n_points.

    **Arguments:** as `population_sigma_eta`; `n_points` quadrature nodes.
    **Returns:** (sigma_n (N,), eta_nm (N, N)), independent of the closed form (9).
    """
    a_n = np.atleast_1d(np.asarray(a_n, dtype=np.float64))
    w = 2 * np.pi * np.arange(n_points) / n_points
    z = np.exp(-1j * w)
    s_uu = (1 - rho**2) / np.abs(1 - rho * z) ** 2
    g_n = 1 / (1 - a_n[:, None] * z)
    h_star = g_star / (1 - a_star * z)
    sigma_n = np.mean(np.real(np.conj(g_n) * h_star) * s_uu, axis=1)
    eta_nm = np.real((np.conj(g_n) * s_uu) @ g_n.T) / n_points
    return sigma_n, eta_nm


def population_syy(
    a_star: FloatLike, g_star: FloatLike, rho: FloatLike, noise_std: FloatLike = 0.0
) -> FloatArray:
    """Population Syy = <y^2> of the one-pole teacher with white output noise, from (8).

    **Arguments:** teacher pole `a_star`, gain `g_star`; AR(1) `rho`; noise std `noise_std`.
    **Returns:** g*^2 Gamma(a*, a*) + noise_std^2.
    """
    a_star, g_star, rho, noise_std = _f64(a_star, g_star, rho, noise_std)
    return g_star**2 * gamma_ar1(a_star, a_star, rho) + noise_std**2


# --- 3.3 One layer, N = 1: closed forms ---------------------------------------------


def logistic_p(t: FloatLike, p0: FloatLike, sigma: FloatLike, eta: FloatLike) -> FloatArray:
    """Balanced (Delta = 0) flow p(t) of (12): the logistic (13), overflow-safe for t >= 0.

    For p0 > 0 this is (13) literally. A balanced start with p0 < 0 (c = -b) decays to 0
    as p* p0 e / (p0 e + p* - p0) with e = exp(-2 sigma t); p0 = 0 stays 0.

    **Arguments:** times `t` >= 0; initial product `p0`; statistics `sigma` > 0, `eta` > 0.
    **Returns:** p(t).
    """
    t, p0, sigma, eta = _f64(t, p0, sigma, eta)
    p_star = sigma / eta
    e = np.exp(-2 * sigma * t)
    p0_pos = np.where(p0 > 0, p0, 1.0)
    p0_neg = np.where(p0 < 0, p0, -1.0)
    grow = p_star / (1 + (p_star / p0_pos - 1) * e)
    decay = p_star * p0_neg * e / (p0_neg * e + p_star - p0_neg)
    return np.where(p0 > 0, grow, np.where(p0 < 0, decay, 0.0))


def logistic_times(p0: FloatLike, sigma: FloatLike, eta: FloatLike) -> tuple[FloatArray, FloatArray]:
    """Times at which the logistic (13) reaches p*/2 and 0.9 p*, eq. (14).

    **Arguments:** initial product 0 < `p0` < p*; statistics `sigma`, `eta`.
    **Returns:** (t_half, t_90) = (ln(p*/p0 - 1), ln(9 (p*/p0 - 1))) / (2 sigma).
    """
    p0, sigma, eta = _f64(p0, sigma, eta)
    log_ratio = np.log(sigma / (eta * p0) - 1)
    return log_ratio / (2 * sigma), (log_ratio + np.log(9.0)) / (2 * sigma)


def lambda_delta(sigma: FloatLike, eta: FloatLike, delta: FloatLike) -> FloatArray:
    """Half the terminal rate of the N = 1 flow, eq. (15).

    **Arguments:** statistics `sigma`, `eta`; imbalance `delta` = c^2 - b^2.
    **Returns:** lambda_Delta = sqrt(sigma^2 + eta^2 Delta^2 / 4).
    """
    sigma, eta, delta = _f64(sigma, eta, delta)
    return np.hypot(sigma, eta * delta / 2)


def unbalanced_p(
    t: FloatLike, p0: FloatLike, delta: FloatLike, sigma: FloatLike, eta: FloatLike
) -> FloatArray:
    """Flow p(t) of (12) for any imbalance and any p0: the explicit solution (15)-(16).

    Evaluated in y = (|Delta|/4) x, so p = y - (|Delta|/4)^2 / y, which stays finite as
    Delta -> 0 (y+ -> p*, y- -> 0). For p0 < 0 it uses the symmetry
    (p, sigma) -> (-p, -sigma) of (12), so that y never suffers cancellation. Where
    Delta == 0 it is exactly the logistic (13) (`logistic_p`).

    **Arguments:** times `t` >= 0; initial product `p0`; imbalance `delta`; `sigma`, `eta`.
    **Returns:** p(t).
    """
    t, p0, delta, sigma, eta = _f64(t, p0, delta, sigma, eta)
    balanced = delta == 0
    h = np.abs(np.where(balanced, 1.0, delta)) / 4
    sign = np.where(p0 < 0, -1.0, 1.0)
    sig, q0 = sign * sigma, sign * p0
    lam = np.hypot(sig, 2 * eta * h)
    y_big = (sig + np.where(sig >= 0, lam, -lam)) / (2 * eta)
    y_small = -h * (h / y_big)
    y_plus, y_minus = np.where(sig >= 0, y_big, y_small), np.where(sig >= 0, y_small, y_big)
    y0 = (q0 + np.hypot(q0, 2 * h)) / 2
    r = (y0 - y_plus) / (y0 - y_minus) * np.exp(-2 * lam * t)
    y = (y_plus - r * y_minus) / (1 - r)
    return np.where(balanced, logistic_p(t, p0, sigma, eta), sign * (y - h * (h / y)))


def params_from_p(p: FloatLike, delta: FloatLike) -> tuple[FloatArray, FloatArray]:
    """Per-state (b, c) with c b = p and c^2 - b^2 = Delta on the branch c >= 0, eq. (16).

    Both squares are computed without cancellation (also for Delta << 0 and tiny p).

    **Arguments:** product `p`; imbalance `delta`.
    **Returns:** (b, c), with c^2 = (Delta + sqrt(Delta^2 + 4 p^2))/2 and sign(b) = sign(p).
    """
    p, delta = _f64(p, delta)
    s = np.hypot(delta, 2 * p)
    c2 = np.where(delta >= 0, (delta + s) / 2, 2 * p**2 / np.where(s - delta > 0, s - delta, 1.0))
    b2 = np.where(delta <= 0, (s - delta) / 2, 2 * p**2 / np.where(s + delta > 0, s + delta, 1.0))
    return np.where(p < 0, -1.0, 1.0) * np.sqrt(b2), np.sqrt(c2)


def init_from_product(p0: FloatLike, delta: FloatLike) -> tuple[FloatArray, FloatArray]:
    """Deterministic initialization (b0, c0) from the product p0 and imbalance Delta, eq. (5).

    **Arguments:** initial product `p0`; imbalance `delta` = c0^2 - b0^2.
    **Returns:** (b0, c0) on the positive branch c0 >= 0 (see `params_from_p`).
    """
    return params_from_p(p0, delta)


def loss_star(sigma: FloatLike, eta: FloatLike, syy: FloatLike) -> FloatArray:
    """Minimal loss of the N = 1 model, eq. (17).

    **Arguments:** statistics `sigma`, `eta`, `syy`.
    **Returns:** Loss* = (Syy - sigma^2/eta) / 2.
    """
    sigma, eta, syy = _f64(sigma, eta, syy)
    return (syy - sigma**2 / eta) / 2


def loss_from_p(p: FloatLike, sigma: FloatLike, eta: FloatLike, syy: FloatLike) -> FloatArray:
    """Loss (10) of the N = 1 model at total gain p, in the form (17).

    **Arguments:** gain `p`; statistics `sigma`, `eta`, `syy`.
    **Returns:** Loss* + (eta/2)(p - p*)^2 = (Syy - 2 p sigma + p^2 eta)/2.
    """
    p, sigma, eta, syy = _f64(p, sigma, eta, syy)
    return loss_star(sigma, eta, syy) + eta / 2 * (p - sigma / eta) ** 2


def lazy_time_constant(sigma: FloatLike, eta: FloatLike, delta: FloatLike) -> FloatArray:
    """Relaxation time constant in the lazy limit |Delta| eta >> sigma (section 3.3).

    **Arguments:** `sigma` (not used by the limit; same signature as
    `terminal_time_constant`); `eta`; imbalance `delta`.
    **Returns:** tau / (eta |Delta|).
    """
    del sigma
    eta, delta = _f64(eta, delta)
    return 1 / (eta * np.abs(delta))


def terminal_time_constant(sigma: FloatLike, eta: FloatLike, delta: FloatLike) -> FloatArray:
    """Exact terminal time constant of the N = 1 flow, from (15).

    **Arguments:** statistics `sigma`, `eta`; imbalance `delta`.
    **Returns:** tau / (2 lambda_Delta).
    """
    return 1 / (2 * lambda_delta(sigma, eta, delta))


def scalar_flow(
    t: Float[ArrayLike, " step"], p0: float, delta: float, sigma: float, eta: float
) -> Float[np.ndarray, " step"]:
    """Numerical solution of the scalar ODE (12) (reference for T5).

    **Arguments:** sorted times `t` >= 0; scalars `p0`, `delta`, `sigma`, `eta`.
    **Returns:** p(t).
    """
    return _solve(lambda y: np.hypot(delta, 2 * y) * (sigma - eta * y), t, [p0])[:, 0]


# --- 3.4 Gradient descent versus gradient flow: exact maps --------------------------


def _iterate(step, x0: tuple[np.ndarray, ...], n_steps: int) -> list[np.ndarray]:
    out = [np.empty((n_steps + 1, *x.shape)) for x in x0]
    for o, x in zip(out, x0, strict=True):
        o[0] = x
    for k in range(n_steps):
        for o, x in zip(out, step(*(o[k] for o in out)), strict=True):
            o[k + 1] = x
    return out


def gd_map_balanced(
    p0: FloatLike, sigma: FloatLike, eta: FloatLike, lam: FloatLike, n_steps: int
) -> Float[np.ndarray, "step ..."]:
    """Exact GD on (b, c) with balanced start, N = 1: p_{k+1} = p_k (1 + lam r_k)^2, eq. (18).

    **Arguments:** initial product `p0`; `sigma`, `eta`; learning rate `lam`; `n_steps`.
    **Returns:** p_k for k = 0..n_steps, shape (n_steps + 1, *broadcast shape).
    """
    p0, sigma, eta, lam = _f64(p0, sigma, eta, lam)
    return _iterate(lambda p: (p * (1 + lam * (sigma - eta * p)) ** 2,), (p0,), n_steps)[0]


def gd_map_unbalanced(
    p0: FloatLike, delta: FloatLike, sigma: FloatLike, eta: FloatLike, lam: FloatLike, n_steps: int
) -> tuple[Float[np.ndarray, "step ..."], Float[np.ndarray, "step ..."]]:
    """Exact GD on (b, c), N = 1, any imbalance, as a map on (p, Delta); (18)-(19).

    p_{k+1} = p_k (1 + lam^2 r_k^2) + lam r_k sqrt(Delta_k^2 + 4 p_k^2) (as b^2 + c^2 =
    sqrt(Delta^2 + 4 p^2)) and Delta_{k+1} = (1 - lam^2 r_k^2) Delta_k; Delta = 0 gives (18).

    **Arguments:** initial `p0`, `delta`; `sigma`, `eta`; learning rate `lam`; `n_steps`.
    **Returns:** (p_k, Delta_k) for k = 0..n_steps, each (n_steps + 1, *broadcast shape).
    """
    p0, delta, sigma, eta, lam = _f64(p0, delta, sigma, eta, lam)

    def step(p, d):
        lr = lam * (sigma - eta * p)
        return p * (1 + lr**2) + lr * np.hypot(d, 2 * p), delta_step(d, sigma - eta * p, lam)

    p, d = _iterate(step, (p0, delta), n_steps)
    return p, d


def delta_step(delta: FloatLike, r: FloatLike, lam: FloatLike) -> FloatArray:
    """One GD step of the imbalance, N = 1, eq. (19).

    **Arguments:** imbalance `delta`; residual `r` = sigma - eta p; learning rate `lam`.
    **Returns:** Delta_{k+1} = (1 - lam^2 r^2) Delta_k.
    """
    delta, r, lam = _f64(delta, r, lam)
    return (1 - (lam * r) ** 2) * delta


# --- 3.5 Depth ----------------------------------------------------------------------


def gd_map_depth(
    p0: FloatLike, sigma: FloatLike, eta: FloatLike, lam: FloatLike, depth_D: int, n_steps: int
) -> Float[np.ndarray, "step ..."]:
    """Exact GD on D equal scalars (balanced all-equal start), eq. (24); D = 2 gives (18).

    **Arguments:** initial product `p0` >= 0; `sigma`, `eta`; `lam`; depth `depth_D`; `n_steps`.
    **Returns:** p_k = (1 + lam p^{1 - 2/D} r)^D p for k = 0..n_steps, (n_steps + 1, ...).
    """
    p0, sigma, eta, lam = _f64(p0, sigma, eta, lam)
    expo = 1 - 2 / depth_D

    def step(p):
        return (p * (1 + lam * p**expo * (sigma - eta * p)) ** depth_D,)

    return _iterate(step, (p0,), n_steps)[0]


def depth_flow_p(
    t: Float[ArrayLike, " step"], p0: float, sigma: float, eta: float, depth_D: int
) -> Float[np.ndarray, " step"]:
    """Numerical solution of the depth-D flow (21), integrated in u = ln p.

    **Arguments:** sorted times `t` >= 0; scalars `p0` > 0, `sigma`, `eta`; depth `depth_D`.
    **Returns:** p(t).
    """
    if not p0 > 0:
        raise ValueError(f"depth_flow_p needs p0 > 0 (got p0={p0!r}).")
    expo = 1 - 2 / depth_D

    def rhs(u):
        return depth_D * np.exp(expo * u) * (sigma - eta * np.exp(u))

    return np.exp(_solve(rhs, t, [np.log(p0)])[:, 0])


def depth_time(
    p: FloatLike, p0: FloatLike, sigma: FloatLike, eta: FloatLike, depth_D: FloatLike
) -> FloatArray:
    """Time for the depth-D flow (21) to go from p0 to p, by quadrature of (22).

    Integrated in u = ln q: t = (1/D) int q^{2/D - 1} / (sigma - eta q) du.

    **Arguments:** `p` and `p0` on the same side of p* (both > 0); `sigma`, `eta`; `depth_D`.
    **Returns:** t(p).
    """

    def one(p, p0, sigma, eta, d):
        def f(u):
            return np.exp((2 / d - 1) * u) / (sigma - eta * np.exp(u)) / d

        return quad(f, np.log(p0), np.log(p), epsabs=0.0, epsrel=_QUAD_EPSREL, limit=200)[0]

    return np.asarray(np.vectorize(one, otypes=[np.float64])(*_f64(p, p0, sigma, eta, depth_D)))


def depth_time_d4(p: FloatLike, p0: FloatLike, sigma: FloatLike, eta: FloatLike) -> FloatArray:
    """Closed form of (22) for D = 4, eq. (23).

    **Arguments:** `p`, `p0` in (0, p*); `sigma`, `eta`.
    **Returns:** t = (1/(2 sigma)) [1/w0 - 1/w + v (atanh(v w) - atanh(v w0))], w = sqrt(p),
    v = sqrt(eta/sigma).
    """
    p, p0, sigma, eta = _f64(p, p0, sigma, eta)
    w, w0, v = np.sqrt(p), np.sqrt(p0), np.sqrt(eta / sigma)
    return (1 / w0 - 1 / w + v * (np.arctanh(v * w) - np.arctanh(v * w0))) / (2 * sigma)


def depth_t_half(p0: FloatLike, sigma: FloatLike, eta: FloatLike, depth_D: FloatLike) -> FloatArray:
    """Time for the depth-D flow (21) to reach p*/2 from p0 < p*/2, by (22); cf. (25).

    **Arguments:** `p0`; `sigma`, `eta`; `depth_D`.
    **Returns:** t_half.
    """
    p0, sigma, eta = _f64(p0, sigma, eta)
    return depth_time(0.5 * sigma / eta, p0, sigma, eta, depth_D)


def depth_t_90(p0: FloatLike, sigma: FloatLike, eta: FloatLike, depth_D: FloatLike) -> FloatArray:
    """Time for the depth-D flow (21) to reach 0.9 p* from p0 < 0.9 p*, by (22).

    **Arguments:** `p0`; `sigma`, `eta`; `depth_D`.
    **Returns:** t_90.
    """
    p0, sigma, eta = _f64(p0, sigma, eta)
    return depth_time(0.9 * sigma / eta, p0, sigma, eta, depth_D)


# --- 3.6 Latent size N --------------------------------------------------------------


class NScaling(NamedTuple):
    """Scalar reduction (28): p(t) = unbalanced_p(m t, p0_total, delta_eff, sigma, eta).

    Equivalently p(t) = unbalanced_p(t, p0_total, delta_eff, sigma_eff, eta_eff) with
    (sigma_eff, eta_eff) = m (sigma, eta); lambda_delta(sigma_eff, eta_eff, delta_eff) is the
    lambda_var of section 4. Every entry has product p/N and imbalance delta_entry.
    """

    m: np.ndarray
    p0_total: np.ndarray
    delta_eff: np.ndarray
    sigma_eff: np.ndarray
    eta_eff: np.ndarray
    p0_entry: np.ndarray
    delta_entry: np.ndarray


_PARAMS = ("tied", "untied")
_INIT_NORMS = ("per_state", "total")


def nscaling(
    param: str, init_norm: str, n: FloatLike, sigma: FloatLike, eta: FloatLike, s0: FloatLike, delta: FloatLike
) -> NScaling:
    """Reduce an N-state run with identical poles to the scalar flow, eqs. (26)-(28).

    `per_state`: every entry has c_n b_n = s0 and Delta_n = delta; `total`: the sums over
    n equal s0 and delta. Tied entries share (b, c), so their per-entry values coincide.
    For tied runs with spread poles the reduction stays exact with sigma = sigma_N/N and
    eta = eta_N/N^2 (26).

    **Arguments:** `param` in {'tied', 'untied'}; `init_norm` in {'per_state', 'total'};
    state size `n`; per-state `sigma`, `eta`; initial scale `s0`; imbalance `delta`.
    **Returns:** `NScaling` (m = N tied, 1 untied; p0_total; delta_eff = sum_n Delta_n; ...).
    """
    if param not in _PARAMS:
        raise ValueError(f"param={param!r} is not supported; expected one of {_PARAMS}.")
    if init_norm not in _INIT_NORMS:
        raise ValueError(f"init_norm={init_norm!r} is not supported; expected one of {_INIT_NORMS}.")
    n, sigma, eta, s0, delta = _f64(n, sigma, eta, s0, delta)
    m = n if param == "tied" else np.ones_like(n)
    scale = n if init_norm == "per_state" else np.ones_like(n)
    p0_total, delta_eff = scale * s0, scale * delta
    return NScaling(m, p0_total, delta_eff, m * sigma, m * eta, p0_total / n, delta_eff / n)


def vector_flow(
    t: Float[ArrayLike, " step"],
    b0: Float[ArrayLike, " state"],
    c0: Float[ArrayLike, " state"],
    sigma_n: Float[ArrayLike, " state"],
    eta_nm: Float[ArrayLike, "state state2"],
) -> tuple[Float[np.ndarray, "step state"], Float[np.ndarray, "step state"]]:
    """Numerical solution of the untied master flow (11) for N states.

    **Arguments:** sorted times `t` >= 0; initial `b0`, `c0` (N,); `sigma_n` (N,); `eta_nm` (N, N).
    **Returns:** (b, c), each (len(t), N).
    """
    b0, c0 = np.atleast_1d(np.asarray(b0, np.float64)), np.atleast_1d(np.asarray(c0, np.float64))
    sigma_n, eta_nm = np.asarray(sigma_n, np.float64), np.asarray(eta_nm, np.float64)
    n = len(b0)

    def rhs(y):
        b, c = y[:n], y[n:]
        r = sigma_n - eta_nm @ (c * b)
        return np.concatenate([c * r, b * r])

    y = _solve(rhs, t, np.concatenate([b0, c0]))
    return y[:, :n], y[:, n:]


# --- 3.7 Trained A ------------------------------------------------------------------


def trained_a_flow(
    t: Float[ArrayLike, " step"], b0: float, c0: float, a0: float, a_star: float, g_star: float, rho: float
) -> tuple[Float[np.ndarray, " step"], Float[np.ndarray, " step"], Float[np.ndarray, " step"]]:
    """Gradient flow of (b, c, a), N = 1, on the population loss: (11) with (29).

    sigma(a) = g* Gamma(a, a*), eta(a) = Gamma(a, a) (9), and
    tau da/dt = -dLoss/da = p sigma'(a) - (p^2/2) eta'(a), eta'(a) = 2 dGamma/da (a, a).

    **Arguments:** sorted times `t` >= 0; initial `b0`, `c0`, `a0`; teacher `a_star`,
    `g_star`; AR(1) `rho`.
    **Returns:** (b, c, a), each (len(t),).
    """

    def rhs(y):
        b, c, a = y
        p = c * b
        r = g_star * gamma_ar1(a, a_star, rho) - gamma_ar1(a, a, rho) * p
        da = p * g_star * gamma_ar1_da(a, a_star, rho) - p**2 * gamma_ar1_da(a, a, rho)
        return np.array([c * r, b * r, da])

    y = _solve(rhs, t, [b0, c0, a0])
    return y[:, 0], y[:, 1], y[:, 2]


# --- Measurement --------------------------------------------------------------------


def t_half_numeric(
    t: Float[ArrayLike, " step"], p: Float[ArrayLike, " step"], p_star: float, level: float = 0.5
) -> float:
    """First time a recorded trajectory reaches level * p*, by linear interpolation.

    **Arguments:** sorted times `t`; trajectory `p` on them; `p_star`; `level` (0.5: t_half).
    **Returns:** the crossing time; t[0] if p[0] is already there, NaN if never.
    """
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    target = level * p_star
    above = p >= target
    if not above.any():
        return float("nan")
    k = int(np.argmax(above))
    if k == 0:
        return float(t[0])
    return float(t[k - 1] + (target - p[k - 1]) * (t[k] - t[k - 1]) / (p[k] - p[k - 1]))
