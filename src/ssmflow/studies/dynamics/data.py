"""Teacher-SSM data for the `dynamics` study (spec section 2.3) and its data stage.

Inputs are white or AR(1) with unit marginal variance; the teacher is a one-pole SSM
H_*(w) = g* G_{a*}(w) applied in the model's convolution mode (C2), plus optional
white output noise.

The data stage (`data_dataset`, rule `dynamics_data`) writes an experiment's sequences
once, to `results/dynamics/<exp>/data.zarr`; every training shard of the experiment
reads its runs' rows from there. A run's data depends only on its `DATA_COORDS`
(rho, conv, seed): each row is drawn from `train.run_key("dynamics", {rho, conv, seed})`,
so adding seeds (or rho values) leaves the existing rows bit for bit as they were.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, Float, PRNGKeyArray

if TYPE_CHECKING:
    import xarray as xr

CONV_MODES = ("circular", "causal")
#: the coordinates a run's data depends on (its PRNG key comes from these alone)
DATA_COORDS = ("rho", "conv", "seed")
#: dims of the data store kept whole in one chunk: one chunk per (rho, conv, seed) row
WHOLE_DIMS = ("sequence", "time", "freq")


def ar1_inputs(key: PRNGKeyArray, n_seq: int, length: int, rho) -> Float[Array, "seq time"]:
    """AR(1) sequences with unit marginal variance: u_t = rho u_{t-1} + sqrt(1-rho^2) eps_t.

    `rho = 0` gives white noise. u_0 ~ N(0, 1) (stationary start).

    **Arguments:** `key`; `n_seq` (P) and `length` (L); `rho` scalar in (-1, 1).
    **Returns:** array (P, L).
    """
    eps = jax.random.normal(key, (length, n_seq))
    scale = jnp.sqrt(1.0 - rho**2)

    def step(prev, e):
        u = rho * prev + scale * e
        return u, u

    _, rest = jax.lax.scan(step, eps[0], eps[1:])
    return jnp.concatenate([eps[:1], rest], axis=0).T


def one_pole_kernel(a, length: int) -> Float[Array, "time"]:
    """Impulse response a^j, j = 0..L-1, of G_a(w) = 1 / (1 - a e^{-iw}) (eq. 4)."""
    j = jnp.arange(length)
    return jnp.where(j == 0, 1.0, a ** jnp.maximum(j, 1))


def one_pole_transfer(a, length: int):
    """G_a(w_k) = 1 / (1 - a e^{-i w_k}) on the rfft bins w_k = 2 pi k / L (eq. 4)."""
    w = 2 * jnp.pi * jnp.arange(length // 2 + 1) / length
    return 1.0 / (1.0 - a * jnp.exp(-1j * w))


def rfft_weights(length: int) -> Float[Array, "freq"]:
    """Weights that turn a sum over rfft bins into the sum over all L DFT bins (C1)."""
    w = jnp.full(length // 2 + 1, 2.0)
    w = w.at[0].set(1.0)
    if length % 2 == 0:
        w = w.at[-1].set(1.0)
    return w


def causal_convolve(u: Float[Array, "... time"], kernel: Float[Array, "time"]) -> Float[Array, "... time"]:
    """Causal convolution y_t = sum_{j<=t} K_j u_{t-j}, by FFT zero-padded to 2L."""
    length = u.shape[-1]
    n = 2 * length
    return jnp.fft.irfft(jnp.fft.rfft(u, n) * jnp.fft.rfft(kernel, n), n)[..., :length]


def filter_one_pole(u: Float[Array, "... time"], a, mode: str) -> Float[Array, "... time"]:
    """z = G_a u in the given convolution mode (C2)."""
    length = u.shape[-1]
    if mode == "circular":
        return jnp.fft.irfft(jnp.fft.rfft(u) * one_pole_transfer(a, length), length)
    if mode == "causal":
        return causal_convolve(u, one_pole_kernel(a, length))
    raise ValueError(f"`conv` (={mode!r}) must be one of {CONV_MODES}.")


def teacher_dataset(
    key: PRNGKeyArray,
    *,
    n_seq: int,
    length: int,
    rho,
    a_star,
    g_star,
    noise_std,
    mode: str,
) -> tuple[Float[Array, "seq time"], Float[Array, "seq time"]]:
    """Inputs u and teacher outputs y = g* G_{a*} u + noise, both (P, L)."""
    k_u, k_n = jax.random.split(key)
    u = ar1_inputs(k_u, n_seq, length, rho)
    y = g_star * filter_one_pole(u, a_star, mode)
    y = y + noise_std * jax.random.normal(k_n, y.shape)
    return u, y


def generator(spec: dict) -> dict:
    """What every data row's numbers depend on besides its own coordinates (rho, conv, seed)."""
    common = spec["common"]
    return {"study": spec["study"], "data": dict(common["data"]), "teacher": dict(common["teacher"]), "precision": common["precision"]}


def data_spec(spec: dict) -> dict:
    """The part of an experiment (or shard) spec that its data store depends on: the
    generator and the rows (rho and conv values, seed values).

    The store's `config_digest` is the digest of this; its `generator_digest` that of
    `generator(spec)` alone, which adding seeds or rho values does not change.
    """
    from ssmflow import grid

    return {**generator(spec), "rho": [float(r) for r in spec["axes"]["rho"]], "conv": list(spec["axes"]["conv"]),
            "seeds": grid.seed_values(spec)}


def synthesize(study: str, rho, conv: str, seeds, *, n_seq: int, length: int, teacher: dict):
    """Sequences (u, y) of the rows (rho[i], conv, seeds[i]): each from its own coordinates.

    One compiled `lax.map` over rows, the program the training job ran before the data
    stage existed (so the numbers are the same bits); a row's numbers do not depend on
    the other rows.

    **Arguments:** `study` (key derivation); per-row `rho` and `seeds` (same length); `conv`
    mode; sizes `n_seq` (P), `length` (L); `teacher` {a_star, g_star, noise_std}.
    **Returns:** (keys (row, 2) uint32 key data, u (row, P, L), y (row, P, L)), device arrays.
    """
    from ssmflow import train

    keys = jnp.stack([train.run_key(study, {"rho": r, "conv": conv, "seed": s}) for r, s in zip(rho, seeds, strict=True)])
    rho = jnp.asarray(np.asarray(rho), float)

    def one(key, r):
        return teacher_dataset(
            jax.random.wrap_key_data(key), n_seq=n_seq, length=length, rho=r,
            a_star=teacher["a_star"], g_star=teacher["g_star"], noise_std=teacher["noise_std"], mode=conv,
        )

    u, y = jax.jit(lambda k, r: jax.lax.map(lambda x: one(*x), (k, r)))(keys, rho)
    return keys, u, y


def sequence_stats(u, y) -> dict[str, np.ndarray]:
    """Per-row statistics of the sequences, from the data alone (no model pole).

    Scalars: `u_mean`, `u_var` = <u^2>, `u_lag1` = <u_t u_{t-1}> / <u_{t-1}^2> (estimates rho),
    `syy` = <y^2>. Spectra on the rfft bins (eq. 7, C1): `s_uu` = (1/PL) sum_p |U_k|^2,
    `s_yy`, and `s_yu` = (1/PL) sum_p Y_k conj(U_k) as `s_yu_re`, `s_yu_im`.
    **Arguments:** `u`, `y` (row, P, L). **Returns:** numpy arrays (row,) and (row, freq).
    """
    u, y = np.asarray(u), np.asarray(y)
    length = u.shape[-1]
    uf, yf = np.fft.rfft(u, axis=-1), np.fft.rfft(y, axis=-1)
    s_yu = np.mean(yf * np.conj(uf), axis=1) / length
    return {
        "u_mean": u.mean(axis=(1, 2)),
        "u_var": np.mean(u**2, axis=(1, 2)),
        "u_lag1": np.mean(u[..., 1:] * u[..., :-1], axis=(1, 2)) / np.mean(u[..., :-1] ** 2, axis=(1, 2)),
        "syy": np.mean(y**2, axis=(1, 2)),
        "s_uu": np.mean(np.abs(uf) ** 2, axis=1) / length,
        "s_yy": np.mean(np.abs(yf) ** 2, axis=1) / length,
        "s_yu_re": s_yu.real,
        "s_yu_im": s_yu.imag,
    }


def _check_precision(precision: str) -> None:
    if (precision == "float64") != bool(jax.config.jax_enable_x64):
        raise ValueError(f"the spec's `precision` (={precision!r}) is not JAX's current one; "
                         "call ssmflow.train.set_precision(spec['common']['precision']) first.")


def data_dataset(spec: dict) -> xr.Dataset:
    """The experiment's data store: every (rho, conv, seed) row of u and y, and their statistics.

    **Arguments:** an experiment spec (`grid.experiment_spec`) or a shard spec (then only
    the shard's rows). JAX's precision must be the spec's (float64 here).
    **Returns:** a Dataset with dims (rho, conv, seed, sequence, time[, freq]); attrs carry
    provenance, the teacher and data settings and `whole_dims` (the store's chunk layout).
    """
    import xarray as xr

    from ssmflow import store
    from ssmflow.config import digest

    common = spec["common"]
    _check_precision(common["precision"])
    dspec = data_spec(spec)
    rho, convs, seeds = dspec["rho"], dspec["conv"], dspec["seeds"]
    n_seq, length = int(common["data"]["n_seq"]), int(common["data"]["length"])
    shape = (len(rho), len(convs), len(seeds))
    parts = {"u": [], "y": []}
    for conv in convs:  # the convolution mode is static: one program per mode
        rows = list(itertools.product(rho, seeds))
        _, u, y = synthesize(spec["study"], [r for r, _ in rows], conv, [s for _, s in rows],
                             n_seq=n_seq, length=length, teacher=common["teacher"])
        for name, a in (("u", u), ("y", y)):
            parts[name].append(np.asarray(a).reshape(len(rho), 1, len(seeds), n_seq, length))
    arrays = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    flat = {k: arrays[k].reshape(-1, n_seq, length) for k in ("u", "y")}
    stats = sequence_stats(flat["u"], flat["y"])
    run_dims = ("rho", "conv", "seed")
    data_vars = {
        "u": (run_dims + ("sequence", "time"), arrays["u"], {"long_name": "input sequences u_t", "units": "1"}),
        "y": (run_dims + ("sequence", "time"), arrays["y"], {"long_name": "teacher outputs y = g* G_{a*} u + noise", "units": "1"}),
        "data_seed": (run_dims, np.array([[[store_seed(spec["study"], r, c, s) for s in seeds] for c in convs] for r in rho], dtype=np.uint32),
                      {"long_name": "32-bit seed of the row's PRNG key: train.run_seed(study, {rho, conv, seed})"}),
    }
    for name, a in stats.items():
        dims = run_dims + (("freq",) if a.ndim == 2 else ())
        data_vars[name] = (dims, a.reshape(shape + a.shape[1:]), {"long_name": _STAT_NAMES[name]})
    freq = np.arange(length // 2 + 1)
    ds = xr.Dataset(
        data_vars,
        coords={
            "rho": np.asarray(rho, dtype=float), "conv": np.array(convs, dtype=object), "seed": np.asarray(seeds),
            "sequence": np.arange(n_seq), "time": np.arange(length), "freq": freq,
            "omega": ("freq", 2 * np.pi * freq / length, {"long_name": "w_k = 2 pi k / L (rad/sample), rfft bins"}),
        },
    )
    ds.attrs = store.provenance(
        digest(dspec), common["precision"], study=spec["study"], experiment=spec["experiment"],
        content="teacher-SSM sequences (spec 2.3): u white (rho = 0) or AR(1) with unit marginal variance, "
                "y = g* G_{a*} u in the row's convolution mode plus white noise of std noise_std",
        data_coords=list(DATA_COORDS), teacher=dict(common["teacher"]), data=dict(common["data"]), data_spec=dspec,
        generator_digest=digest(generator(spec)),
        keys="each (rho, conv, seed) row is drawn from train.run_key(study, {rho, conv, seed}) alone: adding seeds "
             "or rho values leaves the existing rows unchanged",
        fresh_samples="none: full-batch gradient descent trains on these fixed sequences; nothing is drawn per step",
        statistics="u_mean, u_var, u_lag1, syy are means over sequences and time; s_uu, s_yy, s_yu_re/im are the "
                   "per-bin spectra of eq. (7) on the rfft bins (sums over all L bins weight bins 0 < k < L/2 by 2). "
                   "Training computes its pole-dependent statistics (sigma_n, eta_nm, syy) from u and y.",
        whole_dims=list(WHOLE_DIMS),
    )
    return ds


def store_seed(study: str, rho: float, conv: str, seed: int) -> int:
    """The 32-bit seed of one data row (`train.run_seed` of its DATA_COORDS)."""
    from ssmflow import train

    return train.run_seed(study, {"rho": rho, "conv": conv, "seed": seed})


_STAT_NAMES = {
    "u_mean": "<u>, mean over sequences and time",
    "u_var": "<u^2>, mean over sequences and time (1 in expectation)",
    "u_lag1": "<u_t u_{t-1}> / <u_{t-1}^2>, empirical lag-1 autocorrelation (estimates rho)",
    "syy": "Syy = <y^2>, eq. (6)",
    "s_uu": "S_uu(w_k) = (1/PL) sum_p |U_pk|^2, eq. (7)",
    "s_yy": "S_yy(w_k) = (1/PL) sum_p |Y_pk|^2",
    "s_yu_re": "Re S_yu(w_k), S_yu = (1/PL) sum_p Y_pk conj(U_pk), eq. (7)",
    "s_yu_im": "Im S_yu(w_k)",
}


def shard_sequences(spec: dict, table, data) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The (key, u, y) of every run of a shard, read from the experiment's data store.

    **Arguments:** the shard `spec`; its run table (`runs.run_table`); `data` the data
    store (an opened or in-memory Dataset of `data_dataset`).
    **Returns:** keys (run, 2), u and y (run, P, L), in the table's run order.
    """
    common = spec["common"]
    for name in ("teacher", "data"):
        if dict(data.attrs.get(name, {})) != dict(common[name]):
            raise ValueError(f"the data store was made with {name}={data.attrs.get(name)!r}, the spec has {common[name]!r}: "
                             "rerun the data stage for this config.")
    conv = table.coords["conv"][0]
    rho, seeds = [float(r) for r in table.coords["rho"]], list(table.coords["seed"])
    try:
        rows = data[["u", "y"]].sel(conv=conv, rho=rho, seed=seeds).transpose("rho", "seed", "sequence", "time").load()
    except KeyError as err:
        raise ValueError(f"the data store lacks rows for conv={conv!r}, rho={rho}, seeds={seeds} "
                         f"(it has conv={list(data.conv.values)}, rho={list(data.rho.values)}, "
                         f"seeds={list(data.seed.values)}): rerun the data stage for this config.") from err
    want = "float64" if common["precision"] == "float64" else "float32"
    if rows.u.dtype != np.dtype(want):
        raise ValueError(f"the data store holds {rows.u.dtype} sequences, the spec's precision is {want}.")
    i_rho = np.array([rho.index(float(r)) for r in table.values["rho"]])
    i_seed = np.array([seeds.index(int(s)) for s in table.values["seed"]])
    from ssmflow import train

    keys = jnp.stack([train.run_key(spec["study"], {d: table.values[d][i] for d in DATA_COORDS}) for i in range(table.n_runs)])
    return keys, jnp.asarray(rows.u.values[i_rho, i_seed]), jnp.asarray(rows.y.values[i_rho, i_seed])
