"""The `dynamics` theory store: closed forms and ODE references on the trajectories' coords.

For every run of a gathered trajectories Dataset, with that run's own empirical
statistics (sigma_n, eta_nm, Syy) and its recorded times t = k lam:

- `p`, `loss`, `b`, `c`: the gradient-flow solution: the scalar reduction (28) through
  the explicit solution (15)-(16) (logistic (13) when balanced) where one exists
  (N = 1, identical poles, or tied), the vector ODE (11) for untied spread poles, the
  depth ODE (21) for stacks, and the (b, c, a) ODE (11)+(29) on population statistics
  when the poles are trained (F5);
- `p_map`: the exact discrete GD map at the same k, iterated on the quadratic loss
  (10) in statistics space (it equals (18), (24) and (27) where those apply);
- scalars `p_star`, `loss_star`, `t_half_th`, `t_90_th`, `tau_term`, `sigma_pop`, `eta_pop`.

Names and dims match the trajectories, so `traj - theory` needs no renaming.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from ssmflow import store
from ssmflow.config import digest
from ssmflow.studies.dynamics import RUN_DIMS
from ssmflow.studies.dynamics import runs as rn
from ssmflow.studies.dynamics import theory as th

RUN = (*RUN_DIMS, "seed")


def stats_gd_map(b0, c0, sigma_n, eta_nm, lam, steps, tied: bool, depth: int) -> np.ndarray:
    """GD on the quadratic loss (10) in statistics space, for many runs at once.

    **Arguments:** `b0`, `c0` (run, layer, width); `sigma_n` (run, state); `eta_nm`
    (run, state, state); `lam` (run,); `steps` (run, record) int, -1 = not recorded.
    **Returns:** p at the requested steps, (run, record), NaN where not recorded.
    """
    b, c = b0.copy(), c0.copy()
    n_state = sigma_n.shape[1]
    out = np.full(steps.shape, np.nan)
    flat = np.argsort(np.where(steps >= 0, steps, np.iinfo(np.int64).max), axis=None, kind="stable")
    order = np.stack(np.unravel_index(flat, steps.shape), axis=1)
    order = order[steps[order[:, 0], order[:, 1]] >= 0]
    ptr, k_max = 0, int(steps.max())
    lam = lam[:, None, None]
    for k in range(k_max + 1):
        prods = np.broadcast_to(c * b, (b.shape[0], depth, n_state))
        if depth == 1:
            p_n = prods[:, 0]
            p = p_n.sum(axis=1)
        else:
            p = np.prod(prods[:, :, 0], axis=1)
        while ptr < len(order) and steps[order[ptr, 0], order[ptr, 1]] == k:
            out[order[ptr, 0], order[ptr, 1]] = p[order[ptr, 0]]
            ptr += 1
        if depth == 1:
            r = sigma_n - np.einsum("rnm,rm->rn", eta_nm, p_n)  # -dLoss/dp_n
            r = r.sum(axis=1, keepdims=True)[:, None] if tied else r[:, None]
            b, c = b + lam * c * r, c + lam * b * r
        else:
            r = (sigma_n[:, 0] - eta_nm[:, 0, 0] * p)[:, None, None]
            gb, gc = r * p[:, None, None] / b, r * p[:, None, None] / c
            b, c = b + lam * gb, c + lam * gc
    return out


def _flat(ds: xr.Dataset, name: str, *extra: str) -> np.ndarray:
    da = ds[name].transpose(*RUN, *extra)
    return da.values.reshape((-1, *[ds.sizes[d] for d in extra]))


def theory_dataset(traj: xr.Dataset) -> xr.Dataset:
    """Theory for every run of `traj` (see module docstring); same dims and coords."""
    kind = traj.attrs["kind"]
    teacher = traj.attrs["teacher"]
    idx = np.indices([traj.sizes[d] for d in RUN]).reshape(len(RUN), -1).T
    n_runs, n_step = len(idx), traj.sizes["step"]
    n_state = traj.sizes["state"]
    t = _flat(traj, "t", "step")
    k = _flat(traj, "k", "step")
    lam = _flat(traj, "lam")
    sig_n, eta_nm = _flat(traj, "sigma_n", "state"), _flat(traj, "eta_nm", "state", "state2")
    syy, p_rec = _flat(traj, "syy"), _flat(traj, "p", "step")
    b_rec, c_rec = _flat(traj, "b", "state", "step"), _flat(traj, "c", "state", "step")
    out = {n: np.full((n_runs, n_step), np.nan) for n in ("p", "loss", "p_map")}
    for n in ("b", "c"):
        out[n] = np.full((n_runs, n_state, n_step), np.nan)
    if kind == "trained_a":
        out["pole"] = np.full((n_runs, n_state, n_step), np.nan)
    scal = {n: np.full(n_runs, np.nan) for n in ("p_star", "loss_star", "t_half_th", "t_90_th", "tau_term", "sigma_pop", "eta_pop")}

    for i, ix in enumerate(idx):
        run = {d: traj[d].values[j] for d, j in zip(RUN, ix, strict=True)}
        n, depth = int(run["N"]), int(run["depth"])
        valid = np.isfinite(t[i])
        if not (valid.any() and np.isfinite(sig_n[i, :n]).all()):
            continue  # padding of a ragged dim: no such run
        ti = t[i, valid]
        s_n, e_nm = sig_n[i, :n], eta_nm[i, :n, :n]
        a = rn.poles(run, teacher["a_star"], kind)
        s_pop, e_pop = _population(a, teacher, float(run["rho"]))
        scal["sigma_pop"][i], scal["eta_pop"][i] = s_pop.sum(), e_pop.sum()
        p_star = rn.model_optimum(run["param"], depth, s_n, e_nm, teacher["g_star"] if kind == "trained_a" else None)
        scal["p_star"][i] = p_star
        p0 = p_rec[i, 0]
        tu, inv = np.unique(ti, return_inverse=True)  # a run may record the same k twice
        res = _flow(run, kind, depth, n, tu, p0, b_rec[i, :n, 0], c_rec[i, :n, 0], s_n, e_nm, syy[i], teacher, p_star)
        out["p"][i, valid], out["loss"][i, valid] = res["p"][inv], res["loss"][inv]
        out["b"][i, :n, valid], out["c"][i, :n, valid] = res["b"][inv], res["c"][inv]
        if "pole" in res:
            out["pole"][i, :n, valid] = res["pole"][inv][:, None]
        for key in ("loss_star", "t_half_th", "t_90_th", "tau_term"):
            scal[key][i] = res[key]

    if kind == "fixed_a":
        _fill_maps(traj, idx, out, k, lam, sig_n, eta_nm, b_rec, c_rec)

    shape = [traj.sizes[d] for d in RUN]
    data = {
        "p": (RUN + ("step",), out["p"].reshape(*shape, n_step)),
        "loss": (RUN + ("step",), out["loss"].reshape(*shape, n_step)),
        "p_map": (RUN + ("step",), out["p_map"].reshape(*shape, n_step)),
        "b": (RUN + ("state", "step"), out["b"].reshape(*shape, n_state, n_step)),
        "c": (RUN + ("state", "step"), out["c"].reshape(*shape, n_state, n_step)),
    }
    if "pole" in out:
        data["pole"] = (RUN + ("state", "step"), out["pole"].reshape(*shape, n_state, n_step))
    for key, v in scal.items():
        data[key] = (RUN, v.reshape(shape))
    coords = {d: traj[d] for d in (*RUN, "step", "state")}
    coords["t_nominal"] = traj["t_nominal"]
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = store.provenance(traj.attrs.get("config_digest", digest({})), traj.attrs.get("precision", "float64"),
                                study="dynamics", experiment=traj.attrs.get("experiment", ""), kind=kind,
                                teacher=teacher, source="closed forms (13)-(28), ODE (11)/(21)/(29), GD map in statistics space")
    return ds


def _population(a, teacher, rho):
    if a.shape[0] == 1:
        return th.population_sigma_eta(a[0], teacher["a_star"], teacher["g_star"], rho)
    s, e = rn.population_stack_sigma_eta(a[:, 0], teacher["a_star"], teacher["g_star"], rho)
    return np.array([s]), np.array([[e]])


def _flow(run, kind, depth, n, t, p0, b0, c0, s_n, e_nm, syy, teacher, p_star) -> dict:
    """Gradient-flow theory of one run at times t (see module docstring)."""
    dense = np.concatenate([[0.0], np.geomspace(max(t[t > 0].min(), 1e-9) * 1e-2, t.max() * 4, 6000)]) if (t > 0).any() else t
    if kind == "trained_a":
        rho = float(run["rho"])
        b, c, pole = th.trained_a_flow(t, float(b0[0]), float(c0[0]), float(run["a0"]), teacher["a_star"], teacher["g_star"], rho)
        p = c * b
        sig = teacher["g_star"] * th.gamma_ar1(pole, teacher["a_star"], rho)
        eta = th.gamma_ar1(pole, pole, rho)
        syy_pop = th.population_syy(teacher["a_star"], teacher["g_star"], rho, teacher["noise_std"])
        loss = 0.5 * (syy_pop - 2 * p * sig + p**2 * eta)
        bd, cd, _ = th.trained_a_flow(dense, float(b0[0]), float(c0[0]), float(run["a0"]), teacher["a_star"], teacher["g_star"], rho)
        return dict(p=p, loss=loss, b=b[:, None], c=c[:, None], pole=pole, loss_star=0.5 * teacher["noise_std"] ** 2,
                    t_half_th=th.t_half_numeric(dense, cd * bd, p_star, 0.5),
                    t_90_th=th.t_half_numeric(dense, cd * bd, p_star, 0.9), tau_term=np.nan)
    if depth > 1:
        sigma, eta = float(s_n[0]), float(e_nm[0, 0])
        d = 2 * depth
        p = th.depth_flow_p(t, float(p0), sigma, eta, d)
        w = np.abs(p) ** (1.0 / d)
        return dict(p=p, loss=th.loss_from_p(p, sigma, eta, syy), b=w[:, None], c=w[:, None],
                    loss_star=th.loss_star(sigma, eta, syy),
                    t_half_th=float(th.depth_t_half(p0, sigma, eta, d)), t_90_th=float(th.depth_t_90(p0, sigma, eta, d)),
                    tau_term=1.0 / (d * eta * (sigma / eta) ** (2 - 2 / d)))
    if run["spread"] == "spread" and run["param"] == "untied":
        bt, ct = th.vector_flow(t, b0, c0, s_n, e_nm)
        p_n = bt * ct
        loss = 0.5 * (syy - 2 * p_n @ s_n + np.einsum("tn,nm,tm->t", p_n, e_nm, p_n))
        bd, cd = th.vector_flow(dense, b0, c0, s_n, e_nm)
        pd = (bd * cd).sum(axis=1)
        red = rn.reduction(run, s_n, e_nm)
        return dict(p=p_n.sum(axis=1), loss=loss, b=bt, c=ct,
                    loss_star=0.5 * (syy - s_n @ np.linalg.lstsq(e_nm, s_n, rcond=None)[0]),
                    t_half_th=th.t_half_numeric(dense, pd, p_star, 0.5), t_90_th=th.t_half_numeric(dense, pd, p_star, 0.9),
                    tau_term=1.0 / (2 * red.m * th.lambda_delta(red.sigma, red.eta, red.delta)))
    red = dataclasses.replace(rn.reduction(run, s_n, e_nm), p0=float(p0))  # the recorded initial gain
    p = th.unbalanced_p(red.m * t, red.p0, red.delta, red.sigma, red.eta)
    b, c = th.params_from_p(p / n, red.delta / n)
    loss = 0.5 * (syy - 2 * (p / n) * s_n.sum() + (p / n) ** 2 * e_nm.sum())
    pr_star = red.sigma / red.eta

    def p_of_t(tt):
        return float(th.unbalanced_p(red.m * tt, red.p0, red.delta, red.sigma, red.eta))

    rate = red.m * float(th.lambda_delta(red.sigma, red.eta, red.delta))
    return dict(p=p, loss=loss, b=np.repeat(b[:, None], n, 1), c=np.repeat(c[:, None], n, 1),
                loss_star=0.5 * (syy - s_n.sum() ** 2 / e_nm.sum()),
                t_half_th=rn.crossing_time(p_of_t, 0.5 * pr_star, 1.0 / rate),
                t_90_th=rn.crossing_time(p_of_t, 0.9 * pr_star, 1.0 / rate), tau_term=1.0 / (2 * rate))


def _fill_maps(traj, idx, out, k, lam, sig_n, eta_nm, b_rec, c_rec) -> None:
    """p_map for every fixed-pole run, grouped by shard shape (N, param, depth)."""
    groups: dict[tuple, list[int]] = {}
    for i, ix in enumerate(idx):
        run = {d: traj[d].values[j] for d, j in zip(RUN, ix, strict=True)}
        if np.isfinite(k[i]).any() and np.isfinite(sig_n[i, : int(run["N"])]).all():
            groups.setdefault((int(run["N"]), run["param"], int(run["depth"])), []).append(i)
    w_b = _flat(traj, "w_b", "layer", "step") if "w_b" in traj else None
    w_c = _flat(traj, "w_c", "layer", "step") if "w_c" in traj else None
    for (n, param, depth), rows in groups.items():
        rows = np.array(rows)
        tied = param == "tied"
        if depth > 1:
            b0, c0 = w_b[rows][:, :depth, 0][..., None], w_c[rows][:, :depth, 0][..., None]
        else:
            b0 = b_rec[rows][:, :n, 0][:, None, : 1 if tied else n]
            c0 = c_rec[rows][:, :n, 0][:, None, : 1 if tied else n]
        steps = np.where(np.isfinite(k[rows]), k[rows], -1).astype(np.int64)
        out["p_map"][rows] = stats_gd_map(b0, c0, sig_n[rows][:, :n], eta_nm[rows][:, :n, :n], lam[rows], steps, tied, depth)
