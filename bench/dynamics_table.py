"""The dynamics study's headline numbers (the README's table) from a run's metrics.

    python bench/dynamics_table.py [RESULTS]      (default: results)

Reads RESULTS/dynamics/<experiment>/metrics.csv of whichever experiments exist (the
default config's or `config/paper.yaml`'s grid) and prints one line per check, with the
number of runs it covers: GD against the closed forms (F1, F1c, F2, F4, F5), the exact
discrete GD maps (F1, F4), the N-scaling slopes of F3 (balanced half-times, lazy
fitted time constants) and F3fixed's steps to 50 % / 90 % of p* at one shared lam. The
definitions are those of the README's table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def slope(df: pd.DataFrame, value: str) -> float:
    """log-log slope of the seed mean of `value` over N."""
    by_n = df.groupby("N")[value].mean()
    return float(np.polyfit(np.log(by_n.index.to_numpy(float)), np.log(by_n.to_numpy(float)), 1)[0])


def rows(results: Path) -> list[tuple[str, str, int]]:
    def load(exp):
        path = results / "dynamics" / exp / "metrics.csv"
        return pd.read_csv(path) if path.exists() else None

    out = []
    if (f1 := load("F1")) is not None:
        sel = f1[(f1.kappa <= 2e-3) & np.isclose(f1.p0, 1e-4)]
        out.append(("F1, N = 1 balanced, p0 = 1e-4, kappa <= 2e-3: max pointwise rel. error of p",
                    f"{sel.max_rel_err_p.max():.2g}", len(sel)))
        out.append(("F1, exact discrete GD map (18), every run", f"{f1.max_rel_err_map.max():.2g}", len(f1)))
        small = f1[f1.kappa <= 2e-3]
        out.append(("F1, half-time vs (14), kappa <= 2e-3 (every p0)", f"{100 * small.t_half_rel_err.max():.2f} %", len(small)))
    if (f1c := load("F1c")) is not None:
        out.append(("F1c causal mode: rel. error of p / half-time",
                    f"{f1c.max_rel_err_p.max():.2g} / {100 * f1c.t_half_rel_err.max():.2f} %", len(f1c)))
    if (f2 := load("F2")) is not None:
        out.append(("F2 unbalanced, GD vs (15)-(16): max abs error / p*", f"{f2.max_abs_err_p.max():.2g}", len(f2)))
    if (f3 := load("F3")) is not None:
        ident = f3[f3.spread == "identical"] if "spread" in f3 else f3
        for balance, value, what in ((0.0, "t_half", "balanced half-time"), (-20.0, "tau_fit", "lazy fitted time constant")):
            part = ident[np.isclose(ident.balance, balance)]
            slopes = [slope(part[(part.param == p) & (part.init_norm == n)], value)
                      for p in ("tied", "untied") for n in ("per_state", "total")]
            out.append((f"F3 {what}: log-log slope over N = {int(part.N.min())}..{int(part.N.max())} "
                        "(tied ps, tied tot, untied ps, untied tot)", " / ".join(f"{s:.2f}" for s in slopes), len(part)))
        lazy = ident[np.isclose(ident.balance, -20.0)]
        rel = (lazy.tau_fit - lazy.tau_term).abs() / lazy.tau_term
        out.append(("F3 lazy: fitted time constant vs theory (tau_term), max rel. error", f"{100 * rel.max():.2f} %", len(lazy)))
    if (f3f := load("F3fixed")) is not None:
        err = max(((f3f[k] - f3f[f"{k}_th"]).abs() / f3f[f"{k}_th"]).max() for k in ("k_half", "k_90"))
        out.append(("F3fixed (one lam for all runs): GD steps to 50 % / 90 % of p* vs (26)-(28) / lam, max rel. error",
                    f"{100 * err:.2f} %", len(f3f)))
        n = f3f.N.max()
        tot = f3f[(f3f.N == n) & (f3f.init_norm == "total")].groupby("param")[["k_half", "k_90"]].mean()
        ratio = tot.loc["untied"] / tot.loc["tied"]
        out.append((f"F3fixed N = {n}, total init: untied / tied steps to 50 % / 90 % (27): N",
                    f"{ratio.k_half:.3f} / {ratio.k_90:.3f}", len(f3f[(f3f.N == n) & (f3f.init_norm == "total")])))
    if (f4 := load("F4")) is not None:
        out.append(("F4 depth: GD vs ODE (21), max abs error / p*", f"{f4.max_abs_err_p.max():.2g}", len(f4)))
        out.append(("F4 exact map (24)", f"{f4.max_rel_err_map.max():.2g}", len(f4)))
    if (f5 := load("F5")) is not None:
        out.append(("F5 trained poles: GD vs ODE (12)+(29), max abs error / g*", f"{f5.max_abs_err_p.max():.2g}", len(f5)))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results")
    table = rows(results)
    if not table:
        print(f"no dynamics metrics under {results}/dynamics", file=sys.stderr)
        return 1
    print("| check | measured | runs |\n|---|---|---:|")
    for what, value, n in table:
        print(f"| {what} | {value} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
