"""Figures F1-F5 (and F3fixed) of the `dynamics` study (spec section 4), drawn from stored data only.

Each figure reads only the stores its rule passes in (a `FigureInputs`, as the study's
`figures` in `studies/dynamics/__init__.py` declares them): `trajectories`, `theory` and
`metrics_csv` of its experiments (F1 also those of F1c, when the config has it).
Simulation is the seed mean (solid) with its min-max band; theory is dashed. The only
theory evaluated here is the trivial closed forms of the spec: the logistic (13) and the
time constants of (15), on stored statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from ssmflow import plots
from ssmflow.studies.dynamics import RUN_DIMS
from ssmflow.studies.dynamics.theory import lazy_time_constant, logistic_p, terminal_time_constant
from ssmflow.study import FigureInputs

THEORY_STYLE = {"color": "black", "ls": "--", "lw": 1.0}
T_LABEL = plots.LABELS["t"]
P_LABEL = plots.LABELS["p_rel"]


def load_experiment(inputs: FigureInputs, exp: str, keep: tuple[str, ...] = ()) -> tuple[xr.Dataset, xr.Dataset, pd.DataFrame]:
    """(trajectories, theory, metrics) of one experiment, from the declared inputs.

    Length-1 run dims are dropped except those in `keep` (the dims a figure selects
    on, so it works on any grid, a single value included); `seed` is kept.
    """
    def squeeze(ds: xr.Dataset) -> xr.Dataset:
        return ds.squeeze([d for d in RUN_DIMS if ds.sizes.get(d) == 1 and d not in keep]).load()

    traj = squeeze(inputs.open("trajectories", exp))
    theory = squeeze(inputs.open("theory", exp))
    return traj, theory, inputs.csv("metrics", exp)


def _positive(t: xr.DataArray, y: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """t and y (same step axis) with t <= 0 masked, for log-x plots."""
    t = np.asarray(t, dtype=float)
    return np.where(t > 0, t, np.nan), np.asarray(y, dtype=float)


def plot_sim(ax, t: xr.DataArray, y: xr.DataArray, color, label: str | None = None, **kw) -> None:
    """Seed mean of y (solid) and its min-max band over seeds, against the seed-mean t."""
    tt, mean = _positive(t.mean("seed"), y.mean("seed"))
    ax.plot(tt, mean, color=color, lw=2.2, label=label, **kw)
    ax.fill_between(tt, y.min("seed"), y.max("seed"), color=color, alpha=0.25, lw=0)


def plot_theory(ax, t: xr.DataArray, y: xr.DataArray, **style) -> None:
    """Seed mean of a theory curve, dashed black unless `style` says otherwise."""
    ax.plot(*_positive(t.mean("seed"), y.mean("seed")), **(THEORY_STYLE | style))


def _legend_entries(colors: dict, fmt: Callable[[object], str], theory: str) -> list[Line2D]:
    handles = [Line2D([], [], color=c, lw=2.2, label=fmt(v)) for v, c in colors.items()]
    return handles + [Line2D([], [], label=f"theory {theory}", **THEORY_STYLE)]


def _palette(values) -> dict:
    return dict(zip(values, sns.color_palette("colorblind", len(values))))


def _loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two distinct x)."""
    x, y = np.log(np.ravel(x)), np.log(np.ravel(y))
    return np.polyfit(x, y, 1)[0] if np.unique(x).size > 1 else np.nan


def _log_ticks(ax, values) -> None:
    """Major x ticks at `values` (plain labels), no minor labels."""
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


def figure_f1(inputs: FigureInputs) -> plt.Figure:
    """p/p* against t per (a, rho), coloured by p0; GD-vs-flow error against kappa; causal mode."""
    traj_all, theory, metrics = load_experiment(inputs, "F1", keep=("a", "rho", "p0", "kappa"))
    kappa = traj_all.kappa.min().item()
    traj, theory = traj_all.sel(kappa=kappa), theory.sel(kappa=kappa)
    colors = _palette(traj.p0.values)
    has_causal = inputs.has("trajectories", "F1c")
    rows = max(traj.sizes["rho"], 2)
    side = ["err"] * (rows // 2) + ["causal" if has_causal else "err"] * (rows - rows // 2)
    mosaic = [[f"a{i}_r{min(j, traj.sizes['rho'] - 1)}" for i in range(traj.sizes["a"])] + [side[j]] for j in range(rows)]
    n_a = traj.sizes["a"]
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(3.6 * n_a + 4.2, 7), layout="constrained", width_ratios=[1] * n_a + [1.15])
    for i, a in enumerate(traj.a.values):
        for j, rho in enumerate(traj.rho.values):
            ax = axes[f"a{i}_r{j}"]
            for p0, c in colors.items():
                run, th = traj.sel(a=a, rho=rho, p0=p0), theory.sel(a=a, rho=rho, p0=p0)
                plot_sim(ax, run.t, run.p / run.p_star, c)
                plot_theory(ax, run.t, th.p / run.p_star)
            ax.set(xscale="log", title=f"$a$ = {a:g}, $\\rho$ = {rho:g}", xlabel=T_LABEL,
                   ylabel=P_LABEL if i == 0 else "", ylim=(-0.03, 1.08))
    ax = axes["err"]
    for p0, c in colors.items():
        m = metrics[np.isclose(metrics.p0, p0)]
        ax.scatter(m.kappa, m.max_rel_err_p, color=c, s=12, alpha=0.5)
        mean = m.groupby("kappa").max_rel_err_p.mean()
        ax.plot(mean.index, mean.values, color=c, marker="o")
    ks = np.array(sorted(metrics.kappa.unique()))
    ax.plot(ks, 3 * ks, color="gray", ls=":", label=r"$3\kappa$ (sec. 3.4)")
    ax.text(0.03, 0.97, f"exact GD map (18): max rel. err. {metrics.max_rel_err_map.max():.0e}",
            transform=ax.transAxes, va="top", fontsize="small")
    ax.set(xscale="log", yscale="log", xlabel=r"step-size knob $\kappa = \lambda\sigma$ (C6)",
           ylabel="max relative error of $p$", title="GD vs flow (13), all $a$, $\\rho$, seeds")
    _log_ticks(ax, ks)
    ax.legend(loc="lower right")
    if has_causal:
        ax = axes["causal"]
        causal, causal_th, _ = load_experiment(inputs, "F1c")
        circ = traj_all.sel(a=causal.a.item(), rho=causal.rho.item(), p0=causal.p0.item(), kappa=causal.kappa.item())
        plot_sim(ax, circ.t, circ.p / circ.p_star, "gray", label="circular (F1)", ls=":")
        plot_sim(ax, causal.t, causal.p / causal.p_star, colors[causal.p0.item()], label="causal (F1c)")
        plot_theory(ax, causal.t, causal_th.p / causal.p_star, label="theory (13), causal stats")
        ax.legend(loc="upper left")
        ax.text(0.03, 0.6, f"mean $t_{{1/2}}$: causal {causal.t_half.mean().item():.3f},\n"
                f"circular {circ.t_half.mean().item():.3f}", transform=ax.transAxes, fontsize="small")
        ax.set(xscale="log", xlabel=T_LABEL, ylabel=P_LABEL,
               title=f"F1c: causal mode, $a$ = {causal.a.item():g}, $p_0$ = {causal.p0.item():g}")
    fig.legend(handles=_legend_entries(colors, lambda v: f"$p_0$ = {v:g}", "(13)"), loc="outside lower center",
               ncol=len(colors) + 1, title=f"simulation: seed mean, min-max band ($\\kappa$ = {kappa:g})")
    return fig


def figure_f2(inputs: FigureInputs) -> plt.Figure:
    """Unbalanced N = 1: p/p*, c and b against t per Delta; terminal time constant against |Delta|."""
    traj, theory, metrics = load_experiment(inputs, "F2", keep=("balance",))
    colors = _palette(traj.balance.values)
    fig, axes = plt.subplot_mosaic([["p", "tau"], ["c", "b"]], figsize=(13, 9), layout="constrained")
    for delta, col in colors.items():
        run, th = traj.sel(balance=delta), theory.sel(balance=delta)
        plot_sim(axes["p"], run.t, run.p / run.p_star, col)
        plot_theory(axes["p"], run.t, th.p / run.p_star)
        for name in ("c", "b"):
            plot_sim(axes[name], run.t, run[name].isel(state=0), col)
            plot_theory(axes[name], run.t, th[name].isel(state=0))
    axes["p"].set(xscale="log", xlabel=T_LABEL, ylabel=P_LABEL, title=r"product $p = cb$ ($\Delta = \pm 1$ coincide)")
    for name, role in (("c", "output weight"), ("b", "input weight")):
        axes[name].set(xscale="log", yscale="log", xlabel=T_LABEL, ylabel=f"${name}(t)$", title=f"{role} ${name}$")
    ax = axes["tau"]
    sigma, eta = traj.sigma.mean().item(), traj.eta.mean().item()
    grid = np.concatenate([[0.0], np.geomspace(1e-2, max(2 * np.abs(traj.balance).max().item(), 10.0), 200)])
    ax.plot(grid, terminal_time_constant(sigma, eta, grid), label=r"$\tau/(2\lambda_\Delta)$ (15)", **THEORY_STYLE)
    ax.axhline(1 / (2 * sigma), color="gray", ls=":", label=r"$\tau/(2\sigma)$ (balanced)")
    lazy = grid[grid >= 0.5]
    ax.plot(lazy, lazy_time_constant(sigma, eta, lazy), color="gray", ls="-.", label=r"$\tau/(\eta|\Delta|)$ (lazy)")
    fit = metrics.groupby("balance")[["tau_fit", "tau_term"]].agg(["mean", "min", "max"])
    for delta, row in fit.iterrows():
        y = row["tau_fit"]
        ax.errorbar(abs(delta), y["mean"], yerr=[[y["mean"] - y["min"]], [y["max"] - y["mean"]]], color=colors[delta],
                    marker="v" if delta < 0 else "o", ms=14 if delta < 0 else 8, mew=1.5, ls="none",
                    mfc="none" if delta < 0 else colors[delta])
        ax.plot(abs(delta), row["tau_term"]["mean"], "kx", ms=7, zorder=5)
    ax.set(yscale="log", xlim=(-0.02, grid[-1]), ylim=(0.03, 1.0), xlabel=r"$|\Delta| = |c_0^2 - b_0^2|$",
           ylabel=r"terminal time constant ($\tau$ units)", title="terminal time constant")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + [
        Line2D([], [], color="gray", marker="o", ls="none", label=r"fitted (T12), $\Delta \geq 0$"),
        Line2D([], [], color="gray", marker="v", mfc="none", ls="none", label=r"fitted, $\Delta < 0$"),
        Line2D([], [], color="k", marker="x", ls="none", label="stored tau_term")], loc="lower left")
    fig.legend(handles=_legend_entries(colors, lambda v: f"$\\Delta$ = {v:g}", "(15)-(16)"), loc="outside lower center",
               ncol=len(colors) + 1, title=f"simulation: seed mean, min-max band ($a$ = {traj.a.item():g}, "
                                           f"$p_0$ = {traj.p0.item():g}, $\\kappa$ = {traj.kappa.item():g})")
    return fig


#: N exponents of table 3.6 (balanced t_half, lazy time constant) per (param, init_norm)
TABLE_EXPONENTS = {("tied", "per_state"): ("-1 (log-corr.)", "-2"), ("tied", "total"): ("-1", "-1"),
                   ("untied", "per_state"): ("log only", "-1"), ("untied", "total"): ("0", "0")}


def _n_scaling_panel(ax, m: pd.DataFrame, measured: str, predicted: str, row: int) -> None:
    """Measured (markers, seed min-max bars) and predicted (dashed) quantity against N, per (param, init_norm)."""
    combos = list(TABLE_EXPONENTS)
    handles = []
    for (combo, col), marker in zip(_palette(combos).items(), "osD^"):
        g = m[(m.param == combo[0]) & (m.init_norm == combo[1])].groupby("N")
        y, th = g[measured].agg(["mean", "min", "max"]), g[predicted].mean()
        slope = _loglog_slope(y.index, y["mean"])
        handles.append(ax.errorbar(y.index, y["mean"], yerr=[y["mean"] - y["min"], y["max"] - y["mean"]], color=col,
                                   marker=marker, ms=7, mfc="none", ls="none",
                                   label=f"{combo[0]}, {combo[1]}: slope {slope:+.2f}; table {TABLE_EXPONENTS[combo][row]}"))
        ax.plot(th.index, th.values, color=col, ls="--", lw=1.1)
    n = np.array(sorted(m.N.unique()), dtype=float)
    anchor = m.loc[m.N == n[0], measured].mean()
    for k, ls in ((1, ":"), (2, (0, (1, 3)))):
        handles += ax.plot(n, anchor * (n / n[0]) ** -k, color="gray", ls=ls, label=f"reference $N^{{-{k}}}$")
    ax.set(xscale="log", yscale="log", xlabel=plots.LABELS["N"])
    _log_ticks(ax, n)
    ax.legend(handles=handles, loc="lower left", fontsize="x-small")


def figure_f3(inputs: FigureInputs) -> plt.Figure:
    """log-log t_half (balanced) and lazy time constant (Delta < 0) against N, identical vs spread poles."""
    metrics = load_experiment(inputs, "F3")[2]
    spreads, balances = metrics.spread.unique(), sorted(metrics.balance.unique(), reverse=True)
    fig, axes = plt.subplots(len(balances), len(spreads), figsize=(6.5 * len(spreads), 5 * len(balances)),
                             layout="constrained", squeeze=False)
    for row, delta in enumerate(balances):
        lazy = delta != 0
        for col, spread in enumerate(spreads):
            m = metrics[(metrics.spread == spread) & (metrics.balance == delta)]
            _n_scaling_panel(axes[row, col], m, *(("tau_fit", "tau_term") if lazy else ("t_half", "t_half_th")), int(lazy))
            axes[row, col].set(title=f"{'lazy' if lazy else 'balanced'} ($\\Delta$ = {delta:g}), {spread} $a_n$",
                               ylabel=(r"terminal time constant" if lazy else r"half time $t_{1/2}$") + r" ($\tau$ units)")
    fig.suptitle("markers: measured (seed mean, min-max bars); dashed: theory (26)-(28), ODE (11) for untied spread")
    return fig


def figure_f3fixed(inputs: FigureInputs) -> plt.Figure:
    """Steps to 50 % and 90 % of p* against N at one shared lam (lr_mode fixed); p/p* on the step axis."""
    traj, theory, metrics = load_experiment(inputs, "F3fixed", keep=("N", "param", "init_norm"))
    combos = list(TABLE_EXPONENTS)
    colors = _palette(combos)
    fig, axes = plt.subplot_mosaic([["k_half", "k_90", "p"]], figsize=(19, 5.8), layout="constrained")
    for name, frac in (("k_half", "50"), ("k_90", "90")):
        ax = axes[name]
        for combo, marker in zip(combos, "osD^"):
            g = metrics[(metrics.param == combo[0]) & (metrics.init_norm == combo[1])].groupby("N")
            y, th = g[name].agg(["mean", "min", "max"]), g[f"{name}_th"].mean()
            ax.errorbar(y.index, y["mean"], yerr=[y["mean"] - y["min"], y["max"] - y["mean"]], color=colors[combo],
                        marker=marker, ms=8, mfc="none", ls="none",
                        label=f"{combo[0]}, {combo[1]}: slope {_loglog_slope(y.index, y['mean']):+.2f}")
            ax.plot(th.index, th.values, color=colors[combo], ls="--", lw=1.1)
        err = (np.abs(metrics[name] - metrics[f"{name}_th"]) / metrics[f"{name}_th"]).max()
        ax.set(xscale="log", yscale="log", xlabel=plots.LABELS["N"], ylabel=f"GD steps to {frac} % of $p^*$",
               title=f"steps to {frac} % of $p^*$ (dashed: theory (26)-(28) / lr)\n"
                     f"max |GD - theory| / theory over all runs: {err:.1e}")
        _log_ticks(ax, sorted(metrics.N.unique()))
        ax.legend(loc="lower left", fontsize="x-small")
    ax = axes["p"]
    n_max = traj.N.max().item()
    for combo in combos:
        run = traj.sel(N=n_max, param=combo[0], init_norm=combo[1])
        th = theory.sel(N=n_max, param=combo[0], init_norm=combo[1])
        plot_sim(ax, run.k, run.p / run.p_star, colors[combo])
        plot_theory(ax, run.k, th.p / run.p_star)
    for frac in (0.5, 0.9):
        ax.axhline(frac, color="gray", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="GD step $k$", ylabel=P_LABEL, ylim=(-0.03, 1.08),
           title=f"$p/p^*$ at $N$ = {n_max} (each run stops at its $t_{{end}}$)")
    fig.legend(handles=_legend_entries(colors, lambda v: f"{v[0]}, {v[1]}", "(26)-(28)"), loc="outside lower center",
               ncol=len(colors) + 1, title=f"simulation: seed mean, min-max over seeds (balanced, identical $a_n$ = "
                                           f"{traj.a.item():g}, $s_0$ = {traj.p0.item():g}, lr = {traj.lam.max().item():g})")
    return fig


def figure_f4(inputs: FigureInputs) -> plt.Figure:
    """p/p* against t per depth D (per filter variant and p0); normalized t_half against p*/p0."""
    traj, theory, _ = load_experiment(inputs, "F4", keep=("spread", "p0", "depth"))
    colors = {2 * d: c for d, c in zip(traj.depth.values, sns.color_palette("colorblind", traj.sizes["depth"]))}
    spreads, p0s = list(traj.spread.values), list(traj.p0.values)
    mosaic = [[f"{s}_{j}" for j in range(len(p0s))] + ["T"] for s in spreads]
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(15, 8), layout="constrained", width_ratios=[1] * len(p0s) + [1.2])
    for s in spreads:
        for j, p0 in enumerate(p0s):
            ax = axes[f"{s}_{j}"]
            for depth in traj.depth.values:
                run, th = traj.sel(spread=s, p0=p0, depth=depth), theory.sel(spread=s, p0=p0, depth=depth)
                plot_sim(ax, run.t, run.p / run.p_star, colors[2 * depth])
                plot_theory(ax, run.t, th.p / run.p_star)
            start = (traj.p.isel(step=0) / traj.p_star).sel(spread=s, p0=p0).mean("seed").values
            ax.set(xscale="log", xlabel=T_LABEL, ylabel=P_LABEL,
                   title=f"{s} filters\n$p_0/p^*$ = " + " / ".join(f"{v:.3g}" for v in start) + " ($D$ = "
                         + " / ".join(str(2 * d) for d in traj.depth.values) + ")")
    ax = axes["T"]
    D = 2 * traj.depth
    scale = traj.eta * traj.p_star ** (2 - 2 / D)
    ratio = (traj.p_star / traj.p.isel(step=0)).mean("seed")
    measured, predicted = (traj.t_half * scale).mean("seed"), (theory.t_half_th * scale).mean("seed")
    handles = []
    for depth in traj.depth.values:
        d, col = 2 * depth, colors[2 * depth]
        x, y = ratio.sel(depth=depth), measured.sel(depth=depth).transpose(*ratio.sel(depth=depth).dims)
        slope = _loglog_slope(x, y)
        law = "log law" if d == 2 else f"power law {1 - 2 / d:.2f}"
        handles.append(Line2D([], [], color=col, ls="--", label=f"$D$ = {d}: slope {slope:.2f} ({law})"))
        for s, marker in zip(spreads, "os"):
            ax.plot(x.sel(spread=s), y.sel(spread=s), marker=marker, ls="none", color=col, mfc="none", ms=8)
        order = np.argsort(x.values.ravel())
        ax.plot(x.values.ravel()[order], predicted.sel(depth=depth).transpose(*x.dims).values.ravel()[order],
                color=col, ls="--")
    ax.set(xscale="log", yscale="log", xlabel=r"$p^*/p_0$ (measured at $t = 0$)", title=r"half time, rescaled by (25)",
           ylabel=r"$T_D = t_{1/2}\,\eta\,p^{*\,2-2/D}$")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(handles=handles + [Line2D([], [], color="gray", marker=mk, mfc="none", ls="none", label=f"measured, {s}")
                                 for s, mk in zip(spreads, "os")], loc="upper left", title="theory (22) dashed")
    fig.legend(handles=_legend_entries(colors, lambda v: f"$D$ = {v}", "(21)"), loc="outside lower center",
               ncol=len(colors) + 1, title=f"simulation: seed mean, min-max band (lr = {traj.lam.max().item():g})")
    return fig


def figure_f5(inputs: FigureInputs) -> plt.Figure:
    """Trained pole: p(t) against the trained-a ODE and the fixed-a0 logistic; a(t) converging to a*."""
    traj, theory, _ = load_experiment(inputs, "F5", keep=("a0",))
    teacher = traj.attrs["teacher"]
    colors = _palette(traj.a0.values)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    for a0, col in colors.items():
        run, th = traj.sel(a0=a0), theory.sel(a0=a0)
        plot_sim(axes[0], run.t, run.p, col)
        plot_theory(axes[0], run.t, th.p)
        fixed = xr.apply_ufunc(logistic_p, run.t.fillna(0), run.p0, run.sigma, run.eta)
        plot_theory(axes[0], run.t, fixed.where(run.t.notnull()), color=col, ls=":", lw=1.8)
        plot_sim(axes[1], run.t, run.pole.isel(state=0), col)
        plot_theory(axes[1], run.t, th.pole.isel(state=0))
    axes[0].axhline(teacher["g_star"], color="gray", lw=0.8)
    axes[1].axhline(teacher["a_star"], color="gray", lw=0.8)
    axes[0].set(xscale="log", xlabel=T_LABEL, ylabel="total gain $p$", title="gain $p(t)$ (gray: teacher $g^*$)")
    axes[1].set(xscale="log", xlabel=T_LABEL, ylabel="trained pole $a(t)$", title="pole $a(t)$ (gray: teacher $a^*$)")
    axes[0].legend(handles=[Line2D([], [], color="gray", ls=":", lw=1.8, label="fixed-$a_0$ logistic (13)")],
                   loc="upper left")
    fig.legend(handles=_legend_entries(colors, lambda v: f"$a_0$ = {v:g}", "ODE (12)+(29)"), loc="outside lower center",
               ncol=len(colors) + 1, title=f"simulation: seed mean, min-max band (lr = {traj.lam.max().item():g})")
    return fig


FIGURES = {"F1": figure_f1, "F2": figure_f2, "F3": figure_f3, "F3fixed": figure_f3fixed, "F4": figure_f4, "F5": figure_f5}


def make_figure(name: str, inputs: FigureInputs, out: Path) -> Path:
    """Draw figure `name` (F1-F5, F3fixed) from its declared stores `inputs` and save it as PNG at `out`."""
    if name not in FIGURES:
        raise ValueError(f"figure name={name!r} is not defined; expected one of {sorted(FIGURES)}.")
    plots.theme()
    return plots.save(FIGURES[name](FigureInputs(inputs)), out)
