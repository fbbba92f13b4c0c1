"""A roofline for the S4D train step: how far its time is from what this CPU can do.

    [NPROC=1] python bench/roofline_s4d.py [--runs 4] [--runs-small 15] [--steps 10]

In one run, on the same threads:
1. **This machine's limits**: peak float32 FLOP/s from a 2048^3 matmul, and memory
   bandwidth from a stream-like scale (x <- 2 x in place, over 64 M floats: 256 MB read +
   256 MB written per call; the buffer is donated, so no call pays for faulting in fresh
   pages), best of 3 rounds each.
2. **The step's work**: FLOPs and bytes of the compiled train step of one model (the block
   of `bench/bench_s4d.py`: loss, gradient and the two-group AdamW update), from XLA's
   cost analysis of the compiled program, except for the FFTs: XLA counts a transform of
   length n as c n log2 n FLOPs (c probed in the same run on a lone rfft; 8 with jax
   0.10), which overstates a real FFT, so its FFT count is replaced by 2.5 n log2 n per
   real transform (half the classic 5 n log2 n of a complex one), times its batch, read
   from the compiled HLO.
3. **The roofline**: the step's lower bound max(FLOPs / peak, bytes / bandwidth) against
   the measured time of the jitted one-model step and the engine's vmapped ensemble (per
   model-step), as a percentage of the limit (100 % = at the limit). With PyTorch
   installed, its eager step at the same size is put beside them against the same bound
   (the same math; its materialized Vandermonde only adds work).

XLA's byte count sums every operation's operands and results, so it overstates the traffic
of fused chains held in cache and understates nothing: the bandwidth bound is loose, the
FLOP bound is firm. Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bench_s4d import (SIZES, add_malloc_flag, engine_steps_per_second, jax_loss, jax_setup, optimizer, set_malloc, timed,
                       torch_block, torch_optimizer)

FFT_RE = re.compile(r"= (\w+)\[([\d,]*)\]\{[^}]*\} fft\(.*fft_type=(\w+), fft_length=\{(\d+)\}")


def best_of(fn, repeat: int) -> float:
    """Seconds per call of `fn` (which returns arrays), waited for: `bench_s4d.timed`."""
    return timed(lambda: jax.block_until_ready(fn()), repeat)


def machine_limits() -> tuple[float, float]:
    """(peak FLOP/s, bandwidth bytes/s) measured here: a float32 matmul and a stream-like scale."""
    n = 2048
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    flops = 2 * n**3 / best_of(lambda: matmul(a), 10)
    m = 64 * 2**20
    holder = [jnp.ones((m,), jnp.float32)]
    scale = jax.jit(lambda x: 2 * x, donate_argnums=0)

    def run():
        holder[0] = scale(holder[0])
        return holder[0]

    bandwidth = 2 * 4 * m / best_of(run, 10)
    return flops, bandwidth


def fft_nlogn(hlo: str) -> float:
    """Sum of count * n log2 n over every FFT of a compiled HLO text (count: its batch)."""
    total = 0.0
    for _dtype, dims, kind, length in FFT_RE.findall(hlo):
        n = int(length)
        shape = [int(d) for d in dims.split(",") if d]
        inner = n if kind == "IRFFT" else n // 2 + 1  # the transformed axis as it appears in the result
        total += math.prod(shape) // inner * n * math.log2(n)
    return total


def xla_fft_factor() -> float:
    """c of XLA's FFT count, c n log2 n FLOPs per transform (probed on a lone rfft)."""
    n, batch = 1024, 64
    cost = jax.jit(jnp.fft.rfft).lower(jnp.ones((batch, n), jnp.float32)).compile().cost_analysis()
    return float(cost.get("flops", 0.0)) / (batch * n * math.log2(n))


def step_work(block, x, y) -> tuple[float, float, float, object]:
    """(FLOPs, bytes, FFT FLOPs (2.5 n log2 n each), jitted step) of one model's train step."""
    opt = optimizer()
    params, static = eqx.partition(block, eqx.is_array)
    state = opt.init(params)

    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(lambda p: jax_loss(eqx.combine(p, static), x, y))(params)
        updates, state = opt.update(grads, state, params)
        return eqx.apply_updates(params, updates), state, loss

    jitted = jax.jit(step)
    compiled = jitted.lower(params, state, x, y).compile()
    cost = compiled.cost_analysis()
    nlogn = fft_nlogn(compiled.as_text())
    ffts = 2.5 * nlogn
    holder = [params, state]

    def run():
        holder[0], holder[1], loss = jitted(holder[0], holder[1], x, y)
        return loss

    flops = float(cost["flops"]) - xla_fft_factor() * nlogn + ffts
    return flops, float(cost["bytes accessed"]), ffts, run


def torch_step_seconds(block, x, y, repeat: int) -> float | None:
    """Seconds per PyTorch eager train step of the same block, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    tblock = torch_block(block)
    topt = torch_optimizer(tblock)
    tx, ty = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y))

    def step():
        topt.zero_grad()
        loss = torch.mean((tblock(tx) - ty) ** 2)
        loss.backward()
        topt.step()

    return timed(step, repeat)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=4, help="ensemble size at the issue size")
    p.add_argument("--runs-small", type=int, default=15, help="ensemble size at the default grid's block")
    p.add_argument("--steps", type=int, default=10)
    add_malloc_flag(p)
    a = p.parse_args()
    set_malloc(a.default_malloc)
    peak, bandwidth = machine_limits()
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), {os.cpu_count()} cores, NPROC={os.environ.get('NPROC', 'unset')}")
    print(f"machine: matmul {peak / 1e9:.0f} GFLOP/s float32, stream scale {bandwidth / 1e9:.1f} GB/s")
    for size, runs in (("issue", a.runs), ("default grid", a.runs_small)):
        h, n, length, batch = SIZES[size]
        block, x, y = jax_setup(h, n, length, batch)
        flops, nbytes, ffts, run = step_work(block, x, y)
        bound = max(flops / peak, nbytes / bandwidth)
        rows = [("ssmflow, jitted step, one model", best_of(run, a.steps)),
                (f"ssmflow engine, {runs} models vmapped (per model-step)",
                 1.0 / engine_steps_per_second(block, x, y, runs, a.steps))]
        t_torch = torch_step_seconds(block, x, y, max(3, a.steps // 2))
        if t_torch is not None:
            rows.append(("PyTorch eager, one model", t_torch))
        print(f"\n{size}: H={h} N={n} L={length} batch={batch}, one train step: {flops / 1e9:.3f} GFLOP "
              f"(of which FFTs {ffts / 1e9:.3f}), {nbytes / 1e6:.0f} MB accessed (XLA count)")
        print(f"  bound: compute {1e3 * flops / peak:.2f} ms, memory {1e3 * nbytes / bandwidth:.2f} ms "
              f"-> limit {1e3 * bound:.2f} ms per step")
        print(f"  {'implementation':<52}{'ms/step':>9}{'GFLOP/s':>9}{'% of limit':>11}")
        for name, t in rows:
            print(f"  {name:<52}{1e3 * t:>9.2f}{flops / t / 1e9:>9.1f}{100 * bound / t:>10.1f}%")
        if t_torch is None:
            print("  (PyTorch not installed: `pip install torch` to put its eager step beside these)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
