"""Shared figure styling: one seaborn theme, consistent labels, deterministic saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

LABELS = {
    "t": r"training time $t = k\lambda$ ($\tau$ units)",
    "p_rel": r"$p / p^*$",
    "loss": "loss",
    "N": "state size $N$",
}


def theme() -> None:
    """The one theme of every ssmflow figure."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 120, "savefig.dpi": 150, "axes.titlesize": "medium", "legend.fontsize": "small"})


def save(fig, path: str | Path) -> Path:
    """Save a figure as PNG (fixed dpi, tight box, no timestamp metadata) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path
