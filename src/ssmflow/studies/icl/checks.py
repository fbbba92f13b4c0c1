"""Exactness checks of the GD-SSM construction (icl spec 14.A, T1-T7), float64.

Each check computes one quantity two independent ways: the JAX model (`model`,
`baselines`) against NumPy references (`gd`, explicit sums), or the parallel scan
against the sequential one. Tasks and random parameters are drawn with NumPy, and all
model outputs of one (variant, d, N, K) come from one compiled program, so a check costs
one compilation. `exact_errors` gives the errors of one (variant, d, N, K) for the
theory store; `run_checks` runs the spec's grid and gates training (rule `icl_checks`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow.studies.icl import gd
from ssmflow.studies.icl.baselines import LSA, gated_token_constructed, gated_token_query
from ssmflow.studies.icl.metrics import gauge_alignment
from ssmflow.studies.icl.model import GDSSM

EXACT_TOL = 1e-10  # T1, T2, T6, T7: float64 round-off of sums of O(N d) products
STATE_TOL = 1e-12  # T3, T4: one recurrence against another, relative to the largest magnitude
GAUGE_TOL = 1e-6   # T5 (the spec's float32 bound; here float64)
SPEC_GRID = ((1, 5), (5, 10), (10, 10), (20, 40))
CHECKS = ("query", "query_ps", "online", "accumulator", "scans")


def numpy_tasks(rng: np.random.Generator, n_tasks: int, d: int, n: int, variant: str) -> tuple[np.ndarray, ...]:
    """(tokens, x, y) of linear tasks (1)-(2) drawn with NumPy in float64 (an independent generator)."""
    x = rng.uniform(-0.5, 0.5, size=(n_tasks, n + 1, d))
    w = rng.standard_normal((n_tasks, d if variant == "vector" else 1, d))
    y = np.einsum("bed,bnd->bne", w, x)
    ytil = y if variant == "vector" else np.concatenate([np.zeros((n_tasks, n + 1, d - 1)), y], axis=2)
    tokens = np.empty((n_tasks, 2 * n + 1, d))
    tokens[:, 0::2], tokens[:, 1::2] = x, ytil[:, :n]
    return tokens, x, y


def _rel_err(a, b) -> float:
    """Max abs error of `a` relative to the largest magnitude of the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _max_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _single(wq: np.ndarray, lam: np.ndarray, d: int) -> GDSSM:
    """A one-sublayer GD-SSM with Delta = 1 (so Lbar = exp(lam)), C = I, D = 1."""
    return GDSSM(wq=jnp.asarray(wq)[None], lam=jnp.asarray(lam)[None], log_step=jnp.zeros((1, d)), C=jnp.eye(d)[None],
                 D=jnp.ones(3))


@eqx.filter_jit
def _model_side(tokens, shared: GDSSM, per_step: GDSSM, accumulators: tuple[GDSSM, ...], random: GDSSM) -> dict:
    """Every JAX output the checks of one (variant, d, N, K) compare."""
    def each(fn):
        return jax.vmap(fn)(tokens)

    return {
        "shared": each(shared), "per_step": each(per_step),
        "acc": [each(m.states)[:, 0] for m in accumulators],
        "par_states": each(lambda u: random.states(u, True)), "seq_states": each(lambda u: random.states(u, False)),
        "par_out": each(lambda u: random(u, True)), "seq_out": each(lambda u: random(u, False)), "query": each(random.query),
    }


def exact_errors(d: int, n: int, blocks: int, variant: str = "vector", *, eta: float | None = None,
                 etas_ps=None, n_tasks: int = 100, seed: int = 0) -> dict[str, float]:
    """Float64 errors of one (variant, d, N, K) (names: `CHECKS`), whatever the global precision.

    query / query_ps: the constructed K-block query output against W_K x_q of (5) at a
    shared eta / per-step etas (T1 for K = 1, T6), max abs error; online: every window
    against prefix GD (T2, T6), max abs error; accumulator: S_k under E_12 and E_11 against
    the sums of T3, and with random Lbar in (0, 1) against sum_i Lbar^(k-i) (.) A_i;
    scans: parallel against sequential scan (states and outputs) and the closed-form
    query path, random parameters (T4); the last two relative to the largest magnitude.
    """
    rng = np.random.default_rng([seed, d, n, blocks, int(variant == "scalar")])
    tokens, x, y = numpy_tasks(rng, n_tasks, d, n, variant)
    eta = gd.eta_star_one_step(d, n, 1.0) if eta is None else eta
    shared = np.full(blocks, eta)
    per_step = np.linspace(0.6, 1.4, blocks) * eta if etas_ps is None else np.asarray(etas_ps)
    e12, e11 = np.zeros((3, 3)), np.zeros((3, 3))
    e12[0, 1] = e11[0, 0] = 1.0
    wq_rand, lam_rand = rng.standard_normal((3, 3)), -rng.uniform(0.05, 3.0, (d, d))
    n_sub = 2 * blocks - 1
    rand = (rng.standard_normal((n_sub, 3, 3)), -rng.uniform(0.1, 30.0, (n_sub, d, d)),
            rng.uniform(np.log(1e-3), np.log(1e-1), (n_sub, d)), rng.standard_normal((n_sub, d, d)) / np.sqrt(d), rng.standard_normal(3))
    with jax.enable_x64(True):
        random = GDSSM(*(jnp.asarray(a) for a in rand))
        out = _model_side(
            jnp.asarray(tokens), GDSSM.constructed(shared, n, d, dtype=jnp.float64), GDSSM.constructed(per_step, n, d, dtype=jnp.float64),
            (_single(e12, np.zeros((d, d)), d), _single(e11, np.zeros((d, d)), d), _single(wq_rand, lam_rand, d)), random,
        )
        out = jax.tree.map(np.asarray, out)
    last = slice(-1, None) if variant == "scalar" else slice(None)
    errs = {}
    online = 0.0
    for name, key, etas in (("query", "shared", shared), ("query_ps", "per_step", per_step)):
        pred = out[key][..., last]
        want = np.einsum("bei,bi->be", gd.gd_weights(x[:, :n], y[:, :n], etas, n), x[:, n])
        errs[name] = _max_err(pred[:, -1], want)
        online = max(online, _max_err(pred, gd.gd_online_predictions(x, y[:, :n], etas)))
    errs["online"] = online
    ytil = tokens[:, 1::2]
    U = np.stack([tokens[:, 0 : 2 * n - 1 : 2], tokens[:, 1 : 2 * n : 2], tokens[:, 2 : 2 * n + 1 : 2]], axis=2)  # (11), by hand
    A = np.einsum("zkai,ab,zkbj->zkij", U, wq_rand, U)
    lbar = np.exp(lam_rand)
    decayed = np.stack([sum(lbar ** (k - i) * A[:, i - 1] for i in range(1, k + 1)) for k in range(1, n + 1)], axis=1)
    wants = (np.cumsum(np.einsum("bni,bnj->bnij", x[:, :n], ytil), axis=1),
             np.cumsum(np.einsum("bni,bnj->bnij", x[:, :n], x[:, :n]), axis=1), decayed)
    errs["accumulator"] = max(_rel_err(got, want) for got, want in zip(out["acc"], wants, strict=True))
    errs["scans"] = max(_rel_err(out["par_states"], out["seq_states"]), _rel_err(out["par_out"], out["seq_out"]),
                        _rel_err(out["query"], out["seq_out"][:, -1]))
    return errs


def gauge_errors(d: int = 5, n: int = 10, blocks: int = 2, seed: int = 0) -> tuple[float, float]:
    """T5: (alpha W_q, gamma C, delta D) with alpha gamma delta = 1, negative factors included,
    changes the outputs (relative) and the gauge-fixed quantities (25) by round-off only."""
    rng = np.random.default_rng(seed)
    tokens, _, _ = numpy_tasks(rng, 20, d, n, "vector")
    n_sub = 2 * blocks - 1
    wq, C, D = rng.standard_normal((n_sub, 3, 3)), rng.standard_normal((n_sub, d, d)), rng.standard_normal(3)
    lam, log_step = -rng.uniform(0.1, 3.0, (n_sub, d, d)), rng.uniform(-5, -2, (n_sub, d))
    alpha = np.array([-1.7, 0.4, -2.5, 3.0, 0.8, -1.1, 2.2][:n_sub])
    delta = -0.6
    gamma = np.where(np.arange(n_sub) % 2 == 0, 1.0 / (alpha * delta), 1.0 / alpha)  # yx sublayers also absorb D
    with jax.enable_x64(True):
        def make(w, c, dd):
            return GDSSM(wq=jnp.asarray(w), lam=jnp.asarray(lam), log_step=jnp.asarray(log_step), C=jnp.asarray(c), D=jnp.asarray(dd))

        model, scaled = make(wq, C, D), make(wq * alpha[:, None, None], C * gamma[:, None, None], D * delta)
        outs = [np.asarray(eqx.filter_jit(lambda m, t: jax.vmap(m)(t))(m, jnp.asarray(tokens))) for m in (model, scaled)]
        lbar = np.asarray(model.decays())
    c_star = np.broadcast_to(-np.eye(d) / n, (n_sub, d, d))  # C* at eta = 1 (any fixed C* will do)
    q0 = gauge_alignment(wq, C, D, lbar, c_star, n_norm=n)
    q1 = gauge_alignment(wq * alpha[:, None, None], C * gamma[:, None, None], D * delta, lbar, c_star, n_norm=n)
    return _rel_err(outs[1], outs[0]), max(_max_err(q0[k], q1[k]) for k in q0)


@eqx.filter_jit
def _baseline_side(tokens, lsa: LSA, x_scalar, y_scalar, token_params):
    lbar, bbar, G = token_params
    return jax.vmap(lsa.query)(tokens), jax.vmap(lambda xx, yy: gated_token_query(xx, yy, lbar, bbar, G))(x_scalar, y_scalar)


def baseline_errors(d: int, n: int, seed: int = 0, n_tasks: int = 100) -> tuple[float, float]:
    """T7: the constructed LSA (21) (vector-y) and gated-token SSM (8.4) (scalar-y) against one GD step."""
    rng = np.random.default_rng([seed, d, n, 7])
    eta = gd.eta_star_one_step(d, n, 1.0)
    tokens, x, y = numpy_tasks(rng, n_tasks, d, n, "vector")
    _, xs, ys = numpy_tasks(rng, n_tasks, d, n, "scalar")
    with jax.enable_x64(True):
        lsa, token = _baseline_side(jnp.asarray(tokens), LSA.constructed(eta, n, d, dtype=jnp.float64), jnp.asarray(xs),
                                    jnp.asarray(ys[:, :n, 0]), gated_token_constructed(eta, n, d, dtype=jnp.float64))
    want = np.einsum("bei,bi->be", gd.gd_weights(x[:, :n], y[:, :n], [eta], n), x[:, n])
    want_s = np.einsum("bei,bi->be", gd.gd_weights(xs[:, :n], ys[:, :n], [eta], n), xs[:, n])[:, 0]
    return _max_err(lsa, want), _max_err(token, want_s)


def _check(name: str, value: float, tol: float) -> dict:
    return {"name": name, "value": float(value), "tol": tol, "passed": bool(np.isfinite(value) and value <= tol)}


def run_checks() -> dict:
    """T1-T5 and T7 on the spec's (d, N) grid, both variants; T6 for K = 2..4 at (d, N) = (5, 10).

    `passed` is False if any check fails.
    """
    checks = []
    cases = [(d, n, 1) for d, n in SPEC_GRID] + [(5, 10, k) for k in (2, 3, 4)]
    for d, n, blocks in cases:
        for variant in ("vector", "scalar"):
            errs = exact_errors(d, n, blocks, variant, n_tasks=100 if blocks == 1 else 20)
            tag = f"d={d} N={n} {variant} K={blocks}"
            step = "T1" if blocks == 1 else "T6"
            checks.append(_check(f"{step} query, shared eta, {tag}", errs["query"], EXACT_TOL))
            checks.append(_check(f"{step} query, per-step eta, {tag}", errs["query_ps"], EXACT_TOL))
            checks.append(_check(f"{'T2' if blocks == 1 else 'T6'} every window = prefix GD, {tag}", errs["online"], EXACT_TOL))
            checks.append(_check(f"T3 accumulator, {tag}", errs["accumulator"], STATE_TOL))
            checks.append(_check(f"T4 parallel = sequential scan, {tag}", errs["scans"], STATE_TOL))
    for d, n in SPEC_GRID:
        lsa, token = baseline_errors(d, n)
        checks.append(_check(f"T7 constructed LSA = one GD step, d={d} N={n}", lsa, EXACT_TOL))
        checks.append(_check(f"T7 gated-token SSM = one GD step, d={d} N={n}", token, EXACT_TOL))
    out_err, q_err = gauge_errors()
    checks.append(_check("T5 gauge: outputs (relative)", out_err, GAUGE_TOL))
    checks.append(_check("T5 gauge: quantities (25)", q_err, GAUGE_TOL))
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
