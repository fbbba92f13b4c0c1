"""Figures F1-F8 of the icl study (spec section 13), drawn from stored data only.

Each figure `<figure>_<exp>` reads only the stores its rule passes in (a `FigureInputs`,
as the study's `figures` in `studies/icl/__init__.py` declares them): `trajectories` and
`theory` of its one experiment. Training curves are the seed mean with a
min-max band over seeds; reference losses are horizontal lines. The only computation
here is the gauge fixing (25) of stored snapshots for the heatmaps.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr

from ssmflow import plots
from ssmflow.studies.icl import draws
from ssmflow.studies.icl.gauge import ROLE_YX, gauge_fix
from ssmflow.study import FigureInputs

STEP_LABEL = "training step"
REF_STYLES = {
    "gd": {"color": "black", "ls": "--", "lw": 1.2, "label": "GD, shared $\\eta^*_K$"},
    "gd_ps": {"color": "black", "ls": ":", "lw": 1.4, "label": "GD, per-step $\\eta^*$"},
    "gd1": {"color": "tab:red", "ls": "-.", "lw": 1.1, "label": "1-step GD"},
    "zero": {"color": "gray", "ls": "-", "lw": 1.0, "label": "zero predictor"},
}
AXIS_LABELS = {"d": "d", "n_context": "N", "blocks": "K", "model": "", "embed": "embed", "sine_draw": "draw"}


def load(inputs: FigureInputs, exp: str) -> tuple[xr.Dataset, xr.Dataset]:
    """(trajectories, theory) of one experiment, from the declared inputs, loaded."""
    return inputs.open("trajectories", exp).load(), inputs.open("theory", exp).load()


def combos(traj: xr.Dataset, dims: tuple[str, ...]) -> list[dict]:
    """Every combination of the run dims `dims` present in `traj` (one panel or line each)."""
    present = [d for d in dims if d in traj.dims]
    return [dict(zip(present, vals, strict=True)) for vals in itertools.product(*(traj[d].values.tolist() for d in present))]


def combo_label(sel: dict) -> str:
    return ", ".join(f"{AXIS_LABELS[k]} = {v}" if AXIS_LABELS[k] else f"{v}" for k, v in sel.items())


def plot_band(ax, step: np.ndarray, y: xr.DataArray, color, label: str | None = None, lw: float = 2.0) -> None:
    """Seed mean (line) and min-max band over seeds against step, on a symlog step axis
    (linear up to the first recorded step, so step 0 shows, logarithmic beyond)."""
    ax.plot(step, y.mean("seed").values, color=color, lw=lw, label=label)
    ax.fill_between(step, y.min("seed").values, y.max("seed").values, color=color, alpha=0.25, lw=0)
    ax.set_xscale("symlog", linthresh=float(step[1]), linscale=0.4)
    ax.set_xlim(0, float(step[-1]) * 1.1)


def hline(ax, value: float, kind: str, show_label: bool = True) -> None:
    style = dict(REF_STYLES[kind])
    label = style.pop("label")
    ax.axhline(value, label=label if show_label else None, **style)


def _grid(rows: int, cols: int, w: float, h: float):
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), layout="constrained", squeeze=False)
    return fig, axes


def _hide_unused(axes, used: int) -> None:
    for ax in axes.ravel()[used:]:
        ax.set_visible(False)


def _panel_grid(n: int, w: float, h: float, max_cols: int = 4):
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = _grid(rows, cols, w, h)
    _hide_unused(axes, n)
    return fig, axes.ravel()


def figure_f1(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Eval loss against step per (d, N, K), with shared/per-step/1-step GD and zero-predictor lines."""
    cells = combos(traj, ("d", "n_context", "blocks"))
    fig, axes = _panel_grid(len(cells), 4.6, 3.8)
    color = sns.color_palette("colorblind")[0]
    for ax, sel in zip(axes, cells, strict=False):
        run, k = traj.sel(sel), int(sel["blocks"])
        plot_band(ax, traj.step.values, run.loss, color, label="GD-SSM eval loss (seed mean, min-max)")
        ax.plot(traj.step.values, run.train_loss.mean("seed").values, color=color, lw=0.6, alpha=0.5, label="minibatch loss (seed mean)")
        hline(ax, float(run.gd_loss), "gd")
        if k > 1:
            hline(ax, float(run.gd_loss_ps), "gd_ps")
            hline(ax, float(theory.gd_loss_eval.sel(d=sel["d"], n_context=sel["n_context"], gd_steps=1)), "gd1")
        hline(ax, float(run.zero_loss), "zero")
        final = (run.loss.isel(step=-1) / run.gd_loss).values
        ax.set(yscale="log", xlabel=STEP_LABEL, ylabel="loss (3)",
               title=f"{combo_label(sel)}\nfinal / GD loss per seed: " + ", ".join(f"{v:.3f}" for v in final))
        ax.legend(loc="upper right", fontsize="x-small")
    fig.suptitle(f"F1 ({exp}): loss against K-step GD\non the same eval tasks")
    return fig


def figure_f2(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """model_cos, relative preds_diff and relative model_diff against step (spec 10.1)."""
    del theory
    panels = (("model_cos", "model cosine (23)"), ("preds_diff_rel", "preds_diff (22) / mean |yhat_GD|"),
              ("model_diff_rel", "model_diff (24) / mean |J_GD row|"))
    fig, axes = _panel_grid(len(panels), 4.6, 3.8)
    cells = combos(traj, ("d", "n_context", "blocks"))
    colors = sns.color_palette("colorblind", len(cells))
    for ax, (name, label) in zip(axes, panels, strict=True):
        for sel, col in zip(cells, colors, strict=True):
            plot_band(ax, traj.step.values, traj[name].sel(sel), col, label=combo_label(sel))
        if name == "model_cos":
            ax.axhline(0.99, color="gray", ls=":", lw=1, label="target 0.99 (T12)")
            ax.set_ylim(-0.1, 1.05)
        else:
            ax.axhline(0.10, color="gray", ls=":", lw=1, label="target 0.10 (T12)")
            ax.set_yscale("log")
        ax.set(xlabel=STEP_LABEL, title=label)
        ax.legend(fontsize="x-small")
    fig.suptitle(f"F2 ({exp}): functional alignment with shared-eta K-step GD (seed mean, min-max band)")
    return fig


def _median_seed(run: xr.Dataset) -> int:
    final = run.loss.isel(step=-1).values
    return int(np.argsort(final)[len(final) // 2])


def _heat(ax, mat: np.ndarray, vmax: float, title: str, cmap: str = "RdBu_r", vmin: float | None = None) -> None:
    im = ax.imshow(np.atleast_2d(mat), cmap=cmap, vmin=-vmax if vmin is None else vmin, vmax=vmax)
    ax.set(title=title, xticks=[], yticks=[])
    ax.grid(False)
    plt.colorbar(im, ax=ax, shrink=0.8)


def figure_f3(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Gauge-fixed final parameters of the median-loss seed against the construction, one row per sublayer."""
    rows = []
    for sel in combos(traj, ("d", "n_context", "blocks")):
        run = traj.sel(sel)
        k, d = int(sel["blocks"]), int(sel["d"])
        seed = _median_seed(run)
        snap = run.isel(seed=seed, step=-1)
        n_sub = 2 * k - 1
        what, chat, dhat = gauge_fix(snap.W_q.values[:n_sub], snap.C.values[:n_sub, :d, :d], snap.D.values)
        star = theory.sel(d=sel["d"], n_context=sel["n_context"], gd_steps=k)
        for layer in range(n_sub):
            rows.append(dict(sel=sel, layer=layer, seed=seed, what=what[layer], dhat=dhat, lbar=snap.Lambda.values[layer, :d, :d],
                             chat=chat[layer], wq_star=star.W_q_star.values[layer], d_star=star.D_star.values,
                             c_star=star.C_star.values[layer, :d, :d], role=int(star.role.values[layer]),
                             eta_hat=float(snap.eta_hat.values[layer]), eta_star=float(star.eta_star),
                             eta_ps=star.eta_perstep.values[:k]))
    fig, axes = plt.subplots(len(rows), 6, figsize=(18, 2.9 * len(rows) + 0.7), layout="constrained", squeeze=False,
                             width_ratios=[1, 1, 1, 1.2, 1.2, 1.2])
    for ax, row in zip(axes, rows, strict=True):
        role = "yx" if row["role"] == ROLE_YX else "xx"
        vw = max(np.abs(row["what"]).max(), 1.0)
        _heat(ax[0], row["what"], vw, f"trained $\\hat W_q$ (seed {row['seed']})")
        ax[0].set_ylabel(f"{combo_label(row['sel'])}\nsublayer {row['layer']} ({role})", fontsize="small")
        _heat(ax[1], row["wq_star"], vw, "constructed $W_q^*$")
        vd = max(np.abs(row["dhat"]).max(), 1.0)
        _heat(ax[2], np.stack([row["dhat"], row["d_star"]]), vd, "gate $D$")
        ax[2].set_yticks([0, 1], ["trained $\\hat D$", "$D^*$"])
        _heat(ax[3], row["lbar"], 1.0, f"trained $\\bar\\Lambda$ (min {row['lbar'].min():.3f})\nconstructed: all 1", cmap="viridis",
              vmin=min(row["lbar"].min(), 0.9))
        vc = max(np.abs(row["chat"]).max(), np.abs(row["c_star"]).max())
        _heat(ax[4], row["chat"], vc, f"trained $\\hat C$ ($\\hat\\eta$ = {row['eta_hat']:.2f})")
        per_step = "" if len(row["eta_ps"]) == 1 else "\nper-step $\\eta^*$: " + ", ".join(f"{e:.2f}" for e in row["eta_ps"])
        _heat(ax[5], row["c_star"], vc, f"constructed $C^*$ at $\\eta^*_K$ = {row['eta_star']:.2f}{per_step}")
    fig.suptitle(f"F3 ({exp}): gauge-fixed (25) final parameters of the median-loss seed against the construction (17)/(19);\n"
                 "shared colour scale per pair; $\\hat\\eta = -N\\,\\mathrm{tr}\\,\\hat C / H$")
    return fig


def figure_f4(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Gauge-fixed parameter alignment (25) against step."""
    del theory
    panels = (("align_wq", "align_wq"), ("align_d", "align_d"), ("align_c", "align_c (signed cosine)"),
              ("gain_ratio", "gain ratio tr $\\hat C$ / tr $C^*$"), ("lambda_mean", "mean $\\bar\\Lambda$"))
    fig, axes = _panel_grid(len(panels), 4.0, 3.5, max_cols=5)
    lines = [(sel, layer) for sel in combos(traj, ("d", "n_context", "blocks")) for layer in range(2 * int(sel["blocks"]) - 1)]
    colors = sns.color_palette("colorblind", len(lines))
    for ax, (name, label) in zip(axes, panels, strict=True):
        for (sel, layer), col in zip(lines, colors, strict=True):
            y = traj[name].sel(sel)
            if "sublayer" in y.dims:
                y = y.sel(sublayer=layer)
            elif layer > 0:
                continue
            tag = combo_label(sel) + (f", sublayer {layer}" if "sublayer" in traj[name].dims else "")
            plot_band(ax, traj.step.values, y, col, label=tag, lw=1.6)
        ax.axhline(1.0, color="black", ls="--", lw=0.8)
        ax.set(xlabel=STEP_LABEL, title=label)
    axes[0].legend(fontsize="x-small", loc="lower right")
    fig.suptitle(f"F4 ({exp}): gauge-fixed parameter alignment with the construction (1 = aligned; seed mean, min-max band)")
    return fig


def figure_f5(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Final loss / GD loss against the swept N or d (seed median, min-max bars)."""
    del theory
    sweep = "n_context" if traj.sizes["n_context"] > 1 else "d"
    other = tuple(d for d in ("d", "n_context", "blocks") if d != sweep)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), layout="constrained")
    ratio = traj.loss.isel(step=-1) / traj.gd_loss
    for sel, col in zip(combos(traj, other), sns.color_palette("colorblind"), strict=False):
        r = ratio.sel(sel)
        med = r.median("seed").values
        ax.errorbar(traj[sweep].values, med, yerr=[med - r.min("seed").values, r.max("seed").values - med], marker="o", color=col,
                    capsize=3, label=combo_label(sel))
    ax.axhspan(0.95, 1.10, color="tab:green", alpha=0.12, label="target [0.95, 1.10] (T14)")
    ax.axhline(1.0, color="black", ls="--", lw=1)
    ax.set(xlabel=AXIS_LABELS[sweep], ylabel="final loss / GD loss", xticks=traj[sweep].values,
           title=f"F5 ({exp}): trained GD-SSM against one-step GD\nseed median, min-max bars")
    ax.legend(fontsize="x-small")
    return fig


def figure_f6(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Baselines and ablations: eval loss against step per model, with GD and zero-predictor lines."""
    del theory
    cells = combos(traj, ("d", "n_context"))
    fig, axes = _panel_grid(len(cells), 5.4, 4.2)
    colors = dict(zip(traj.model.values.tolist(), sns.color_palette("colorblind"), strict=False))
    for ax, sel in zip(axes, cells, strict=False):
        for model, col in colors.items():
            run = traj.sel(sel).sel(model=model)
            ratio = float(run.loss.isel(step=-1).mean() / run.zero_loss)
            plot_band(ax, traj.step.values, run.loss, col, label=f"{model} (final / zero: {ratio:.3f})")
        ref = traj.sel(sel).isel(model=0)
        hline(ax, float(ref.gd_loss), "gd")
        hline(ax, float(ref.zero_loss), "zero")
        ax.set(yscale="log", xlabel=STEP_LABEL, ylabel="loss (3)", title=combo_label(sel))
        ax.legend(fontsize="x-small", loc="center right")
    fig.suptitle(f"F6 ({exp}): baselines and ablations\n(seed mean, min-max band; GD: one step at $\\eta^*_1$)")
    return fig


def figure_f7(exp: str, traj: xr.Dataset, theory: xr.Dataset) -> plt.Figure:
    """Sine task: eval loss against step per embedding, with the section-3.3 references."""
    del theory
    cells = combos(traj, ("sine_draw", "n_context"))
    fig, axes = _panel_grid(len(cells), 5.4, 4.2)
    refs = (("zero_loss", "zero predictor", "gray", "-"), ("prior_loss", "prior mean (context-free)", "tab:purple", "-."),
            ("gd_raw_loss", "1-step GD on x", "tab:red", ":"), ("gd_affine_loss", "1-step GD on (x, 1)", "black", "--"))
    colors = dict(zip(traj.embed.values.tolist(), sns.color_palette("colorblind"), strict=False))
    for ax, sel in zip(axes, cells, strict=False):
        for embed, col in colors.items():
            plot_band(ax, traj.step.values, traj.sel(sel).sel(embed=embed).loss, col, label=f"GD-SSM, {embed} embedding")
        run = traj.sel(sel).isel(embed=0)
        for name, label, col, ls in refs:
            ax.axhline(float(run[name]), color=col, ls=ls, lw=1.2, label=label)
        ax.set(yscale="log", xlabel=STEP_LABEL, ylabel="loss (3)", title=combo_label(sel))
        ax.legend(fontsize="x-small", loc="lower left")
    fig.suptitle(f"F7 ({exp}): sine regression (seed mean, min-max band)\nagainst context-free and one-step GD references")
    return fig


def figure_f8(exp: str, ood: xr.Dataset) -> plt.Figure:
    """E8: trained loss / GD loss under input-range and weight-scale shifts, against GD at the
    training eta* and at the re-tuned eta (seed mean, min-max band), with T20's band."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained", sharey=True)
    runs = combos(ood, ("d", "n_context", "blocks"))
    for ax, shift in zip(axes, ood["shift"].values, strict=True):
        sub = ood.sel(shift=shift).dropna("scale", how="all", subset=["gd_loss"])
        for sel, col in zip(runs, sns.color_palette("colorblind"), strict=False):
            run = sub.sel(sel)
            for ref, ls, label in (("gd_loss", "-", "vs GD at training $\\eta^*$"), ("gd_loss_retuned", "--", "vs GD, $\\eta$ re-tuned")):
                r = run.loss / run[ref]
                ax.plot(sub.scale, r.mean("seed"), ls=ls, marker="o", ms=3, color=col,
                        label=f"{combo_label(sel)} {label}" if len(runs) > 1 else label)
                ax.fill_between(sub.scale, r.min("seed"), r.max("seed"), color=col, alpha=0.15, lw=0)
        if shift == "input":
            ax.fill_between([0.5, 1.2], 0.85, 1.15, color="tab:green", alpha=0.12, lw=0, label="T20: [0.85, 1.15] on [0.5, 1.2]")
        ax.axvline(1.0, color="gray", ls=":", lw=1)
        ax.axhline(1.0, color="black", lw=0.8)
        what = "input range factor $\\alpha$ (x ~ U(-$\\alpha$/2, $\\alpha$/2))" if shift == "input" else "weight scale factor"
        ax.set(xlabel=what, ylabel="trained loss / GD loss (log)", title=f"{shift} shift", yscale="log")
        ax.legend(fontsize="x-small")
    fig.suptitle(f"F8 ({exp}, E8): trained models out of distribution, seed mean and min-max band ({ood.sizes['seed']} seeds)")
    return fig


FIGURES = {"F1": figure_f1, "F2": figure_f2, "F3": figure_f3, "F4": figure_f4, "F5": figure_f5, "F6": figure_f6, "F7": figure_f7,
           "F8": figure_f8}


def make_figure(name: str, inputs: FigureInputs, out: Path) -> Path:
    """Draw figure `name` = `<figure>_<experiment>` (e.g. F1_E1) from its declared stores `inputs`
    (that experiment's trajectories and theory) and save it as PNG at `out`."""
    fig_id, _, exp = name.partition("_")
    if fig_id not in FIGURES or not exp:
        raise ValueError(f"figure name={name!r} is not defined; expected <figure>_<experiment> with figure one of {sorted(FIGURES)}.")
    inputs = FigureInputs(inputs)
    traj, theory = load(inputs, exp)
    stored = {"kind": traj.attrs["kind"], "axes": {d: traj[d].values.tolist() for d in traj.dims if d in AXIS_LABELS}}
    if inputs.has("ood", exp):
        stored["ood"] = True
    if not draws(fig_id, stored):
        raise ValueError(f"figure {fig_id} is not drawn for experiment {exp!r} (kind {stored['kind']!r}).")
    plots.theme()
    if fig_id == "F8":
        return plots.save(figure_f8(exp, inputs.open("ood", exp).load()), out)
    return plots.save(FIGURES[fig_id](exp, traj, theory), out)
