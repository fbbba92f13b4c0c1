"""Reference values of one task configuration (icl spec sections 3 and 11, E0), NumPy float64.

`linear_reference` gathers, for one (variant, d, N), everything the trajectories and the
theory store compare against: trace moments (closed form (8) and Monte Carlo), the
population risk (7) as a polynomial in a shared eta, eta*_K (exact minimiser on
[0, 25]) and the per-step optimum, the eval-set losses (exact, through the Gram matrix of
`gd`), the official-style grid argmin, the exact eval-set one-step minimiser with its
bootstrap SE, and a Monte Carlo estimate of each optimal risk with its SE.
`sine_reference` gives the references of section 3.3. The eval set comes from
`eval_set`, so the trajectories and the theory store see the very same tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ssmflow import train
from ssmflow.studies.icl import gd
from ssmflow.studies.icl.tasks import Tasks, linear_tasks, sine_tasks

MC_CHUNK = 5000


def eval_set(common: dict, *, d: int | None = None, n_context: int, variant: str = "vector", sine_draw: str | None = None) -> Tasks:
    """The fixed eval tasks of a task configuration, from `eval_seed` (float32, as trained).

    The key depends on the task configuration only (variant, d, N, r, s or the sine
    draw), never on the model or the training seed.
    """
    if sine_draw is not None:
        coords = {"task": "sine", "draw": sine_draw, "n_context": n_context, "r": common["input_range"], "seed": common["eval_seed"]}
        key = jax.random.key(train.run_seed("icl-eval", coords))
        return sine_tasks(key, common["eval_tasks"], n_context, draw=sine_draw, input_range=common["input_range"], dtype=jnp.float32)
    coords = {"task": variant, "d": d, "n_context": n_context, "r": common["input_range"], "s": common["weight_scale"], "seed": common["eval_seed"]}
    key = jax.random.key(train.run_seed("icl-eval", coords))
    return linear_tasks(key, common["eval_tasks"], d, n_context, variant=variant, input_range=common["input_range"],
                        weight_scale=common["weight_scale"], dtype=jnp.float32)


def as_float64(tasks: Tasks) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a task batch as float64 NumPy arrays."""
    return np.asarray(tasks.x, dtype=np.float64), np.asarray(tasks.y, dtype=np.float64)


def _mc_linear(rng: np.random.Generator, draws: int, d: int, n: int, variant: str, r: float, s: float):
    """Chunks (x, y) of fresh linear tasks, float64."""
    d_y = d if variant == "vector" else 1
    for start in range(0, draws, MC_CHUNK):
        size = min(MC_CHUNK, draws - start)
        x = rng.uniform(-r / 2, r / 2, size=(size, n + 1, d))
        w = s * rng.standard_normal((size, d_y, d))
        yield x, np.einsum("bed,bnd->bne", w, x)


def trace_powers(x_context: np.ndarray, max_power: int) -> np.ndarray:
    """tr(Sxx^m), m = 0..M, per task, from the eigenvalues of the smaller Gram matrix.

    **Arguments:** `x_context` (batch, N, d). **Returns:** (batch, M+1).
    """
    n, d = x_context.shape[1:]
    g = np.einsum("bni,bmi->bnm", x_context, x_context) if n <= d else np.einsum("bni,bnj->bij", x_context, x_context)
    lam = np.clip(np.linalg.eigvalsh(g), 0.0, None)
    out = lam[:, :, None] ** np.arange(max_power + 1)
    out[:, :, 0] = 1.0
    total = out.sum(axis=1)
    total[:, 0] = d  # tr(I_d), also where N < d
    return total


@dataclass
class LinearReference:
    """References of one (variant, d, N); arrays are indexed by K - 1 (K = 1..max_steps)."""

    mu: np.ndarray            # (2K_max+1,) closed form (8) for m <= 2, Monte Carlo above
    mu_mc: np.ndarray         # (2K_max+1,) Monte Carlo estimates (used in (7) for K >= 2)
    mu_se: np.ndarray         # (2K_max+1,) their standard errors
    poly_pop: np.ndarray      # (K_max, 2K_max+1) shared-eta risk polynomial (7), ascending, zero padded
    poly_eval: np.ndarray     # (K_max, 2K_max+1) same on the eval set
    eta_star: np.ndarray      # (K_max,) exact minimiser of (7) on [0, 25]
    eta_perstep: np.ndarray   # (K_max, K_max) per-step optimum, NaN padded
    eta_star_grid: np.ndarray  # (K_max,) official-style grid argmin on the eval set
    gd_loss_pop: np.ndarray
    gd_loss_eval: np.ndarray
    gd_loss_ps_pop: np.ndarray
    gd_loss_ps_eval: np.ndarray
    gd_loss_mc: np.ndarray    # (K_max,) Monte Carlo risk at eta*_K over fresh tasks
    gd_loss_mc_se: np.ndarray
    zero_loss_pop: float
    zero_loss_eval: float
    zero_loss_mc: float
    zero_loss_mc_se: float
    eta_star_eval: float      # exact eval-set minimiser of the one-step loss
    eta_star_eval_se: float   # its bootstrap SE
    grams_eval: np.ndarray    # (K_max+1, K_max+1) mean eval-set Gram matrix

    def etas(self, steps: int, per_step: bool = False, search: str = "closed_form") -> np.ndarray:
        """The reference step sizes of K = `steps` GD steps (shared, grid-searched or per step)."""
        if per_step:
            return self.eta_perstep[steps - 1, :steps]
        eta = self.eta_star_grid[steps - 1] if search == "grid" else self.eta_star[steps - 1]
        return np.full(steps, eta)


def linear_reference(common: dict, d: int, n: int, variant: str, eval_tasks: Tasks | None = None) -> LinearReference:
    """All references of one (variant, d, N) (module docstring); `common` is the icl config section."""
    r, s, k_max = common["input_range"], common["weight_scale"], common["max_gd_steps"]
    d_y = d if variant == "vector" else 1
    m_max = 2 * k_max
    # Monte Carlo over fresh tasks: trace moments and per-task Gram matrices
    rng = np.random.default_rng([common["ref_seed"], d, n, int(variant == "scalar")])
    powers, grams = [], []
    for x, y in _mc_linear(rng, common["ref_draws"], d, n, variant, r, s):
        powers.append(trace_powers(x[:, :n], m_max))
        grams.append(gd.task_grams(x, y, k_max))
    powers, grams = np.concatenate(powers), np.concatenate(grams)
    mu_mc, mu_se = powers.mean(axis=0), powers.std(axis=0, ddof=1) / np.sqrt(len(powers))
    mu = np.concatenate([gd.trace_moments(d, n, r), mu_mc[3:]])
    # (7) alternates in sign and cancels heavily for K >= 2: mixing exact mu_0..2 with Monte
    # Carlo mu_3.. biases it (d=5, N=20, K=3: +17 %), while moments of one sample keep their
    # errors correlated. So K = 1 uses the closed form (9), K >= 2 the Monte Carlo moments.
    # eval set: exact losses for any eta through the mean Gram matrix
    x_ev, y_ev = as_float64(eval_tasks if eval_tasks is not None else eval_set(common, d=d, n_context=n, variant=variant))
    g_ev_tasks = gd.task_grams(x_ev, y_ev, k_max)
    g_ev = g_ev_tasks.mean(axis=0)
    grid = gd.official_eta_grid()
    out = {k: np.full(k_max, np.nan) for k in ("eta_star", "eta_star_grid", "gd_loss_pop", "gd_loss_eval", "gd_loss_ps_pop",
                                                 "gd_loss_ps_eval", "gd_loss_mc", "gd_loss_mc_se")}
    poly_pop, poly_eval = np.zeros((k_max, m_max + 1)), np.zeros((k_max, m_max + 1))
    eta_ps = np.full((k_max, k_max), np.nan)
    for k in range(1, k_max + 1):
        mu_k = mu if k == 1 else mu_mc
        pp = gd.shared_risk_polynomial(mu_k, n, k, r, s)
        pe = gd.eval_risk_polynomial(g_ev, n, k, d_y)
        poly_pop[k - 1, : len(pp)], poly_eval[k - 1, : len(pe)] = pp, pe
        eta = gd.polynomial_argmin(pp)
        out["eta_star"][k - 1] = eta
        out["eta_star_grid"][k - 1] = grid[int(np.argmin(np.polynomial.polynomial.polyval(grid, pe)))]
        out["gd_loss_pop"][k - 1] = np.polynomial.polynomial.polyval(eta, pp)
        out["gd_loss_eval"][k - 1] = np.polynomial.polynomial.polyval(eta, pe)
        ps = gd.perstep_etas(mu_k, n, k, r, s, eta)
        eta_ps[k - 1, :k] = ps
        out["gd_loss_ps_pop"][k - 1] = gd.risk(ps, mu_k, n, r, s)
        out["gd_loss_ps_eval"][k - 1] = gd.loss_from_grams(g_ev, ps, n, d_y)
        mc = gd.loss_from_grams(grams, np.full(k, eta), n, d_y)
        out["gd_loss_mc"][k - 1], out["gd_loss_mc_se"][k - 1] = mc.mean(), mc.std(ddof=1) / np.sqrt(len(mc))
    zero_mc = grams[:, 0, 0] / (2 * d_y)
    s2, _ = gd.input_moments(r)
    eta_ev, eta_ev_se = gd.bootstrap_eta_one_step(g_ev_tasks, n)
    return LinearReference(
        mu=mu, mu_mc=mu_mc, mu_se=mu_se, poly_pop=poly_pop, poly_eval=poly_eval, eta_perstep=eta_ps,
        zero_loss_pop=0.5 * s**2 * d * s2, zero_loss_eval=g_ev[0, 0] / (2 * d_y),
        zero_loss_mc=float(zero_mc.mean()), zero_loss_mc_se=float(zero_mc.std(ddof=1) / np.sqrt(len(zero_mc))),
        eta_star_eval=eta_ev, eta_star_eval_se=eta_ev_se, grams_eval=g_ev, **out,
    )


def prior_mean(x: np.ndarray, draw: str) -> np.ndarray:
    """The best context-free predictor fbar(x) = E[a sin(x + phi)] (3.3).

    Independent draws: E[a] (2/pi) cos x = 0.6 cos(x) / pi. Shared draw (a = 0.1 + 0.4u,
    phi = pi u): the integral over u in closed form, 0.6 cos(x) / pi - 0.8 sin(x) / pi^2.
    """
    fbar = 0.6 * np.cos(x) / np.pi
    return fbar if draw == "independent" else fbar - 0.8 * np.sin(x) / np.pi**2


def sine_predictions(x: np.ndarray, y: np.ndarray, draw: str) -> dict[str, np.ndarray]:
    """Query predictions of the section-3.3 references on tasks (x, y) of shape (batch, N+1, 1).

    zero, the prior mean, and one GD step on raw x and on affine features (x, 1), each at
    the exact optimum eta* = sum(b y_q) / sum(b b) over these tasks (b: the eta = 1 prediction).
    """
    n = x.shape[1] - 1
    xc, yc, xq, yq = x[:, :n, 0], y[:, :n, 0], x[:, n, 0], y[:, n, 0]
    out = {"zero": np.zeros_like(yq), "prior": prior_mean(xq, draw)}
    for name, b in (("gd_raw", np.mean(yc * xc, axis=1) * xq), ("gd_affine", np.mean(yc * (xc * xq[:, None] + 1.0), axis=1))):
        out[name] = (np.sum(b * yq) / np.sum(b * b)) * b
    return out


def sine_losses(x: np.ndarray, y: np.ndarray, draw: str) -> dict[str, np.ndarray]:
    """Per-task losses (3) of the `sine_predictions`."""
    return {k: 0.5 * (y[:, -1, 0] - v) ** 2 for k, v in sine_predictions(x, y, draw).items()}


def sine_reference(common: dict, n: int, draw: str) -> dict[str, tuple[float, float]]:
    """Monte Carlo (>= `ref_draws` tasks) references of section 3.3: name -> (mean loss, SE)."""
    rng = np.random.default_rng([common["ref_seed"], n, int(draw == "shared"), 7])
    size, r = common["ref_draws"], common["input_range"]
    x = rng.uniform(-r / 2, r / 2, size=(size, n + 1, 1))
    ua = rng.uniform(size=size)
    up = ua if draw == "shared" else rng.uniform(size=size)
    y = (0.1 + 0.4 * ua)[:, None, None] * np.sin(x + np.pi * up[:, None, None])
    return {k: (float(v.mean()), float(v.std(ddof=1) / np.sqrt(size))) for k, v in sine_losses(x, y, draw).items()}
