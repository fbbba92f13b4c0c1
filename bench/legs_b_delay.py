"""S4D-LegS with the paper's B against the official code's B on the delay task.

    python bench/legs_b_delay.py [--config config/config.yaml] [--seeds 5] [--steps S] [--N 16 64]

Trains the config's `delay` experiment with `init: [legs]` only, once with `model.legs_b:
paper` (B = (1/2) U* B_LegS, eq. 9) and once with `official` (U* B_LegS unhalved, Im(B)
clipped at 2, as the official code initializes it), every other setting and every seed's
data, C, D and Delta the same (the seeds pair the runs), and prints the test R^2 of each
(N, disc, legs_b): seed mean and sd, and in how many seeds official beats paper.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from ssmflow import config as cfgmod
from ssmflow import grid, train
from ssmflow.studies.s4d import job


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--N", type=int, nargs="+", help="state sizes (default: the config's)")
    a = p.parse_args(argv)
    raw = cfgmod.load_yaml(a.config)
    raw["studies"] = ["s4d"]
    s4d = raw["s4d"]
    s4d["seeds"] = a.seeds
    delay = s4d["experiments"]["delay"]
    s4d["experiments"] = {"delay": delay}
    delay["axes"] = dict(delay.get("axes", {}), init=["legs"], disc=["zoh"], **({"N": a.N} if a.N else {}))
    if a.steps:
        delay["steps"] = a.steps
    results = {}
    for legs_b in ("paper", "official"):
        cfg = copy.deepcopy(raw)
        cfg["s4d"].setdefault("model", {})["legs_b"] = legs_b
        cfg = cfgmod.validate(cfg)
        train.set_precision(cfg["s4d"]["precision"])
        for shard in grid.expand(cfg, "s4d")["delay"]:
            t0 = time.perf_counter()
            ds = job.train_shard(shard.spec)
            n = int(shard.spec["axes"]["N"][0])
            results[(n, legs_b)] = np.asarray(ds.test_metric.squeeze(("init", "disc", "N")).values, float)
            print(f"N={n} legs_b={legs_b}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\ndelay task, init legs, zoh, {a.seeds} seeds, {delay['steps']} steps ({a.config}): test R^2")
    print("| N | paper B: mean (sd) | official B: mean (sd) | official - paper: mean | seeds where official is better |")
    print("|---:|---:|---:|---:|---:|")
    for n in sorted({k[0] for k in results}):
        pa, of = results[(n, "paper")], results[(n, "official")]
        print(f"| {n} | {pa.mean():.4f} ({pa.std(ddof=1):.4f}) | {of.mean():.4f} ({of.std(ddof=1):.4f}) | "
              f"{(of - pa).mean():+.4f} | {int((of > pa).sum())} of {len(pa)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
