"""The toy's figure: loss curves (dots) on the closed form (lines), one panel per dim."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ssmflow import plots
from ssmflow.study import FigureInputs


def make_figure(name: str, inputs: FigureInputs, out: Path) -> None:
    exp = name.removeprefix("loss_")
    traj, theory = inputs.open("trajectories", exp).load(), inputs.open("theory", exp).load()
    metrics = inputs.csv("metrics", exp)
    plots.theme()
    fig, axes = plt.subplots(1, traj.sizes["dim"], figsize=(4 * traj.sizes["dim"], 3), squeeze=False)
    for ax, dim in zip(axes[0], traj.dim.values, strict=True):
        for lr in traj.lr.values:
            sim, th = traj.loss.sel(dim=dim, lr=lr, seed=0), theory.loss.sel(dim=dim, lr=lr, seed=0)
            ax.plot(th.step, th, label=f"lr = {lr:g}")
            ax.plot(sim.step, sim, "o", ms=3, color=ax.lines[-1].get_color())
        ax.set(yscale="log", xlabel="step", ylabel="loss", title=f"dim = {dim}, max rel. err {metrics.max_rel_err_loss.max():.1e}")
        ax.legend(fontsize="small")
    plots.save(fig, out)
