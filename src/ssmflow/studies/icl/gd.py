"""Gradient-descent references (icl spec section 3), NumPy float64.

The implicit model f_W(x) = W x trained by K GD steps (5) from W_0 = 0 on the context
loss (4), its predictions, its closed-form risk (7)-(10), the optimal step sizes, and
exact eval-set losses for any step sizes through a Gram matrix:

    y_q - W_K x_q = sum_{m=0..K} c_m v_m,   v_0 = y_q,  v_m = Syx Sxx^(m-1) x_q   (m >= 1),

where c_m are the coefficients of prod_k (1 - eta_k t / N) in t (with Syx = W Sxx this is
W prod_k (I - (eta_k/N) Sxx) x_q, as in 3.2). So loss(eta) = c^T G c / (2 d_y) with
G_mn = mean_tasks <v_m, v_n>: one pass over the tasks serves every eta, K and schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
from scipy import optimize

ETA_MAX = 25.0


def input_moments(input_range: float) -> tuple[float, float]:
    """(sigma^2, m4) of U(-r/2, r/2) (C1): r^2/12 and r^4/80."""
    return input_range**2 / 12.0, input_range**4 / 80.0


def gd_weights(x: np.ndarray, y: np.ndarray, etas: Sequence[float], n_norm: int) -> np.ndarray:
    """W_K of (5) from W_0 = 0 with step sizes `etas` on the pairs given.

    `n_norm` is the N of (4); pass the full context length for the prefix GD of
    Proposition 1 (window k: the first k pairs, steps eta k/N on the prefix loss).

    **Arguments:** `x` (..., pairs, d), `y` (..., pairs, d_y), `etas` (K,).
    **Returns:** W_K (..., d_y, d).
    """
    sxx = np.einsum("...ni,...nj->...ij", x, x)
    syx = np.einsum("...ne,...ni->...ei", y, x)
    w = np.zeros(syx.shape)
    eye = np.eye(x.shape[-1])
    for eta in etas:
        w = w @ (eye - (eta / n_norm) * sxx) + (eta / n_norm) * syx
    return w


def gd_online_predictions(x: np.ndarray, y: np.ndarray, etas: Sequence[float]) -> np.ndarray:
    """Prefix GD (Proposition 1/2): the prediction of x_{k+1} from pairs 1..k, k = 1..N.

    **Arguments:** `x` (batch, N+1, d) with the query last, `y` (batch, N(+1), d_y).
    **Returns:** (batch, N, d_y).
    """
    n = x.shape[1] - 1
    out = [np.einsum("bei,bi->be", gd_weights(x[:, :k], y[:, :k], etas, n), x[:, k]) for k in range(1, n + 1)]
    return np.stack(out, axis=1)


def step_polynomial(etas: Sequence[float], n_context: int) -> np.ndarray:
    """Coefficients c_0..c_K (ascending) of prod_k (1 - eta_k t / N) in t."""
    c = np.array([1.0])
    for eta in etas:
        c = np.convolve(c, [1.0, -eta / n_context])
    return c


def trace_moments(d: int, n_context: int, input_range: float) -> np.ndarray:
    """mu_0, mu_1, mu_2 of (8): E tr(Sxx^m) in closed form."""
    s2, m4 = input_moments(input_range)
    mu2 = n_context * d * (m4 + (d - 1) * s2**2) + n_context * (n_context - 1) * d * s2**2
    return np.array([float(d), n_context * d * s2, mu2])


def risk(etas: Sequence[float], mu: np.ndarray, n_context: int, input_range: float, weight_scale: float) -> float:
    """Population risk (7) of K GD steps: (s^2 sigma^2 / 2) sum_m c_m mu_m, c of the squared product."""
    c = step_polynomial(etas, n_context)
    c2 = np.convolve(c, c)
    s2, _ = input_moments(input_range)
    return 0.5 * weight_scale**2 * s2 * float(c2 @ mu[: len(c2)])


def shared_risk_polynomial(mu: np.ndarray, n_context: int, steps: int, input_range: float, weight_scale: float) -> np.ndarray:
    """Coefficients (ascending in eta, degree 2K) of the shared-eta risk (7).

    prod (1 - eta t/N)^(2K) = sum_m binom(2K, m) (-eta/N)^m t^m, so L_K(eta) =
    (s^2 sigma^2 / 2) sum_m binom(2K, m) (-1/N)^m mu_m eta^m.
    """
    s2, _ = input_moments(input_range)
    m = np.arange(2 * steps + 1)
    binom = np.array([comb(2 * steps, int(k)) for k in m], dtype=float)
    return 0.5 * weight_scale**2 * s2 * binom * (-1.0 / n_context) ** m * mu[: 2 * steps + 1]


def eval_risk_polynomial(gram: np.ndarray, n_context: int, steps: int, d_y: int) -> np.ndarray:
    """Coefficients (ascending in eta, degree 2K) of the shared-eta eval-set loss from the Gram matrix."""
    out = np.zeros(2 * steps + 1)
    for m in range(steps + 1):
        for k in range(steps + 1):
            out[m + k] += comb(steps, m) * comb(steps, k) * (-1.0 / n_context) ** (m + k) * gram[m, k]
    return out / (2 * d_y)


def polynomial_argmin(coef: np.ndarray, lo: float = 0.0, hi: float = ETA_MAX) -> float:
    """Exact minimiser of a polynomial on [lo, hi]: the best stationary point or end point."""
    roots = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(coef)) if len(coef) > 2 else np.array([])
    cand = [lo, hi] + [r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-9 * max(1.0, abs(r)) and lo <= r.real <= hi]
    vals = np.polynomial.polynomial.polyval(np.array(cand), coef)
    return float(cand[int(np.argmin(vals))])


def eta_star_one_step(d: int, n_context: int, input_range: float) -> float:
    """eta*_1 = N mu_1 / mu_2 (9)."""
    mu = trace_moments(d, n_context, input_range)
    return n_context * mu[1] / mu[2]


def perstep_etas(mu: np.ndarray, n_context: int, steps: int, input_range: float, weight_scale: float, start: float) -> np.ndarray:
    """(eta_1..eta_K)* minimising (7): bounded K-dim minimisation, from the shared optimum and from
    spread schedules around it.

    The shared optimum is itself a stationary point of (7) in (eta_1..eta_K) (the product is
    symmetric in the etas, so all partial derivatives are equal and sum to zero), so a local
    search started there alone never leaves it; the spread starts find the lower per-step optimum.
    """
    if steps == 1:
        return np.array([start])

    def objective(e):
        return risk(e, mu, n_context, input_range, weight_scale)

    starts = [np.full(steps, start)] + [start * np.linspace(1 - w, 1 + w, steps)[::sign] for w in (0.5, 0.9) for sign in (1, -1)]
    best = None
    for x0 in starts:
        res = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=[(0.0, ETA_MAX)] * steps,
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    return np.sort(best.x)  # (7) is symmetric in the etas: ascending is the canonical order


def gram_vectors(x: np.ndarray, y: np.ndarray, max_power: int) -> np.ndarray:
    """v_0 = y_q, v_m = Syx Sxx^(m-1) x_q (m = 1..M) of each task.

    **Arguments:** `x` (batch, N+1, d), `y` (batch, N+1, d_y), query last.
    **Returns:** (batch, M+1, d_y).
    """
    n = x.shape[1] - 1
    xc, yc, xq = x[:, :n], y[:, :n], x[:, n]
    sxx = np.einsum("bni,bnj->bij", xc, xc)
    syx = np.einsum("bne,bni->bei", yc, xc)
    out, z = [y[:, n]], xq
    for _ in range(max_power):
        out.append(np.einsum("bei,bi->be", syx, z))
        z = np.einsum("bij,bj->bi", sxx, z)
    return np.stack(out, axis=1)


def task_grams(x: np.ndarray, y: np.ndarray, max_power: int, chunk: int = 4096) -> np.ndarray:
    """Per-task Gram matrices <v_m, v_n> (batch, M+1, M+1), computed in chunks."""
    parts = []
    for i in range(0, x.shape[0], chunk):
        v = gram_vectors(x[i : i + chunk], y[i : i + chunk], max_power)
        parts.append(np.einsum("bme,bne->bmn", v, v))
    return np.concatenate(parts)


def loss_from_grams(grams: np.ndarray, etas: Sequence[float], n_context: int, d_y: int) -> np.ndarray:
    """Per-task loss (3) of K GD steps with `etas`, from per-task (or mean) Gram matrices."""
    c = step_polynomial(etas, n_context)
    k = len(c)
    return np.einsum("m,...mn,n->...", c, grams[..., :k, :k], c) / (2 * d_y)


def bootstrap_eta_one_step(grams: np.ndarray, n_context: int, n_boot: int = 400, seed: int = 0) -> tuple[float, float]:
    """Exact eval-set minimiser of the one-step loss, N <v0,v1> / <v1,v1> (task means), and its bootstrap SE."""
    a, b = grams[:, 0, 1], grams[:, 1, 1]
    est = n_context * a.mean() / b.mean()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    boots = n_context * a[idx].mean(axis=1) / b[idx].mean(axis=1)
    return float(est), float(boots.std(ddof=1))


def official_eta_grid() -> np.ndarray:
    """The official-style search grid {0.001 + 0.1 j} < 25."""
    return 0.001 + 0.1 * np.arange(int(np.ceil((ETA_MAX - 0.001) / 0.1)))
