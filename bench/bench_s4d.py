"""The S4D block on CPU: ssmflow (JAX) against the same math in PyTorch eager, side by side.

Two sizes, float32, S4D-LegS init, ZOH: the issue's (H = 64 channels, N = 64, i.e. 32
conjugate-pair modes, L = 1024, batch 32; inputs `(batch, H, L)`) and the block of the default config's s4d grid
(H = 16, N = 64, L = 256, batch 16). Both sides hold the very same parameters (copied
from the Equinox block) and their outputs are compared before timing.

1. kernel: the (H, L) convolution kernel from (lambda, B, C, Delta), forward only.
   PyTorch: the official minimal model's Vandermonde (`exp(dtA[..., None] * arange(L))`,
   then an einsum over modes). ssmflow: `vandermonde_kernel` (factorized product), and
   the materialized matrix (`vandermonde_kernel_naive`) for reference.
2. train step: one AdamW step (two parameter groups, spec D10) of the prenorm residual
   block, LayerNorm -> kernel -> FFT conv (2L) + D u -> GELU -> Linear(H, 2H) -> GLU ->
   residual, on an MSE loss to a fixed target. PyTorch eager: one model. ssmflow: the
   jitted step of one model, and an ensemble of R models trained by the engine
   (`ssmflow.train.train_ensemble`, one compiled `lax.scan` per chunk), the R models
   vmapped (`batching="vmap"`) and one after another (`batching="map"`).
   One model-step = one optimizer step of one model.

Printed as time per call and calls (model-steps) per second, with ratios to PyTorch, and
each train step as a percentage of this machine's roofline limit for it (measured in the
same run: `bench/roofline_s4d.py`, 100 % = at the limit). Not a timed test: numbers depend
on the machine and its load. Skips with a message when PyTorch is not installed (it is not
a dependency of ssmflow).

    python bench/bench_s4d.py [--runs 4] [--runs-small 15] [--steps 20] [--conv auto] [--profile]

`--conv` picks the ssmflow block's convolution path (`ssmflow.ssm.conv.CONVS`; "auto" is
the layers' default).

`--profile` also prints where the compiled train step spends its time at the issue size
(XLA ops from a `jax.profiler` trace, grouped into FFTs, dots and elementwise fusions).
"""

from __future__ import annotations

import argparse
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow import cli, train
from ssmflow.ssm.conv import CONVS
from ssmflow.ssm.discretize import discretize
from ssmflow.ssm.kernels import vandermonde_kernel_naive
from ssmflow.ssm.layers import S4DBlock
from ssmflow.ssm.optim import s4d_optimizer

LR, LR_SSM, WD = 4e-3, 1e-3, 0.01
#: (H, N, L, batch): the issue's size, and the block of the default config's s4d grid
SIZES = {"issue": (64, 64, 1024, 32), "default grid": (16, 64, 256, 16)}


def jax_setup(h: int, n: int, length: int, batch: int, conv: str = "auto"):
    block = S4DBlock(h, n, init="legs", method="zoh", conv=conv, key=jax.random.key(0))
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (batch, h, length), jnp.float32)  # (batch, H, L), as the block maps (H, L)
    y = jax.random.normal(ky, (batch, h, length), jnp.float32)
    return block, x, y


def jax_loss(block, x, y):
    return jnp.mean((jax.vmap(block)(x) - y) ** 2)


def optimizer():
    # constant rates (warmup over 1 step) so both sides take full-size AdamW steps
    return s4d_optimizer(lr=LR, lr_ssm=LR_SSM, weight_decay=WD, total_steps=10**6, warmup_frac=1e-6)


def torch_block(block):
    """The same block in PyTorch eager, with parameters copied from the Equinox block."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    def p(a):
        return torch.nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32))

    ssm, norm, out = block.layer.ssm, block.norm, block.layer.out

    class TorchS4DBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.log_re, self.im, self.b_re, self.b_im = p(ssm.log_re), p(ssm.im), p(ssm.b_re), p(ssm.b_im)
            self.c_re, self.c_im, self.d, self.log_dt = p(ssm.c_re), p(ssm.c_im), p(ssm.d), p(ssm.log_dt)
            h = ssm.d.shape[0]
            self.norm = torch.nn.LayerNorm(h, eps=norm.eps)
            self.out = torch.nn.Linear(h, 2 * h)
            with torch.no_grad():
                self.norm.weight.copy_(torch.tensor(np.asarray(norm.weight)))
                self.norm.bias.copy_(torch.tensor(np.asarray(norm.bias)))
                self.out.weight.copy_(torch.tensor(np.asarray(out.weight)))
                self.out.bias.copy_(torch.tensor(np.asarray(out.bias)))

        def kernel(self, length):
            lam = torch.complex(-torch.exp(self.log_re), self.im)
            dt_lam = torch.exp(self.log_dt)[:, None] * lam
            w = torch.complex(self.c_re, self.c_im) * torch.expm1(dt_lam) / lam * torch.complex(self.b_re, self.b_im)
            powers = torch.exp(dt_lam.unsqueeze(-1) * torch.arange(length))
            return 2 * torch.einsum("hn,hnl->hl", w, powers).real

        def forward(self, u):  # (B, H, L), the official S4D layout
            z = self.norm(u.transpose(1, 2)).transpose(1, 2)
            length = u.shape[-1]
            k = self.kernel(length)
            n = 2 * length
            v = torch.fft.irfft(torch.fft.rfft(z, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :length]
            v = F.gelu(v + self.d[:, None] * z, approximate="tanh")
            return u + F.glu(self.out(v.transpose(1, 2)), dim=-1).transpose(1, 2)

    return TorchS4DBlock()


def torch_optimizer(model):
    import torch

    ssm_names = {"log_re", "im", "b_re", "b_im", "log_dt"}
    groups = [
        {"params": [q for n, q in model.named_parameters() if n in ssm_names], "lr": LR_SSM, "weight_decay": 0.0},
        {"params": [q for n, q in model.named_parameters() if n not in ssm_names], "lr": LR, "weight_decay": WD},
    ]
    return torch.optim.AdamW(groups)


def add_malloc_flag(parser: argparse.ArgumentParser) -> None:
    """`--default-malloc`: glibc's default malloc settings instead of the jobs' `retain_heap`."""
    parser.add_argument("--default-malloc", action="store_true",
                        help="glibc's default malloc settings instead of `ssmflow.cli.retain_heap` (which every job runs with)")


def set_malloc(default_malloc: bool) -> None:
    """Apply (or not) `cli.retain_heap` for this process, before JAX starts, and say which."""
    print(f"malloc: {'glibc default' if default_malloc else f'retain_heap {cli.retain_heap()}'}")


def timed(fn, repeat: int) -> float:
    """Seconds per call (best of 3 rounds of `repeat` calls, after a warm-up)."""
    fn()
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def engine_steps_per_second(block, x, y, n_runs: int, n_steps: int, batching: str = "vmap") -> float:
    """Model-steps/s of the engine training `n_runs` copies of the block (`batching`: "vmap"
    or "map", as `train.train_ensemble`; compile excluded)."""
    params, static = eqx.partition(block, eqx.is_array)
    runs = dict(
        key=jnp.stack([train.run_key("bench", {"run": i}) for i in range(n_runs)]),
        params0=jax.tree.map(lambda a: jnp.broadcast_to(a, (n_runs, *a.shape)), params),
        x=jnp.broadcast_to(x, (n_runs, *x.shape)), y=jnp.broadcast_to(y, (n_runs, *y.shape)),
    )
    chunk = n_steps // 2
    res = train.train_ensemble(
        lambda run: eqx.combine(run["params0"], static),
        lambda model, run, key: jax_loss(model, run["x"], run["y"]),
        lambda model, run: {},
        runs, np.tile([0, 2 * chunk - 1], (n_runs, 1)), optimizer_fn=lambda run: optimizer(),
        chunk_steps=chunk, batching=batching,
    )
    return res.steps_per_second * n_runs


def compare(size: str, n_runs: int, n_steps: int, conv: str, limits: tuple[float, float]) -> None:
    """Print the side-by-side table for one block size (`limits`: the machine's peak FLOP/s
    and bandwidth, `roofline_s4d.machine_limits`)."""
    import torch
    from roofline_s4d import step_work

    h, n, length, batch = SIZES[size]
    block, x, y = jax_setup(h, n, length, batch, conv)
    tblock = torch_block(block)
    tx, ty = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y))
    with torch.no_grad():
        gap = float(np.max(np.abs(tblock(tx).numpy() - np.asarray(jax.vmap(block)(x)))))
    print(f"\n{size}: S4D block H={h} N={n} L={length} batch={batch} float32, conv={conv} | jax {jax.__version__} "
          f"({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads) | "
          f"max |out_jax - out_torch| = {gap:.1e}")

    ssm = block.layer.ssm
    kernel_jax = eqx.filter_jit(lambda s: s.kernel(length))

    @eqx.filter_jit
    def kernel_naive(s):
        disc = discretize(s.eigenvalues(), s.b_re + 1j * s.b_im, s.step()[:, None], s.method)
        return vandermonde_kernel_naive(disc.log_abar, (s.c_re + 1j * s.c_im) * disc.bbar, length)

    with torch.no_grad():
        t_kernel_torch = timed(lambda: tblock.kernel(length), 20)
    t_kernel_jax = timed(lambda: kernel_jax(ssm).block_until_ready(), 50)
    t_kernel_naive = timed(lambda: kernel_naive(ssm).block_until_ready(), 50)

    topt = torch_optimizer(tblock)

    def torch_step():
        topt.zero_grad()
        loss = torch.mean((tblock(tx) - ty) ** 2)
        loss.backward()
        topt.step()

    t_step_torch = timed(torch_step, max(3, n_steps // 2))
    opt = optimizer()
    state = opt.init(eqx.filter(block, eqx.is_array))

    @eqx.filter_jit
    def jax_step(model, state):
        loss, grads = eqx.filter_value_and_grad(jax_loss)(model, x, y)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    holder = [block, state]

    def run_jax_step():
        holder[0], holder[1], loss = jax_step(*holder)
        loss.block_until_ready()

    t_step_jax = timed(run_jax_step, n_steps)
    sps_engine = engine_steps_per_second(block, x, y, n_runs, n_steps)
    sps_map = engine_steps_per_second(block, x, y, n_runs, n_steps, batching="map")

    flops, nbytes, _, _ = step_work(block, x, y)
    bound = max(flops / limits[0], nbytes / limits[1])
    rows = [
        ("kernel (H, L)", "PyTorch eager, materialized Vandermonde", t_kernel_torch, t_kernel_torch),
        ("kernel (H, L)", "ssmflow, materialized (jit)", t_kernel_naive, t_kernel_torch),
        ("kernel (H, L)", "ssmflow, factorized (jit, default)", t_kernel_jax, t_kernel_torch),
        ("train step", "PyTorch eager, one model", t_step_torch, t_step_torch),
        ("train step", "ssmflow, jitted step, one model", t_step_jax, t_step_torch),
        ("train step", f"ssmflow engine, {n_runs} models vmapped, lax.scan", 1.0 / sps_engine, t_step_torch),
        ("train step", f"ssmflow engine, {n_runs} models lax.map, lax.scan", 1.0 / sps_map, t_step_torch),
    ]
    print(f"{'what':<15}{'implementation':<46}{'ms per call':>12}{'per s':>10}{'x torch':>9}{'% of limit':>11}")
    for what, impl, t, ref in rows:
        roof = f"{100 * bound / t:>10.1f}%" if what == "train step" else ""
        print(f"{what:<15}{impl:<46}{1e3 * t:>12.2f}{1.0 / t:>10.1f}{ref / t:>9.2f}{roof}")
    print(f"roofline of the train step: {flops / 1e9:.3f} GFLOP, {nbytes / 1e6:.0f} MB (XLA count) -> limit "
          f"{1e3 * bound:.2f} ms (compute {1e3 * flops / limits[0]:.2f}, memory {1e3 * nbytes / limits[1]:.2f}); "
          f"3x PyTorch would be {1e3 * t_step_torch / 3:.1f} ms = {100 * bound / (t_step_torch / 3):.1f} % of the limit")


def profile_step(size: str = "issue", repeat: int = 5, conv: str = "auto") -> None:
    """Per-op time of one jitted loss+gradient of the block, from a jax.profiler (perfetto) trace."""
    import collections
    import gzip
    import json
    import tempfile
    from pathlib import Path

    block, x, y = jax_setup(*SIZES[size], conv)
    value_grad = eqx.filter_jit(eqx.filter_value_and_grad(jax_loss))
    jax.block_until_ready(value_grad(block, x, y))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(repeat):
                jax.block_until_ready(value_grad(block, x, y))
        (trace,) = Path(tmp).rglob("perfetto_trace.json.gz")
        events = json.load(gzip.open(trace))["traceEvents"]
    ms = collections.Counter()
    for e in events:
        name = e.get("name", "")
        if e.get("ph") == "X" and not name.startswith(("$", "Thunk", "Pjit", "Slinky")):
            kind = "FFT" if name.startswith("fft") else "dot (ynn/dot)" if name.startswith(("ynn", "dot")) else "elementwise fusions"
            ms[kind] += e["dur"] / 1e3 / repeat
    print(f"\nprofile ({size}): one jitted loss + gradient, ms per call summed over XLA ops "
          f"(ops on the 2 threads may overlap): " + ", ".join(f"{k} {v:.1f}" for k, v in ms.most_common()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4, help="models in the engine's vmapped ensemble (issue size)")
    ap.add_argument("--runs-small", type=int, default=15, help="models in the ensemble at the default grid's size")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (engine: per run, 2 chunks)")
    ap.add_argument("--conv", choices=CONVS, default="auto", help="the ssmflow block's convolution path")
    ap.add_argument("--profile", action="store_true", help="also print the per-op time of the train step (issue size)")
    add_malloc_flag(ap)
    a = ap.parse_args()
    set_malloc(a.default_malloc)  # both sides share the process's allocator
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_s4d: PyTorch is not installed; skipping (pip install torch to compare).")
        return 0
    jax.config.update("jax_enable_x64", False)
    from roofline_s4d import machine_limits

    limits = machine_limits()
    print(f"machine: matmul {limits[0] / 1e9:.0f} GFLOP/s float32, stream scale {limits[1] / 1e9:.1f} GB/s")
    compare("issue", a.runs, a.steps, a.conv, limits)
    compare("default grid", a.runs_small, 5 * a.steps, a.conv, limits)
    if a.profile:
        profile_step(conv=a.conv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
