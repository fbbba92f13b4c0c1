"""The runs of one `dynamics` shard and what each needs before training (host, NumPy).

A shard spec (from `ssmflow.grid.expand`) lists values per run dim; the runs are their
Cartesian product times the seeds, in the canonical dim order, so the flat run index
reshapes into the store's dims. Per run this module derives, from population
statistics only (so nothing depends on the seed, C6/C7): the poles, the deterministic
initial (b, c), the learning rate lam, and the run's end time t_end = t_90 + 20 tau/(2 lambda).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ssmflow import grid
from ssmflow.studies.dynamics import RUN_DIMS
from ssmflow.studies.dynamics import theory as th


@dataclass(frozen=True)
class RunTable:
    """Flat per-run values; `dims`/`coords` give the store layout (RUN_DIMS + seed)."""

    dims: tuple[str, ...]
    coords: dict[str, list]
    values: dict[str, np.ndarray]  # each (run,) : the coordinate value of every run

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(self.coords[d]) for d in self.dims)

    @property
    def n_runs(self) -> int:
        return int(np.prod(self.shape))

    def run(self, i: int) -> dict:
        return {d: self.values[d][i] for d in self.dims}


def run_table(spec: dict) -> RunTable:
    """All runs of a shard spec, in the order (RUN_DIMS..., seed)."""
    coords = {d: list(spec["axes"][d]) for d in RUN_DIMS}
    coords["seed"] = grid.seed_values(spec)
    dims = (*RUN_DIMS, "seed")
    rows = list(itertools.product(*(coords[d] for d in dims)))
    values = {d: np.array([r[i] for r in rows], dtype=object if isinstance(coords[d][0], str) else None) for i, d in enumerate(dims)}
    return RunTable(dims, coords, values)


def poles(run: dict, a_star: float, kind: str = "fixed_a") -> np.ndarray:
    """The (layer, state) poles of a run: identical, spread or realizable (F4)."""
    n, depth = int(run["N"]), int(run["depth"])
    match run["spread"]:
        case "identical":
            a = float(run["a0"]) if kind == "trained_a" else float(run["a"])
            return np.full((depth, n), a)
        case "spread":
            return np.tile(0.3 + 0.6 * (np.arange(1, n + 1) - 0.5) / n, (depth, 1))
        case "realizable":
            return np.array([[a_star]] + [[0.0]] * (depth - 1))
    raise ValueError(f"`spread` (={run['spread']!r}) must be identical, spread or realizable.")


@dataclass(frozen=True)
class Reduction:
    """The scalar problem a run reduces to (eq. 28): p(t) = P(m t; p0, delta, sigma, eta)."""

    m: float
    p0: float
    delta: float
    sigma: float
    eta: float


def reduction(run: dict, sigma_n: np.ndarray, eta_nm: np.ndarray, scale_p0: float = 1.0) -> Reduction:
    """Scalar reduction (28) of a one-layer run from its (population or empirical) stats.

    Exact for identical poles; for spread poles with `tied` it is (26) exactly; for
    spread `untied` it is the proxy of section 4 (sigma_bar = sigma_N/N, eta_bar = eta_N/N^2).
    """
    n = int(run["N"])
    s0, delta = float(run["p0"]) * scale_p0, float(run["balance"])
    per_state = run["init_norm"] == "per_state"
    p0_tot = n * s0 if per_state else s0
    delta_eff = n * delta if per_state else delta
    sigma_bar = float(np.sum(sigma_n)) / n
    eta_bar = float(np.sum(eta_nm)) / n**2
    return Reduction(m=float(n if run["param"] == "tied" else 1), p0=p0_tot, delta=delta_eff, sigma=sigma_bar, eta=eta_bar)


def initial_params(run: dict, scale_p0: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic initial (b, c), each (layer, width), width 1 if tied (C7, 3.5, 3.6).

    The initial product is p0 * scale_p0 (scale_p0 = p* for `p0_mode: relative`, else 1).
    One layer: every entry has that product and imbalance Delta (per_state), or the
    product/N and Delta/N (total). Stacks: all 2*depth scalars equal (balanced, 3.5).
    """
    n, depth = int(run["N"]), int(run["depth"])
    width = 1 if run["param"] == "tied" else n
    p0 = float(run["p0"]) * scale_p0
    if depth > 1:
        w = p0 ** (1.0 / (2 * depth))
        return np.full((depth, width), w), np.full((depth, width), w)
    scale = 1.0 if run["init_norm"] == "per_state" else 1.0 / n
    b0, c0 = th.init_from_product(p0 * scale, float(run["balance"]) * scale)
    return np.full((1, width), float(b0)), np.full((1, width), float(c0))


def model_optimum(param: str, depth: int, sigma_n: np.ndarray, eta_nm: np.ndarray, trained_gain: float | None = None) -> float:
    """p* within the model class: tied N sigma_N/eta_N, untied 1^T eta^+ sigma, stacks sigma/eta.

    With trained poles (F5) the optimum is the teacher's gain, passed as `trained_gain`.
    """
    if trained_gain is not None:
        return float(trained_gain)
    if depth > 1 or len(sigma_n) == 1:
        return float(sigma_n[0] / eta_nm[0, 0])
    if param == "tied":
        return float(len(sigma_n) * np.sum(sigma_n) / np.sum(eta_nm))
    return float(np.sum(np.linalg.lstsq(eta_nm, sigma_n, rcond=None)[0]))


def crossing_time(p_of_t, target: float, t_hi: float) -> float:
    """First t with p(t) >= target for a monotone p(t), by bisection in log t."""
    lo, hi = 0.0, t_hi
    while p_of_t(hi) < target:
        lo, hi = hi, 2 * hi
        if hi > 1e12:
            return np.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi) if lo == 0 else np.sqrt(lo * hi)
        lo, hi = (mid, hi) if p_of_t(mid) < target else (lo, mid)
        if hi - lo <= 1e-12 * hi:
            break
    return hi


@dataclass(frozen=True)
class Schedule:
    """Per-run learning rate and end time, from population statistics."""

    lam: float
    t_end: float
    rate: float  # lambda: half the terminal rate (C6)


def schedule(run: dict, kind: str, lr_mode: str, sigma_n, eta_nm, t_max: float, scale_p0: float = 1.0) -> Schedule:
    """lam (C6) and t_end = t_90 + 20 tau/(2 lambda), capped at the record grid's t_max."""
    depth = int(run["depth"])
    if kind == "trained_a":
        return Schedule(lam=float(run["kappa"]), t_end=t_max, rate=np.nan)
    if depth > 1:
        sigma, eta = float(sigma_n[0]), float(eta_nm[0, 0])
        p_star = sigma / eta
        d = 2 * depth
        rate = 0.5 * d * eta * p_star ** (2 - 2 / d)
        t_90 = float(th.depth_time(0.9 * p_star, float(run["p0"]) * scale_p0, sigma, eta, d))
    else:
        red = reduction(run, sigma_n, eta_nm, scale_p0)
        rate = red.m * float(th.lambda_delta(red.sigma, red.eta, red.delta))
        p_star = red.sigma / red.eta

        def p_of_t(t):
            return float(th.unbalanced_p(red.m * t, red.p0, red.delta, red.sigma, red.eta))

        t_90 = crossing_time(p_of_t, 0.9 * p_star, 1.0 / rate)
    lam = float(run["kappa"]) / rate if lr_mode == "kappa" else float(run["kappa"])
    return Schedule(lam=lam, t_end=min(t_90 + 10.0 / rate, t_max), rate=rate)


def population_stack_sigma_eta(a_layers: np.ndarray, a_star: float, g_star: float, rho: float) -> tuple[float, float]:
    """Population (sigma, eta) of a stack's regressor z = (prod_l G_{a_l}) u (3.5), by quadrature.

    sigma = g* (1/2pi) int Re(conj(prod G_l) G_{a*}) S_uu dw, eta = (1/2pi) int |prod G_l|^2 S_uu dw.
    """
    from scipy.integrate import quad

    def g(a, w):
        return 1.0 / (1.0 - a * np.exp(-1j * w))

    def s_uu(w):
        return (1 - rho**2) / abs(1 - rho * np.exp(-1j * w)) ** 2

    def stack(w):
        return np.prod([g(a, w) for a in a_layers])

    sig = quad(lambda w: np.real(np.conj(stack(w)) * g(a_star, w)) * s_uu(w), -np.pi, np.pi, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
    eta = quad(lambda w: abs(stack(w)) ** 2 * s_uu(w), -np.pi, np.pi, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
    return g_star * sig / (2 * np.pi), eta / (2 * np.pi)
