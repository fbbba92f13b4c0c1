"""Headline tables of the report: an experiment's key metrics over seeds, as HTML.

A stage that writes a table (`Stage.csv`) and names `Stage.headline` metrics also writes
`<product>.html`, which the rule marks for the Snakemake report (its HTML is shown inline;
a CSV would only be a download). One row per setting (every dim but `seed`), one column per
headline metric: the seed mean with the min - max range and the number of seeds. The full
per-seed table stays in `<product>.csv`.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import xarray as xr


def _cell(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return ""
    if v.size == 1:
        return f"{v[0]:.4g}"
    return f"{v.mean():.4g} ({v.min():.4g} - {v.max():.4g}, n = {v.size})"


def headline_frame(ds: xr.Dataset, metrics: tuple[str, ...], order: list[str]) -> pd.DataFrame:
    """Rows: every combination of the dims (in `order`, `seed` left out) of the headline
    metrics present in `ds`; columns: each metric's seed summary (`_cell`). Booleans count as
    0/1 (their mean is the fraction of seeds)."""
    names = [m for m in metrics if m in ds.data_vars]
    if not names:
        raise ValueError(f"none of the headline metrics {list(metrics)} is in the table; it has {sorted(ds.data_vars)}.")
    sub = ds[names].astype(float) if any(ds[n].dtype == bool for n in names) else ds[names]
    dims = [d for d in order if d in sub.dims and d != "seed"]
    frame = sub.to_dataframe(dim_order=[d for d in order if d in sub.dims]).reset_index()
    rows = []
    for key, group in frame.groupby(dims, sort=False, dropna=False) if dims else [((), frame)]:
        key = key if isinstance(key, tuple) else (key,)
        cells = {m: _cell(group[m].to_numpy(dtype=float)) for m in names}
        if any(cells.values()):
            rows.append({**dict(zip(dims, key, strict=True)), **cells})
    return pd.DataFrame(rows, columns=[*dims, *names])


def headline_html(ds: xr.Dataset, metrics: tuple[str, ...], order: list[str], title: str) -> str:
    """A self-contained HTML page with the headline table (`headline_frame`)."""
    table = headline_frame(ds, metrics, order).to_html(index=False, border=0, escape=True, na_rep="")
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse} "
             "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right} th{background:#f3f3f3}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h3>{html.escape(title)}</h3>"
            "<p>Seed mean (min - max, n = seeds) per setting; every run in the table's CSV.</p>"
            f"{table}</body></html>")
