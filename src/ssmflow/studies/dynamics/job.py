"""One `dynamics` training job: a shard spec in, a labelled trajectory Dataset out.

Host: the run table, poles, deterministic inits, population statistics, lam, t_end and
the recording schedule. Data: each run's sequences, read from the experiment's data
store (`data.data_dataset`, written once by the data stage; a row's key comes from the
run's own DATA_COORDS). Device: each run's empirical statistics (6) and full-batch GD
on the sequences through the shared engine (`ssmflow.train`), all runs of the shard
vmapped in one compiled scan.
"""

from __future__ import annotations

import logging
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ssmflow import models, store, train
from ssmflow.config import digest
from ssmflow.studies.dynamics import CATEGORICAL
from ssmflow.studies.dynamics import runs as rn
from ssmflow.studies.dynamics import theory as th
from ssmflow.studies.dynamics.data import DATA_COORDS, data_dataset, shard_sequences
from ssmflow.studies.dynamics.model import LinearSSM, bin_fit, spectral_loss_from_fit, time_loss
from ssmflow.studies.dynamics.stats import empirical_stats

log = logging.getLogger("ssmflow.dynamics")

__all__ = ["DATA_COORDS", "make_data", "model_step_fn", "model_template", "nominal_times", "prepare", "to_dataset", "train_shard"]


def nominal_times(spec: dict) -> np.ndarray:
    """The experiment's shared nominal time grid t_nominal(step)."""
    t_min, t_max = spec["settings"]["t_record"]
    return train.log_spaced_times(t_min, t_max, spec["common"]["record_points"])


def prepare(spec: dict) -> tuple[rn.RunTable, dict[str, np.ndarray]]:
    """Host-side per-run quantities (all from population statistics)."""
    table = rn.run_table(spec)
    kind, lr_mode = spec["settings"]["kind"], spec["settings"]["lr_mode"]
    teacher = spec["common"]["teacher"]
    t_max = spec["settings"]["t_record"][1]
    out = {k: [] for k in ("poles", "b0", "c0", "lam", "t_end", "rate", "p_star_pop")}
    for i in range(table.n_runs):
        run = table.run(i)
        a = rn.poles(run, teacher["a_star"], kind)
        sig, eta = _population(a, teacher, float(run["rho"]))
        p_star = rn.model_optimum(run["param"], int(run["depth"]), sig, eta, _trained_gain(spec))
        scale = p_star if spec["settings"]["p0_mode"] == "relative" else 1.0
        b0, c0 = rn.initial_params(run, scale)
        sch = rn.schedule(run, kind, lr_mode, sig, eta, t_max, scale)
        for k, v in zip(out, (a, b0, c0, sch.lam, sch.t_end, sch.rate, p_star), strict=True):
            out[k].append(v)
    return table, {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _trained_gain(spec: dict) -> float | None:
    """With trained poles the model class contains the teacher: p* = g*."""
    return spec["common"]["teacher"]["g_star"] if spec["settings"]["kind"] == "trained_a" else None


def _population(a: np.ndarray, teacher: dict, rho: float):
    """Population (sigma_n, eta_nm) of a run's regressors: per state, or through a stack."""
    if a.shape[0] == 1:
        return th.population_sigma_eta(a[0], teacher["a_star"], teacher["g_star"], rho)
    sigma, eta = rn.population_stack_sigma_eta(a[:, 0], teacher["a_star"], teacher["g_star"], rho)
    return np.array([sigma]), np.array([[eta]])


def make_data(spec: dict, table: rn.RunTable, data: xr.Dataset | None = None):
    """(key, u, y) of every run of the shard, from the experiment's data store `data`.

    Without a store (hand use, tests, benchmarks) the shard's own rows are synthesized in
    memory by the data stage's function, so the numbers are the same either way.
    """
    if data is None:
        data = data_dataset(spec)
    return shard_sequences(spec, table, data)


def train_shard(spec: dict, data: xr.Dataset | None = None, *, chunk_steps: int | None = None, batching: str = "map") -> xr.Dataset:
    """Train every run of a shard and return its trajectory Dataset (spec section 5).

    **Arguments:** the shard `spec`; `data` the experiment's data store (`data.zarr`, opened
    lazily: only the shard's rows are read); None synthesizes the shard's rows in memory.
    """
    t0 = time.perf_counter()
    table, host = prepare(spec)
    kind = spec["settings"]["kind"]
    conv, param, depth = table.coords["conv"][0], table.coords["param"][0], int(table.coords["depth"][0])
    length = spec["common"]["data"]["length"]
    if data is None:
        data = data_dataset(spec)
    generator_digest = str(data.attrs.get("generator_digest", ""))
    keys, u, y = make_data(spec, table, data)
    poles = jnp.asarray(host["poles"])
    # lax.map, not vmap: a batched dot may round differently, and a run's statistics
    # must not depend on what else is in its shard
    sigma_n, eta_nm, syy = jax.jit(lambda *a: jax.lax.map(lambda x: empirical_stats(*x, conv), a))(u, y, poles)
    sigma_n, eta_nm, syy = map(np.asarray, (sigma_n, eta_nm, syy))
    p_star = np.array([rn.model_optimum(param, depth, s, e, _trained_gain(spec)) for s, e in zip(sigma_n, eta_nm, strict=True)])

    times = nominal_times(spec)
    steps = train.record_steps(times, host["lam"], host["t_end"])
    runs = dict(key=keys, lam=jnp.asarray(host["lam"]), poles=poles, b0=jnp.asarray(host["b0"]),
                c0=jnp.asarray(host["c0"]), p_star=jnp.asarray(p_star))
    if conv == "circular":
        s_uu, fit_g, fit_r = jax.jit(lambda *a: jax.lax.map(lambda x: bin_fit(jnp.fft.rfft(x[0]), jnp.fft.rfft(x[1])), a))(u, y)
        runs.update(s_uu=s_uu, fit_g=fit_g, fit_r=fit_r)
    else:
        runs.update(u=u, y=y)
    del u, y
    train_a = kind == "trained_a"
    n_state = table.coords["N"][0]

    def init_fn(run):
        return LinearSSM(a=run["poles"], b=run["b0"], c=run["c0"], conv=conv, train_a=train_a)

    def loss_fn(model, run, key):
        del key  # full-batch GD: no randomness per step
        if conv == "circular":
            return spectral_loss_from_fit(model, run["s_uu"], run["fit_g"], run["fit_r"], length)
        return time_loss(model, run["u"], run["y"])

    def observe_fn(model, run):
        obs = dict(p=model.gain(), b=jnp.broadcast_to(model.b[0], (n_state,)), c=jnp.broadcast_to(model.c[0], (n_state,)))
        if depth > 1:
            obs.update(w_b=model.b[:, 0], w_c=model.c[:, 0])
        if train_a:
            obs.update(pole=model.a[0])
        return obs

    def event_fn(model, run):
        p = model.gain()
        return dict(half=p >= 0.5 * run["p_star"], ninety=p >= 0.9 * run["p_star"])

    res = train.train_ensemble(
        init_fn, loss_fn, observe_fn, runs, steps, event_fn=event_fn,
        chunk_steps=chunk_steps or spec["common"]["chunk_steps"], logger=log, batching=batching,
    )
    ds = to_dataset(spec, table, host, times, steps, res, sigma_n, eta_nm, syy, p_star, time.perf_counter() - t0)
    ds.attrs["data_generator_digest"] = generator_digest  # the data generator the runs' sequences came from
    return ds


def model_template(spec: dict) -> LinearSSM:
    """A model shaped like one run's trained model of the shard `spec` (its first run's
    initial values): what `ssmflow.models.load` fills with a saved run."""
    table, host = prepare(spec)
    conv = table.coords["conv"][0]
    return LinearSSM(a=jnp.asarray(host["poles"][0]), b=jnp.asarray(host["b0"][0]), c=jnp.asarray(host["c0"][0]), conv=conv,
                     train_a=spec["settings"]["kind"] == "trained_a")


def to_dataset(spec, table, host, times, steps, res, sigma_n, eta_nm, syy, p_star, wall) -> xr.Dataset:
    """Reshape flat per-run results into the labelled store layout."""
    dims, shape = table.dims, table.shape

    def rs(a, *extra):
        a = np.asarray(a)
        return (dims + extra, a.reshape(shape + a.shape[1:]))

    lam = host["lam"]
    k = np.where(steps >= 0, steps, np.nan)
    half, ninety = res.events["half"], res.events["ninety"]

    def ev(x):
        return np.where(x >= 0, x, np.nan)

    data = {
        "k": rs(k, "step"),
        "t": rs(k * lam[:, None], "step"),
        "loss": rs(res.records["loss"], "step"),
        "p": rs(res.records["p"], "step"),
        "b": rs(np.swapaxes(res.records["b"], 1, 2), "state", "step"),
        "c": rs(np.swapaxes(res.records["c"], 1, 2), "state", "step"),
        "lam": rs(lam),
        "t_end": rs(host["t_end"]),
        "sigma_n": rs(sigma_n, "state"),
        "eta_nm": rs(eta_nm, "state", "state2"),
        "sigma": rs(sigma_n.sum(axis=1)),
        "eta": rs(eta_nm.sum(axis=(1, 2))),
        "syy": rs(syy),
        "p_star": rs(p_star),
        "k_half": rs(ev(half)),
        "k_90": rs(ev(ninety)),
        "t_half": rs(ev(half) * lam),
        "t_90": rs(ev(ninety) * lam),
        "diverged_at": rs(res.diverged_at),
        "diverged": rs(res.diverged_at >= 0),
        models.MODEL_VAR: rs(models.run_bytes(res.final_params), models.MODEL_DIM),  # each run's trained model
    }
    for name in ("w_b", "w_c"):
        if name in res.records:
            data[name] = rs(np.swapaxes(res.records[name], 1, 2), "layer", "step")
    if "pole" in res.records:
        data["pole"] = rs(np.swapaxes(res.records["pole"], 1, 2), "state", "step")
    coords = {d: (np.array(v, dtype=object) if d in CATEGORICAL else np.array(v)) for d, v in table.coords.items()}
    n_state = sigma_n.shape[1]
    coords.update(step=np.arange(len(times)), state=np.arange(n_state), state2=np.arange(n_state), t_nominal=("step", times))
    if "w_b" in data:
        coords["layer"] = np.arange(int(table.coords["depth"][0]))
    ds = xr.Dataset(data, coords=coords)
    ds.attrs = store.provenance(
        digest(spec), spec["common"]["precision"], study=spec["study"], experiment=spec["experiment"],
        shard=spec["shard"], kind=spec["settings"]["kind"], lr_mode=spec["settings"]["lr_mode"],
        p0_mode=spec["settings"]["p0_mode"],
        steps_per_second=float(res.steps_per_second), n_steps=int(res.n_steps), wall_seconds=float(wall),
        teacher=spec["common"]["teacher"], data=spec["common"]["data"],
    )
    return ds


def model_step_fn(spec: dict, data: xr.Dataset | None = None):
    """For benchmarks: (one jitted GD step on a single run, its initial model, run dict)."""
    table, host = prepare(spec)
    conv = table.coords["conv"][0]
    length = spec["common"]["data"]["length"]
    keys, u, y = make_data(spec, table, data)
    s_uu, fit_g, fit_r = bin_fit(jnp.fft.rfft(u[0]), jnp.fft.rfft(y[0]))
    lam = jnp.asarray(host["lam"][0])
    model = LinearSSM(a=jnp.asarray(host["poles"][0]), b=jnp.asarray(host["b0"][0]), c=jnp.asarray(host["c0"][0]), conv=conv, train_a=False)

    @eqx.filter_jit
    def step(m):
        loss, g = eqx.filter_value_and_grad(lambda mm: spectral_loss_from_fit(mm, s_uu, fit_g, fit_r, length))(m)
        return jax.tree.map(lambda p, gp: p - lam * gp, m, g), loss

    return step, model
