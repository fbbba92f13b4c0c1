"""Engine throughput on a dynamics shard: compiled scan (ssmflow) against a per-step Python loop.

Both sides run the same jitted GD step math on the same shard (the default config's F1
shard: 108 runs). The baseline is the plain loop a researcher would write first: a
Python `for` over steps calling one jitted step per run. ssmflow runs all runs in one
compiled `lax.scan` program (both batching modes are shown). Printed side by side in
one run, as model-steps per second (one model-step = one GD step of one run), with the
ratio. Not a timed test: numbers depend on the machine and its load.

    python bench/bench_engine.py [--config config/config.yaml] [--experiment F1] [--steps 3000]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from ssmflow import config as cfgmod
from ssmflow import grid, train

train.set_precision("float64")

from ssmflow.studies.dynamics import job  # noqa: E402


def python_loop(spec: dict, n_steps: int, n_runs: int) -> float:
    """Model-steps/s of a Python loop over steps, one jitted step call per run and step."""
    step, model = job.model_step_fn(spec)
    m = model
    for _ in range(20):  # compile + warm up
        m, loss = step(m)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        m, loss = step(m)
    jax.block_until_ready(loss)
    return n_steps / (time.perf_counter() - t0)


def engine(spec: dict, batching: str) -> tuple[float, int, int]:
    """Model-steps/s of the engine on the whole shard (its real schedule; compile excluded)."""
    ds = job.train_shard(spec, batching=batching)
    n = int(np.prod([ds.sizes[d] for d in ("a", "rho", "p0", "kappa", "seed")]))
    return float(ds.attrs["steps_per_second"]) * n, n, int(ds.attrs["n_steps"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--experiment", default="F1")
    ap.add_argument("--steps", type=int, default=3000)
    a = ap.parse_args()
    spec = grid.expand(cfgmod.load(a.config), "dynamics")[a.experiment][0].spec
    eng_map, n, n_steps = engine(spec, "map")
    eng_vmap, _, _ = engine(spec, "vmap")
    loop = python_loop(spec, a.steps, n)
    print(f"shard {a.experiment}/{spec['shard']}: {n} runs x {n_steps} steps (loop: {a.steps} steps of one run), "
          f"jax {jax.__version__}, {jax.devices()[0].platform}")
    print(f"{'method':<44}{'model-steps/s':>16}{'ratio':>9}")
    print(f"{'baseline: Python loop, jitted step per run':<44}{loop:>16.0f}{1.0:>9.2f}")
    print(f"{'ssmflow engine, lax.scan + lax.map (default)':<44}{eng_map:>16.0f}{eng_map / loop:>9.2f}")
    print(f"{'ssmflow engine, lax.scan + filter_vmap':<44}{eng_vmap:>16.0f}{eng_vmap / loop:>9.2f}")


if __name__ == "__main__":
    main()
