"""Figures of the `s4d` study, drawn from stored data only.

Each figure reads only the stores its rule passes in (a `FigureInputs`, as the study's
`figures` in `studies/s4d/__init__.py` declares them): every configured experiment's
`trajectories`, in the config's order, or the study store `kernel_limit`. The init x
disc x N figures read the experiments without X4 ablation axes, `ablation` those with.

- `spectra`: the initial eigenvalues of every init in the complex plane (trajectories, step 0);
- `kernel_limit`: the LegS kernel-limit errors against N, and the basis at one N;
- `accuracy`: final test metric by init x disc x N, seed by seed, for every experiment;
- `curves`: validation metric against training step (seed mean and +/- 1 sd);
- `drift`: eigenvalues at init and after training, and how far Im and Re moved;
- `ablation` (F8): final test metric per real-part transform and B trained/frozen, per init.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D

from ssmflow import plots
from ssmflow.study import FigureInputs

INIT_LABELS = {"legs": "S4D-LegS", "inv": "S4D-Inv", "lin": "S4D-Lin", "real": "S4D-Real", "random": "random",
               "rand-lognormal": "random (official, lognormal)"}
METRIC_LABELS = {"accuracy": "test accuracy", "r2": r"test $R^2$ (1 - MSE)", "mse": "test MSE (log)"}
DISC_STYLE = {"zoh": "-", "bilinear": "--"}
#: the X4 transforms in the spec's order (a gathered store sorts them by name)
TRANSFORM_ORDER = ("exp", "relu", "none")


def _experiments(inputs: FigureInputs) -> list[str]:
    """The experiments whose trajectories were declared, in declared (config) order."""
    exps = inputs.experiments("trajectories")
    if not exps:
        raise ValueError(f"this s4d figure draws trajectories, but none were declared; declared: {sorted(inputs)}.")
    return exps


def _open(inputs: FigureInputs, exp: str) -> xr.Dataset:
    return inputs.open("trajectories", exp)


def _init_palette(inits) -> dict:
    return dict(zip(inits, sns.color_palette("colorblind", len(inits)), strict=True))


def _title(ds: xr.Dataset, exp: str) -> str:
    task = ds.attrs.get("task", exp)
    detail = f"{task}, L = {ds.attrs.get('length')}" if task != exp else f"L = {ds.attrs.get('length')}"
    detail += f", lag {ds.attrs.get('lag')}" if task == "delay" else ""
    return f"{exp} ({detail})"


def figure_spectra(inputs: FigureInputs) -> plt.Figure:
    """Initial eigenvalues per init: continuous lambda (top) and discrete exp(Delta lambda) (bottom), per N."""
    ds = _open(inputs, _experiments(inputs)[0])
    first = ds[["lambda_re", "lambda_im", "delta"]].isel(step=0).sel(disc=ds.disc.values[0], seed=0).load()
    inits, ns = list(ds.init.values), list(ds.N.values)
    colors = dict(zip(ns, sns.color_palette("mako_r", len(ns)), strict=True))
    fig, axes = plt.subplots(2, len(inits), figsize=(3.2 * len(inits), 7.2), layout="constrained", sharex="row", sharey="row")
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
    for col, init in enumerate(inits):
        top, bottom = axes[0, col], axes[1, col]
        bottom.plot(circle.real, circle.imag, color="0.6", lw=0.8)
        for n in ns[::-1]:
            sel = first.sel(init=init, N=n)
            lam = (sel.lambda_re + 1j * sel.lambda_im).isel(mode=slice(0, n // 2)).values  # (layer, channel, mode)
            top.scatter(-lam.real.ravel(), lam.imag.ravel(), s=10, color=colors[n], alpha=0.7, lw=0)
            abar = np.exp(sel.delta.values[..., None] * lam)  # ZOH, each channel's own Delta
            for sign in (1, -1):  # the conjugate of every kept mode
                bottom.scatter(abar.real.ravel(), sign * abar.imag.ravel(), s=5, color=colors[n], alpha=0.5, lw=0)
        top.set(title=INIT_LABELS.get(init, init), xlabel=r"$-$Re $\lambda$ (log)")
        bottom.set(xlabel=r"Re $\bar A$", aspect="equal")
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_xlim(0.25, max(ns))
    axes[0, 0].set_ylim(-0.3, 3 * float(first.lambda_im.max()))
    axes[0, 0].set_yscale("symlog", linthresh=1.0)
    axes[0, 0].set_ylabel(r"Im $\lambda$ (symlog; Im $\geq$ 0 stored)")
    axes[1, 0].set_ylabel(r"Im $\bar A = e^{\Delta\lambda}$ (ZOH)")
    fig.legend(handles=[Line2D([], [], marker="o", ls="none", color=c, label=f"N = {n}") for n, c in colors.items()],
               loc="outside lower center", ncol=len(ns),
               title="initial eigenvalues, every layer and channel of seed 0 (bottom: with each channel's initial step Delta)")
    return fig


def figure_kernel_limit(inputs: FigureInputs) -> plt.Figure:
    """Relative errors of the S4D-LegS basis against N (log-log); the basis itself at one N."""
    ds = inputs.open("kernel_limit").load()
    fig, axes = plt.subplot_mosaic([["err", "k0", "k1"], ["err", "k2", "k3"]], figsize=(14, 6.5), layout="constrained",
                                   width_ratios=[1.5, 1, 1])
    ax = axes["err"]
    curves = [("pointwise", ds.dt.values[0], "pointwise (21)")] + [("avg", dt, f"step-averaged, dt = {dt:g} (22)") for dt in ds.dt.values] \
        + [("smooth", ds.dt.values[0], r"smooth input $\cos 3t$ (23)")]
    colors = sns.color_palette("colorblind", len(curves))
    for (measure, dt, label), color in zip(curves, colors, strict=True):
        for c, ls, marker in ((0.5, "-", "o"), (1.0, ":", "s")):
            err = ds.rel_error.sel(measure=measure, dt=dt, c=c)
            ax.plot(ds.N, err, ls=ls, marker=marker, color=color, mfc="none" if c == 1.0 else color, label=label if c == 0.5 else None)
    n = ds.N.values.astype(float)
    anchor = float(ds.rel_error.sel(measure="avg", dt=ds.dt.values[0], c=0.5).isel(N=-1))
    ax.plot(n, anchor * n[-1] / n, color="gray", lw=0.8, ls="-.", label=r"$\propto 1/N$")
    ax.set(xscale="log", yscale="log", xlabel=plots.LABELS["N"], ylabel="relative error (Frobenius, $k \\leq 3$, $t < 2$)",
           title=r"S4D-LegS basis against the LegS basis $\varphi_k(t)$")
    ax.set_xticks(n, [f"{v:g}" for v in n])
    ax.minorticks_off()
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o", label=r"$B/2$ (eq. 9)"),
                Line2D([], [], color="k", ls=":", marker="s", mfc="none", label=r"$B$ un-halved (control)")]
    ax.legend(handles=handles, loc="lower left", fontsize="x-small")
    n_show = 256 if 256 in ds.N.values else int(ds.N.values[len(ds.N) // 2])
    basis = ds.basis.sel(N=n_show)
    for k in range(min(4, ds.sizes["k"])):
        ax = axes[f"k{k}"]
        ax.plot(ds.t, basis.sel(kind="pointwise", k=k), color="0.7", lw=0.8, label="diagonal, pointwise")
        ax.plot(ds.t, basis.sel(kind="avg", k=k), color=colors[1], lw=1.6, label=f"diagonal, step-averaged (dt = {ds.dt.values[0]:g})")
        ax.plot(ds.t, basis.sel(kind="analytic", k=k), color="k", ls="--", lw=1.2, label=r"analytic $\varphi_k$")
        ax.set(title=f"$k$ = {k}, N = {n_show}", xlabel="$t$")
        if k == 0:
            ax.legend(loc="upper right", fontsize="x-small")
    return fig


def _experiment_by_n_grid(inputs: FigureInputs, row_height: float):
    """[(experiment, trajectories)], and a figure with one row per experiment and one column per N
    (axes beyond an experiment's own N values are hidden)."""
    sets = [(e, _open(inputs, e)) for e in _experiments(inputs)]
    n_cols = max(ds.sizes["N"] for _, ds in sets)
    fig, axes = plt.subplots(len(sets), n_cols, figsize=(4.6 * n_cols, row_height * len(sets)), layout="constrained",
                             squeeze=False)
    for row, (_, ds) in enumerate(sets):
        for col in range(ds.sizes["N"], n_cols):
            axes[row, col].set_visible(False)
    return sets, fig, axes


#: y range and chance level per metric
METRIC_RANGE = {"accuracy": ((0.0, 1.0), 0.1, "chance"), "r2": ((-0.05, 1.0), 0.0, "predict 0"),
                "mse": (None, 1 / 6, "predict 1")}


def _metric_axis(ax, metric: str | None) -> None:
    """A log y axis for MSE (lower is better, spread over decades)."""
    if metric == "mse":
        ax.set_yscale("log")


def figure_accuracy(inputs: FigureInputs) -> plt.Figure:
    """Final test metric per init, one marker per seed, ZOH and bilinear side by side, per (experiment, N)."""
    sets, fig, axes = _experiment_by_n_grid(inputs, row_height=3.5)
    discs = list(sets[0][1].disc.values)
    palette = dict(zip(discs, sns.color_palette("Set2", len(discs)), strict=True))
    for row, (exp, ds) in enumerate(sets):
        df = ds.test_metric.to_dataframe().reset_index()
        df["init"] = df["init"].map(lambda v: INIT_LABELS.get(v, v))
        order = [INIT_LABELS.get(i, i) for i in ds.init.values]
        metric = ds.attrs.get("metric")
        ylim, chance, chance_label = METRIC_RANGE.get(metric, (None, None, ""))
        for col, n in enumerate(ds.N.values):
            ax = axes[row, col]
            sub = df[df.N == n]
            several = len(discs) > 1
            sns.stripplot(sub, x="init", y="test_metric", hue="disc", hue_order=discs, order=order, dodge=several, ax=ax,
                          size=5, alpha=0.7, palette=palette, legend=False)
            sns.pointplot(sub, x="init", y="test_metric", hue="disc", hue_order=discs, order=order,
                          dodge=0.4 if several else False, ax=ax,
                          errorbar="sd", palette=palette, linestyle="none", markers="_", markersize=16, capsize=0.12,
                          legend=False)
            if chance is not None:
                ax.axhline(chance, color="gray", lw=0.8, ls=":")
                ax.text(len(order) - 0.5, chance, f" {chance_label}", va="bottom", ha="right", fontsize="x-small", color="gray")
            ax.set(title=f"{_title(ds, exp)}, N = {n}", xlabel="", ylim=ylim,
                   ylabel=METRIC_LABELS.get(metric, "test metric") if col == 0 else "")
            _metric_axis(ax, metric)
            ax.tick_params(axis="x", labelrotation=20)
    fig.legend(handles=[Line2D([], [], color=c, marker="o", lw=2, label=d) for d, c in palette.items()],
               loc="outside lower center", ncol=len(discs),
               title=f"discretization: dots are seeds, bars the mean +/- sd over {sets[0][1].sizes['seed']} seeds")
    return fig


def figure_curves(inputs: FigureInputs) -> plt.Figure:
    """Validation metric against step, per (experiment, N): seed mean and +/- 1 sd, hue init, style disc."""
    sets, fig, axes = _experiment_by_n_grid(inputs, row_height=3.4)
    palette = _init_palette(sets[0][1].init.values)
    for row, (exp, ds) in enumerate(sets):
        val = ds.val_metric.load()
        for col, n in enumerate(ds.N.values):
            ax = axes[row, col]
            for init in ds.init.values:
                for disc in ds.disc.values:
                    v = val.sel(init=init, disc=disc, N=n)
                    mean, sd = v.mean("seed"), v.std("seed")
                    ax.plot(ds.step, mean, color=palette[init], ls=DISC_STYLE.get(disc, "-"), lw=1.6)
                    ax.fill_between(ds.step, mean - sd, mean + sd, color=palette[init], alpha=0.12, lw=0)
            ax.set(title=f"{_title(ds, exp)}, N = {n}", xlabel="training step",
                   ylabel="validation " + METRIC_LABELS.get(ds.attrs.get("metric"), "metric").replace("test ", ""))
            if ds.attrs.get("metric") == "r2":
                ax.set_ylim(-0.3, 1.05)
            _metric_axis(ax, ds.attrs.get("metric"))
    handles = [Line2D([], [], color=c, lw=2, label=INIT_LABELS.get(i, i)) for i, c in palette.items()]
    handles += [Line2D([], [], color="k", ls=ls, label=d) for d, ls in DISC_STYLE.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), title="seed mean, band +/- 1 sd")
    return fig


def figure_drift(inputs: FigureInputs) -> plt.Figure:
    """How far lambda and Delta moved in training: per run (all experiments) and per mode (long-range task)."""
    exps = _experiments(inputs)
    frames = []
    for exp in exps:
        ds = _open(inputs, exp)
        ends = ds[["lambda_re", "lambda_im", "delta"]].isel(step=[0, -1]).load()
        first, last = ends.isel(step=0, drop=True), ends.isel(step=1, drop=True)
        per_run = xr.Dataset({
            "im_drift": (np.abs(last.lambda_im - first.lambda_im) / np.maximum(1.0, np.abs(first.lambda_im)))
            .median(("layer", "channel", "mode")),
            "re_ratio": (last.lambda_re / first.lambda_re).median(("layer", "channel", "mode")),
            "dt_ratio": (last.delta / first.delta).median(("layer", "channel")),
        })
        frames.append(per_run.to_dataframe().reset_index().assign(experiment=exp))
    df = pd.concat(frames)
    df["init"] = df["init"].map(lambda v: INIT_LABELS.get(v, v))
    inits = list(_open(inputs, exps[0]).init.values)
    order = [INIT_LABELS.get(i, i) for i in inits]
    fig, axes = plt.subplot_mosaic([["im", "re"], ["mode", "dt"]], figsize=(13, 9), layout="constrained")
    panels = (("im", "im_drift", r"median $|\Delta\,\mathrm{Im}\,\lambda| / \max(1, |\mathrm{Im}\,\lambda_0|)$",
               r"Im $\lambda$: relative change per run"),
              ("re", "re_ratio", r"median Re $\lambda_{end}$ / Re $\lambda_0$", r"Re $\lambda$: ratio per run"),
              ("dt", "dt_ratio", r"median $\Delta_{end} / \Delta_0$", r"step size $\Delta$: ratio per run"))
    for key, column, ylabel, title in panels:
        sns.boxplot(df, x="init", y=column, hue="experiment", order=order, ax=axes[key], fliersize=2, palette="pastel")
        axes[key].set(xlabel="", ylabel=ylabel, title=title + " (all N, disc, seeds)")
    axes["im"].set_yscale("log")
    for key in ("re", "dt"):
        axes[key].axhline(1.0, color="gray", lw=0.8)
    show = "delay" if "delay" in exps else exps[0]
    ds = _open(inputs, show)
    n_max = int(ds.N.max())
    ends = ds[["lambda_im"]].sel(N=n_max).isel(step=[0, -1], mode=slice(0, n_max // 2)).load()
    palette = _init_palette(inits)
    ax = axes["mode"]
    for init in inits:
        im0 = ends.lambda_im.sel(init=init).isel(step=0).values.ravel()
        dim = np.abs(ends.lambda_im.sel(init=init).isel(step=1).values.ravel() - im0)
        ax.scatter(np.abs(im0), dim, s=4, alpha=0.35, lw=0, color=palette[init], label=INIT_LABELS.get(init, init))
    grid = np.geomspace(1.0, max(2.0, float(np.abs(ends.lambda_im).max())), 50)
    ax.plot(grid, 0.1 * grid, color="gray", ls=":", lw=1, label="10 % of Im $\\lambda_0$")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("log")
    ax.set(xlabel=r"$|\mathrm{Im}\,\lambda_0|$ (symlog)", ylabel=r"$|\Delta\,\mathrm{Im}\,\lambda|$",
           title=f"every mode: {show}, N = {n_max}, all layers, channels, seeds, disc")
    ax.legend(loc="lower right", fontsize="x-small", markerscale=3)
    return fig


def _seed_bars(ax, df, x: str, hue: str, order, hue_order, palette: dict, metric: str | None) -> None:
    """Test metric per `x` and `hue`: bars the seed mean, dots the seeds, chance dotted, the
    metric's axis (F8 and G11)."""
    kw = dict(x=x, y="test_metric", hue=hue, order=order, hue_order=hue_order, ax=ax, palette=palette, legend=False)
    sns.barplot(df, errorbar=None, alpha=0.6, **kw)
    sns.stripplot(df, dodge=True, size=5, edgecolor="k", linewidth=0.5, **kw)
    ylim, chance, _ = METRIC_RANGE.get(metric, (None, None, ""))
    if chance is not None:
        ax.axhline(chance, color="gray", lw=0.8, ls=":")
    _metric_axis(ax, metric)
    if ylim is not None:
        ax.set_ylim(*ylim)


def figure_ablation(inputs: FigureInputs) -> plt.Figure:
    """F8: final test metric per real-part transform (x) and B trained or frozen (hue), one
    panel per (experiment, disc, N) and init; bars the seed mean, dots the seeds, diverged runs counted."""
    sets = [(e, _open(inputs, e)) for e in _experiments(inputs)]
    rows = [(e, ds, d, n) for e, ds in sets for d in ds.disc.values for n in ds.N.values]
    n_cols = max(ds.sizes["init"] for _, ds in sets)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(3.8 * n_cols, 3.4 * len(rows)), layout="constrained",
                             squeeze=False)
    palette = {"trained": sns.color_palette("Set2")[0], "frozen": sns.color_palette("Set2")[1]}
    for row, (exp, ds, disc, n) in enumerate(rows):
        sel = ds.sel(disc=disc, N=n)
        metric = ds.attrs.get("metric")
        for col in range(n_cols):
            ax = axes[row, col]
            if col >= ds.sizes["init"]:
                ax.set_visible(False)
                continue
            init = ds.init.values[col]
            one = sel.sel(init=init)
            if "real_transform" not in one.dims:
                one = one.expand_dims(real_transform=["exp"])
            if "B" not in one.dims:
                one = one.expand_dims(B=["trained"])
            df = one.test_metric.to_dataframe().reset_index()
            df["real_transform"], df["B"] = df["real_transform"].astype(str), df["B"].astype(str)
            have = [str(v) for v in one.real_transform.values]
            order = [t for t in TRANSFORM_ORDER if t in have] + [t for t in have if t not in TRANSFORM_ORDER]
            hue_order = [str(v) for v in one.B.values]
            _seed_bars(ax, df, "real_transform", "B", order, hue_order, palette, metric)
            diverged = (one.diverged_at >= 0).sum(["seed"]) if "diverged_at" in one else None
            for k, rt in enumerate(order):
                for j, b in enumerate(hue_order):
                    n_div = int(diverged.sel(real_transform=rt, B=b)) if diverged is not None else 0
                    if n_div:
                        ax.text(k + (j - 0.5) * 0.4, 0.02, f"{n_div} div.", transform=ax.get_xaxis_transform(),
                                ha="center", fontsize="x-small", color="firebrick")
            ax.set(title=f"{_title(ds, exp)}, {disc}, N = {n}: {INIT_LABELS.get(init, init)}",
                   xlabel=r"real-part transform $f$, Re $\lambda = -f(x)$",
                   ylabel=METRIC_LABELS.get(metric, "test metric") if col == 0 else "")
    handles = [Line2D([], [], color=c, marker="s", lw=0, markersize=9, label=f"B {b}") for b, c in palette.items()]
    handles.append(Line2D([], [], color="gray", ls=":", label="chance / predict 1"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles),
               title=f"bars: mean over {sets[0][1].sizes['seed']} seeds, dots: seeds (diverged runs counted at the bottom)")
    return fig


def figure_rate(inputs: FigureInputs) -> plt.Figure:
    """F9 (X5): test accuracy of the saved models at their training rate (r = 1) against the
    half-rate test set read with Delta x r (eq. 18), per init: one line per seed, per (experiment, disc, N)."""
    exps = inputs.experiments("rate")
    panels = []
    for exp in exps:
        ds = inputs.open("rate", exp).load()
        for disc in ds.disc.values:
            for n in ds.N.values:
                panels.append((exp, ds.sel(disc=disc, N=n), disc, n))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.5, 4.6 * len(panels)), 4.4), layout="constrained", squeeze=False)
    for ax, (exp, ds, disc, n) in zip(axes[0], panels, strict=True):
        inits = list(ds.init.values)
        palette = _init_palette(inits)
        r = float(ds.rate.values[-1])
        for init in inits:
            one = ds.sel(init=init)
            for extra in [d for d in one.test_metric.dims if d not in ("seed", "rate")]:
                one = one.isel({extra: 0})  # X5 runs on the main grid; an ablation axis would take its default first
            acc = one.test_metric.transpose("seed", "rate").values
            for k, row in enumerate(acc):
                ax.plot([1, r], row, color=palette[init], marker="o", alpha=0.8, label=INIT_LABELS.get(init, init) if k == 0 else None)
        ax.axhline(0.1, color="gray", lw=0.8, ls=":")
        ax.set(xticks=[1, r], xticklabels=["r = 1 (L)", f"r = {r:g} (L/{r:g}, $\\Delta \\times {r:g}$)"], xlim=(0.8, r + 0.2),
               ylim=(0, 1.02), ylabel="test accuracy", title=f"{_title(ds, exp)}, {disc}, N = {n}")
        ax.legend(fontsize="x-small", title="init (lines: seeds)")
    fig.suptitle("F9 (X5): zero-shot sampling-rate change of the saved models (no retraining)\n"
                 "S4: r = 2 keeps >= 0.9 of the r = 1 accuracy (LegS, Inv, Lin)")
    return fig


def figure_lra(inputs: FigureInputs) -> plt.Figure:
    """freqbias G11 (X4, the LRA-style mechanism check): final test metric by alpha (x) and
    Sobolev filter (hue), bars the seed mean and dots the seeds, one row per experiment; and
    the distribution of the learned Sobolev exponents s_h (all layers and channels, final
    snapshot) per alpha."""
    sets = [(e, _open(inputs, e).load()) for e in _experiments(inputs)]
    fig, axes = plt.subplots(len(sets), 2, figsize=(10.5, 3.8 * len(sets)), layout="constrained", squeeze=False)
    palette = {"off": sns.color_palette("Set2")[2], "learnable": sns.color_palette("Set2")[3]}
    for row, (exp, ds) in enumerate(sets):
        one = ds
        for dim, default in (("sobolev", "off"), ("alpha", 1.0)):
            if dim not in one.dims:
                one = one.expand_dims({dim: [default]})
        df = one.test_metric.to_dataframe().reset_index().dropna(subset=["test_metric"])
        df["sobolev"] = df["sobolev"].astype(str)
        df["alpha"] = df["alpha"].map(lambda a: f"{a:g}")
        hue_order = [h for h in ("off", "learnable") if h in set(df["sobolev"])]
        ax = axes[row, 0]
        metric = ds.attrs.get("metric")
        _seed_bars(ax, df, "alpha", "sobolev", None, hue_order, palette, metric)
        inits = ", ".join(INIT_LABELS.get(str(i), str(i)) for i in ds.init.values)
        ax.set(xlabel=r"$\alpha$ (Im $\lambda$ of the init times $\alpha$)", ylabel=METRIC_LABELS.get(metric, "test metric"),
               title=f"{_title(ds, exp)}: {inits}, N = {', '.join(str(n) for n in ds.N.values)}")
        ax.legend(handles=[Line2D([], [], color=palette[h], marker="s", lw=0, markersize=9, label=f"Sobolev {h}")
                           for h in hue_order], fontsize="x-small")
        ax = axes[row, 1]
        if "s_h" in one and "learnable" in [str(v) for v in one.sobolev.values]:
            s_h = one.s_h.sel(sobolev="learnable").isel(step=-1)
            for k, a in enumerate(s_h.alpha.values):
                vals = s_h.sel(alpha=a).values.ravel()
                vals = vals[np.isfinite(vals)]
                ax.hist(vals, bins=30, histtype="step", lw=1.6, color=sns.color_palette("rocket", len(s_h.alpha))[k],
                        label=rf"$\alpha$ = {a:g} (median {np.median(vals):+.3f})")
            ax.axvline(0, color="gray", ls=":", lw=1)
            ax.set(xlabel=r"learned Sobolev exponent $s_h$ (init 0; > 0 tilts towards high frequencies)",
                   ylabel="channels x layers x seeds", title="learned $s_h$, final snapshot")
            ax.legend(fontsize="x-small")
        else:
            ax.set_visible(False)
    fig.suptitle("freqbias G11 (X4): the frequency bias on an S4D classifier, by init scale alpha and Sobolev filter")
    return fig


DRAW = {"spectra": figure_spectra, "kernel_limit": figure_kernel_limit, "accuracy": figure_accuracy,
        "curves": figure_curves, "drift": figure_drift, "ablation": figure_ablation, "rate": figure_rate,
        "lra": figure_lra}


def make_figure(name: str, inputs: FigureInputs, out: Path) -> Path:
    """Draw figure `name` from its declared stores `inputs` and save it as PNG at `out`."""
    if name not in DRAW:
        raise ValueError(f"figure name={name!r} is not defined; expected one of {sorted(DRAW)}.")
    plots.theme()
    return plots.save(DRAW[name](FigureInputs(inputs)), out)
