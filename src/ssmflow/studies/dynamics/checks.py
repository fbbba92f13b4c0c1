"""Identity checks of spec group A that gate training (rule `dynamics_checks`).

Each check computes one quantity two independent ways in float64 and compares it with
a stated tolerance: statistics (6) against (7) (T1), the model's loss against the
quadratic form (10) in both modes (T1), autodiff GD on sequences against the exact
map (18) over 1e4 steps (T3), and the one-step imbalance identity (19) (T4).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow.studies.dynamics import theory as th
from ssmflow.studies.dynamics.data import teacher_dataset
from ssmflow.studies.dynamics.model import LinearSSM, spectral_loss, time_loss
from ssmflow.studies.dynamics.stats import empirical_stats, quadratic_loss, spectral_stats


def _check(name: str, value: float, tol: float) -> dict:
    return {"name": name, "value": float(value), "tol": tol, "passed": bool(np.isfinite(value) and value <= tol)}


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _data(mode: str, rho: float = 0.5, length: int = 256, n_seq: int = 8):
    return teacher_dataset(jax.random.key(7), n_seq=n_seq, length=length, rho=rho, a_star=0.6, g_star=0.8, noise_std=0.1, mode=mode)


def check_statistics() -> list[dict]:
    """T1: (6) = (7) in circular mode; loss = (10) in both modes."""
    out = []
    a = jnp.array([[0.2, 0.5, 0.9]])
    u, y = _data("circular")
    s6, e6, _ = empirical_stats(u, y, a, "circular")
    s7, e7 = spectral_stats(u, y, a[0])
    out.append(_check("T1 sigma (6) vs (7), circular", _rel(s7, s6), 1e-10))
    out.append(_check("T1 eta (6) vs (7), circular", _rel(e7, e6), 1e-10))
    for mode in ("circular", "causal"):
        u, y = _data(mode)
        model = LinearSSM(a=a, b=jnp.array([[0.3, -0.2, 0.5]]), c=jnp.array([[0.4, 0.1, -0.3]]), conv=mode, train_a=False)
        s, e, syy = empirical_stats(u, y, a, mode)
        out.append(_check(f"T1 loss vs (10), {mode}", _rel(time_loss(model, u, y), quadratic_loss(model.products()[0], s, e, syy)), 1e-10))
    return out


def check_gd_map(n_steps: int = 10_000) -> list[dict]:
    """T3: autodiff GD on the sequences (N = 1, balanced) against the exact map (18)."""
    u, y = _data("circular", rho=0.0)
    uf, yf = jnp.fft.rfft(u), jnp.fft.rfft(y)
    a = jnp.array([[0.5]])
    s, e, _ = empirical_stats(u, y, a, "circular")
    sigma, eta = float(s[0]), float(e[0, 0])
    p0, lam = 1e-4, 2e-3 / sigma
    w = np.sqrt(p0)
    model = LinearSSM(a=a, b=jnp.array([[w]]), c=jnp.array([[w]]), conv="circular", train_a=False)

    def step(m, _):
        g = eqx.filter_grad(lambda mm: spectral_loss(mm, uf, yf, u.shape[1]))(m)
        m = eqx.apply_updates(m, jax.tree.map(lambda x: -lam * x, g))
        return m, m.gain()

    _, p = jax.jit(lambda m: jax.lax.scan(step, m, None, length=n_steps))(model)
    p_map = th.gd_map_balanced(p0, sigma, eta, lam, n_steps)[1:]
    return [_check("T3 GD on sequences vs map (18)", _rel(p, p_map), 1e-10)]


def check_conservation() -> list[dict]:
    """T4: one GD step of (b, c) changes Delta exactly by (19)."""
    sigma, eta, lam = 1.3, 1.7, 0.05
    worst = 0.0
    for b, c in ((0.1, 0.7), (1.2, -0.4), (0.3, 0.3)):
        r = sigma - eta * b * c
        b1, c1 = b + lam * c * r, c + lam * b * r
        worst = max(worst, abs((c1**2 - b1**2) - th.delta_step(c**2 - b**2, r, lam)))
    return [_check("T4 one-step imbalance identity (19)", worst, 1e-12)]


def run_checks() -> dict:
    """Run every check; `passed` is False if any fails."""
    checks = check_statistics() + check_gd_map() + check_conservation()
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
