"""Figures of the `freqbias` study, drawn from stored data only.

- `band`: |Khat| of every init over frequency for each alpha (atlas), centroid against alpha, filter weights (G1, G4);
- `locality`: gradient weight against |s - y| and the discrete probe (G2), numeric TV against the bound (G3),
  the official waves filter's effective weight (eq. 15) against the symmetric one (G4);
- `waves_error`: final test MAE per wave for every (alpha, beta), seed mean and seeds (G5);
- `waves_curves`: test MAE per wave against training step for every (alpha, beta) (G6);
- `waves_modes`: Im a of every mode at init against after training, with the wave frequencies (G7);
- `denoise_examples`: clean, noisy and output images, both stripe orientations (G8);
- `denoise_error`: transmission T_H and T_V per alpha preset and beta, and mse_out (G9);
- `denoise_response`: the trained filter |g w Khat(omega)| with the two stripe frequencies marked (G10).

Each figure reads only the stores its rule passes in (a `FigureInputs`, as the study's
`figures` in `studies/freqbias/__init__.py` declares them): the study stores `theory` and
`atlas` (band, locality), or `trajectories`, `metrics_csv` and `transfer` of every
experiment of the figure's kind, in the config's order.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D

from ssmflow import plots
from ssmflow.study import FigureInputs

INIT_LABELS = {"legs": "S4D-LegS", "inv": "S4D-Inv", "lin": "S4D-Lin", "real": "S4D-Real", "random": "random"}


def _experiments(inputs: FigureInputs, kind: str) -> list[str]:
    """The declared experiments (trajectories), in declared order; each must be of `kind`."""
    exps = inputs.experiments("trajectories")
    if not exps:
        raise ValueError(f"this freqbias figure draws {kind} experiments, but no trajectories were declared; "
                         f"declared: {sorted(inputs)}.")
    for exp in exps:
        got = inputs.open("trajectories", exp).attrs.get("kind")
        if got != kind:
            raise ValueError(f"declared input trajectories/{exp} is a {got!r} experiment; this figure draws {kind!r} ones.")
    return exps


def figure_band(inputs: FigureInputs) -> plt.Figure:
    """|Khat(omega)| of every init per alpha (atlas); centroid against alpha; Sobolev weights per preset."""
    atlas = inputs.open("atlas").load()
    theory = inputs.open("theory").load()
    inits = list(atlas.init.values)
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5), layout="constrained")
    colors = dict(zip(atlas.alpha.values, sns.color_palette("viridis", atlas.sizes["alpha"]), strict=True))
    for ax, init in zip(axes.flat[:len(inits)], inits, strict=False):
        for a in atlas.alpha.values:
            ax.plot(atlas.omega, atlas.mag_discrete.sel(init=init, alpha=a), color=colors[a], lw=1.2)
        ax.set(xscale="log", yscale="log", title=f"{INIT_LABELS.get(init, init)} (N = {atlas.attrs['state_size']}, "
               f"$\\Delta$ = {atlas.attrs['delta']:g})", xlabel=r"$\omega$ (rad/sample)", ylabel=r"$|\hat K(\omega)|$")
    axes[0, 0].legend(handles=[Line2D([], [], color=c, label=f"$\\alpha$ = {a:g}") for a, c in colors.items()], fontsize="x-small")
    ax = axes.flat[len(inits)]
    for init in inits:
        ax.plot(atlas.alpha, atlas.centroid.sel(init=init), marker="o", label=INIT_LABELS.get(init, init))
    ax.plot(theory.alpha, theory.centroid, color="k", ls="--", marker="s", label="S4D-Lin-$\\alpha$, X1 band (eq. 10)")
    ax.set(xscale="log", yscale="log", xlabel=r"$\alpha$", ylabel="spectral centroid (rad/sample)", title="centroid rises with $\\alpha$")
    ax.legend(fontsize="x-small")
    ax = axes.flat[len(inits) + 1]
    styles = dict(zip(theory.filter_beta.values, ("--", "-", ":"), strict=False))
    pal = dict(zip(theory.preset.values, sns.color_palette("Set1", theory.sizes["preset"]), strict=True))
    for p in theory.preset.values:
        for b in theory.filter_beta.values:
            if b != 0:
                ax.plot(theory.f, theory.weight.sel(preset=p, filter_beta=b), color=pal[p], ls=styles.get(b, "-"))
    ax.set(yscale="log", xlabel="f (cycles/sample)", ylabel="w(f)", title=f"Sobolev weights at $\\Delta$ = {atlas.attrs['delta']:g}")
    ax.legend(handles=[Line2D([], [], color=c, label=str(p)) for p, c in pal.items()]
              + [Line2D([], [], color="k", ls=styles.get(b, "-"), label=f"$\\beta$ = {b:g}") for b in theory.filter_beta.values if b != 0],
              fontsize="x-small")
    ax = axes.flat[len(inits) + 2]
    for a in atlas.alpha.values:
        ax.plot(atlas.s, atlas.mag_continuous.sel(init="lin", alpha=a), color=colors[a], lw=1.2)
    ax.set(xscale="log", yscale="log", xlabel="s (rad per unit time)", ylabel=r"$|G(is)|$ (eq. 2)",
           title="S4D-Lin, continuous transfer function")
    return fig


def figure_locality(inputs: FigureInputs) -> plt.Figure:
    """Gradient weight (eqs. 5, 7) and discrete probe (test 3d); TV against the eq. 4 bound."""
    th = inputs.open("theory").load()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), layout="constrained")
    y, x = th.attrs["pole_im"], abs(th.attrs["pole_re"])
    ax = axes[0]
    d = th.s.values - y
    base = th.grad_cont.sel(beta=0.0)
    ax.plot(d, base, label=r"$|c|/((s-y)^2+x^2)$ (eq. 5)")
    ax.plot(d, base.values[0] * (d / d[0]) ** -2, color="gray", ls=":", label="slope $-2$")
    dd = th.omega0.values / th.attrs["probe_step"] - y
    scale = base.values[np.argmin(np.abs(d - dd[0]))] / th.grad_disc.values[0]
    ax.plot(dd, th.grad_disc * scale, "o", ms=4, label=f"discrete probe (L = {th.attrs['probe_length']}, rescaled)")
    ax.set(xscale="log", yscale="log", xlabel=r"$|s - y|$ (rad/unit)", ylabel=r"$|\partial G/\partial y|$",
           title=f"gradient locality, a = {-x:g} + {y:g}i")
    ax.legend(fontsize="x-small")
    ax = axes[1]
    for b in th.beta.values:
        ax.plot(th.s, th.grad_cont.sel(beta=b), label=f"$\\beta$ = {b:g} (slope {b - 2:g})")
    ax.set(xscale="log", yscale="log", xlabel="s (rad/unit)", ylabel="filtered weight (eq. 7)", title="Sobolev filter, $s_0$ = 1")
    ax.legend(fontsize="x-small")
    ax = axes[2]
    for cut in th.cutoff.values:
        ax.scatter(th.tv_bound.sel(cutoff=cut), th.tv_numeric.sel(cutoff=cut), s=8, label=f"$\\Omega$ = {cut:g}")
    lim = [float(th.tv_numeric.min()) * 0.8, float(th.tv_bound.max()) * 1.2]
    ax.plot(lim, lim, color="k", lw=0.8, label="identity")
    ax.set(xscale="log", yscale="log", xlabel="bound (eq. 4)", ylabel=r"numeric TV on $[\Omega, 10^6\Omega]$",
           title=f"TV of G above $\\Omega$ ({th.sizes['draw']} random systems)")
    ax.legend(fontsize="x-small")
    ax = axes[3]
    for b, color in zip(th.filter_beta.values, sns.color_palette("colorblind", th.sizes["filter_beta"]), strict=True):
        ax.plot(th.f, th.weight_emul.sel(filter_beta=b), color=color, label=f"official waves FFT (eq. 15), $\\beta$ = {b:g}")
        ax.plot(th.f, th.weight_sym_upstream.sel(filter_beta=b), color=color, ls="--", label="symmetric, same scale")
    ax.set(yscale="log", xlabel="f (cycles/sample)", ylabel="effective weight", title="eq. 15 at L = 62832 against eq. 12")
    ax.legend(fontsize="xx-small")
    return fig


def _filter_label(ds, filt) -> str:
    """'filter <label>', with the scale of the `band` filter (attr `filter_s0`, rad/unit)."""
    s0 = ds.attrs.get("filter_s0")
    return f"filter {filt}" + (f" ($s_0$ = {s0:.3g} rad/unit)" if filt == "band" and s0 is not None else "")


def figure_waves_error(inputs: FigureInputs) -> plt.Figure:
    """Final test MAE per wave for every (alpha, beta): seed mean (bars) and seeds (dots), per experiment and filter."""
    panels = []
    for exp in _experiments(inputs, "waves"):
        ds = inputs.open("trajectories", exp).load()
        for v in ds.variant.values:
            for f in ds.filter.values:
                panels.append((exp, ds.sel(variant=v, filter=f), f"{exp}: {v}, {_filter_label(ds, f)}"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.2 * len(panels)), layout="constrained", squeeze=False)
    for ax, (exp, ds, title) in zip(axes[:, 0], panels, strict=True):
        df = ds.test_mae.isel(step=-1).to_dataframe().reset_index().dropna(subset=["test_mae"])
        df["cell"] = [f"α={a:g}, β={b:g}" for a, b in zip(df.alpha, df.beta, strict=True)]
        freqs = ds.wave_freq.values
        df["wave"] = [f"{k + 1}: s = {freqs[k]:.3g}" for k in df.wave]
        order = sorted(df.cell.unique(), key=lambda c: [float(t.split("=")[1]) for t in c.split(", ")])
        sns.barplot(df, x="cell", y="test_mae", hue="wave", order=order, errorbar=None, ax=ax, palette="rocket_r", alpha=0.85)
        sns.stripplot(df, x="cell", y="test_mae", hue="wave", order=order, dodge=True, ax=ax, palette="dark:k", size=3, legend=False)
        ax.axhline(0.25, color="gray", ls=":", lw=0.8)
        ax.text(len(order) - 0.5, 0.25, " predict 0.5", va="bottom", ha="right", fontsize="x-small", color="gray")
        ax.set(title=f"{title} ({ds.sizes['seed']} seeds, {ds.attrs.get('steps')} steps)", xlabel="", ylabel="final test MAE per wave")
        ax.legend(title="wave (rad/unit)", fontsize="x-small", ncol=4, loc="upper left")
    return fig


def _waves_panels(inputs: FigureInputs, var: str, height: float):
    """(exp, ds, fig, panels) of the first waves experiment: one panel per (alpha, beta) run with data in `var`,
    listed as (ax, alpha, beta, row, col, data); panels without data are hidden."""
    exp = _experiments(inputs, "waves")[0]
    ds = inputs.open("trajectories", exp).load().isel(variant=0, filter=0)
    alphas, betas = list(ds.alpha.values), list(ds.beta.values)
    fig, axes = plt.subplots(len(alphas), len(betas), figsize=(3.6 * len(betas), height * len(alphas)), layout="constrained",
                             squeeze=False, sharex=True, sharey=True)
    panels = []
    for (i, a), (j, b) in ((x, y) for x in enumerate(alphas) for y in enumerate(betas)):
        data = ds[var].sel(alpha=a, beta=b)
        if data.isnull().all():
            axes[i, j].set_visible(False)
        else:
            panels.append((axes[i, j], a, b, i == len(alphas) - 1, j == 0, data))
    return exp, ds, fig, panels


def figure_waves_curves(inputs: FigureInputs) -> plt.Figure:
    """Test MAE per wave against step (seed mean, band +/- 1 sd), one panel per (alpha, beta)."""
    exp, ds, fig, panels = _waves_panels(inputs, "test_mae", 3.0)
    colors = sns.color_palette("rocket_r", ds.sizes["wave"])
    for ax, a, b, bottom, left, mae in panels:
        for k in range(ds.sizes["wave"]):
            mean, sd = mae.isel(wave=k).mean("seed"), mae.isel(wave=k).std("seed")
            ax.plot(ds.step, mean, color=colors[k], marker="o", ms=3, label=f"wave {k + 1}: s = {ds.wave_freq.values[k]:.3g}")
            ax.fill_between(ds.step, mean - sd, mean + sd, color=colors[k], alpha=0.15, lw=0)
        ax.axhline(0.25, color="gray", ls=":", lw=0.8)
        ax.set(title=f"α = {a:g}, β = {b:g}", xlabel="training step" if bottom else "", ylabel="test MAE (log)" if left else "",
               yscale="log")
    panels[0][0].legend(fontsize="x-small")
    fig.suptitle(f"{exp}, {_filter_label(ds, ds.filter.item())}: test MAE per wave over training (seed mean, shaded +/- 1 sd; "
                 "dotted: predicting 0.5)", fontsize="small")
    return fig


def figure_waves_modes(inputs: FigureInputs) -> plt.Figure:
    """Im a of every mode and channel at init (x) against after training (y), with the wave frequencies."""
    exp, ds, fig, panels = _waves_panels(inputs, "lambda_im", 3.4)
    im = ds.lambda_im
    lo = 0.5 * float(min(np.nanmin(im.values), ds.wave_freq.values.min()))
    hi = 2 * float(max(np.nanmax(im.values), ds.wave_freq.values.max()))
    for ax, a, b, bottom, left, run in panels:
        ax.scatter(run.isel(step=0).values.ravel(), run.isel(step=-1).values.ravel(), s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.7)
        for k, s_k in enumerate(ds.wave_freq.values.ravel()):
            ax.axhline(s_k, color="C3", ls=":", lw=0.8)
            if ax.get_subplotspec().is_last_col():
                ax.text(hi, s_k, f" s{k + 1}", color="C3", fontsize="x-small", va="center")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=f"α = {a:g}, β = {b:g}")
        ax.xaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
        ax.yaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
        if bottom:
            ax.set_xlabel("Im a at init (rad/unit)")
        if left:
            ax.set_ylabel("Im a after training")
    fig.suptitle(f"{exp}: every mode, channel and seed after {ds.attrs.get('steps')} steps "
                 "(dotted red: the wave frequencies; black: no change)", fontsize="small")
    return fig


def _denoise(inputs: FigureInputs) -> tuple[str, xr.Dataset]:
    """The first declared denoise experiment and its trajectories."""
    exp = _experiments(inputs, "denoise")[0]
    return exp, inputs.open("trajectories", exp).load()


def figure_denoise_examples(inputs: FigureInputs) -> plt.Figure:
    """Clean, noisy (horizontal, vertical) and the output of every (alpha preset, beta) for two test images (seed 0)."""
    exp, ds = _denoise(inputs)
    examples = [int(ds.example.values[ds.example_source.values == src][0]) for src in ds.source.values]
    cells = [(a, b) for a in ds.alpha.values for b in ds.beta.values]
    cols = 1 + 2 * len(cells) // 1
    fig, axes = plt.subplots(2 * len(examples), 2 + len(cells), figsize=(1.35 * (2 + len(cells)), 2.5 * 2 * len(examples)),
                             layout="constrained", squeeze=False)
    del cols
    for e_i, ex in enumerate(examples):
        for n_i, noise in enumerate(("horizontal", "vertical")):
            row = axes[2 * e_i + n_i]
            row[0].imshow(ds.clean.sel(example=ex), cmap="gray", vmin=-1, vmax=1)
            row[0].set_title(f"clean\n{ds.example_source.values[ex]}", fontsize="x-small")
            row[1].imshow(ds.noisy.sel(noise=noise, example=ex), cmap="gray", vmin=-1, vmax=1)
            row[1].set_title(f"noisy\n{noise} stripes", fontsize="x-small")
            for c_i, (a, b) in enumerate(cells):
                row[2 + c_i].imshow(ds.output.sel(alpha=a, beta=b, noise=noise, example=ex), cmap="gray", vmin=-1, vmax=1)
                row[2 + c_i].set_title(f"output\n{a}, β={b:g}", fontsize="x-small")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{exp}: test images (seed 0) and the outputs g Conv(K, x + noise) + b of every alpha preset and beta",
                 fontsize="small")
    return fig


def figure_denoise_error(inputs: FigureInputs) -> plt.Figure:
    """Transmission T_H, T_V (log) per alpha preset and beta; mse_out against mse_ref per condition."""
    exp, ds = _denoise(inputs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    df = ds.transmission.sel(noise=["horizontal", "vertical"], source=ds.source.values[0]).to_dataframe().reset_index()
    df["setting"] = [f"{a}, β={b:g}" for a, b in zip(df.alpha, df.beta, strict=True)]
    sns.barplot(df, x="setting", y="transmission", hue="noise", ax=axes[0], errorbar=None, palette=["C0", "C3"], alpha=0.8)
    sns.stripplot(df, x="setting", y="transmission", hue="noise", ax=axes[0], dodge=True, palette="dark:k", size=3, legend=False)
    axes[0].set(yscale="log", xlabel="", ylabel=r"noise power gain $T$ (eq. 22)", title=f"{exp}: stripes passed (T; bars seed mean, dots seeds)")
    axes[0].tick_params(axis="x", labelrotation=30)
    m = ds.mse_out.mean("seed").to_dataframe().reset_index()
    m["setting"] = [f"{a}, β={b:g}" for a, b in zip(m.alpha, m.beta, strict=True)]
    sns.barplot(m, x="setting", y="mse_out", hue="noise", ax=axes[1], errorbar=None, palette=["0.6", "C0", "C3"])
    for noise, color in (("horizontal", "C0"), ("vertical", "C3")):
        axes[1].axhline(float(ds.mse_ref.sel(noise=noise).mean()), color=color, ls=":", lw=1)
    axes[1].set(xlabel="", ylabel="mse_out (seed mean, both sources)", title="error against the clean image (dotted: noise alone)")
    axes[1].tick_params(axis="x", labelrotation=30)
    return fig


def figure_denoise_response(inputs: FigureInputs) -> plt.Figure:
    """|g w Khat(omega)| at init (thin) and after training (thick), seed 0, per alpha preset; hue beta."""
    exp, _ = _denoise(inputs)
    tr = inputs.open("transfer", exp).load()
    fig, axes = plt.subplots(1, tr.sizes["alpha"], figsize=(6 * tr.sizes["alpha"], 4.2), layout="constrained", squeeze=False)
    colors = dict(zip(tr.beta.values, sns.color_palette("coolwarm", tr.sizes["beta"]), strict=True))
    omega = tr.omega.values[1:]
    for ax, a in zip(axes[0], tr.alpha.values, strict=True):
        for b in tr.beta.values:
            for phase, lw, alpha in (("init", 0.7, 0.5), ("final", 1.6, 1.0)):
                ax.plot(omega, tr.mag.sel(alpha=a, beta=b, seed=0, phase=phase).values[1:], color=colors[b], lw=lw, alpha=alpha)
        for name, w in (("$\\omega_H$", tr.attrs["omega_h"]), ("$\\omega_V$", tr.attrs["omega_v"])):
            ax.axvline(w, color="k", ls=":", lw=0.9)
            ax.text(w, 0.03, f" {name}", transform=ax.get_xaxis_transform(), ha="left", fontsize="small")
        ax.axhline(1.0, color="gray", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel=r"$\omega$ (rad/sample)", ylabel=r"$|g\,w(\omega)\,\hat K(\omega)|$",
               title=f"{a} (alpha = {float(tr.alpha_value.sel(alpha=a)):.4g})", ylim=(1e-6, None))
    axes[0, 0].legend(handles=[Line2D([], [], color=c, label=f"β = {b:g}") for b, c in colors.items()]
                      + [Line2D([], [], color="k", lw=0.7, alpha=0.5, label="init"), Line2D([], [], color="k", lw=1.6, label="trained")],
                      fontsize="x-small")
    fig.suptitle(f"{exp}: the denoising filter's gain, seed 0 (stored transfer.zarr)", fontsize="small")
    return fig


FIGURES = {"band": figure_band, "locality": figure_locality, "waves_error": figure_waves_error, "waves_curves": figure_waves_curves,
           "waves_modes": figure_waves_modes, "denoise_examples": figure_denoise_examples, "denoise_error": figure_denoise_error,
           "denoise_response": figure_denoise_response}


def make_figure(name: str, inputs: FigureInputs, out: Path) -> Path:
    """Draw figure `name` from its declared stores `inputs` and save it as PNG at `out`."""
    if name not in FIGURES:
        raise ValueError(f"`name` (={name!r}) is not a freqbias figure; expected one of {sorted(FIGURES)}.")
    plots.theme()
    return plots.save(FIGURES[name](FigureInputs(inputs)), out)
