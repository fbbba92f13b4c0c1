"""The convolution paths of the SSM core against each other: the table behind `conv="auto"`.

    python bench/conv_paths.py [--rounds 5]

For each size (H, N, L, batch), one jitted loss + gradient of the S4D block of
`bench/bench_s4d.py` (vmapped over the batch, float32, S4D-LegS, ZOH) with each path of
`ssmflow.ssm.conv.CONVS` ("fft", "fft_split", "toeplitz"; the Toeplitz product only up to
L = 256, where its (H, L, L) matrix stays small), the paths interleaved for `--rounds`
rounds; prints the median ms per call, the ratios to "fft", and what "auto" picks on this
backend (`conv.conv_path`). Not a timed test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bench_s4d import add_malloc_flag, jax_loss, jax_setup, set_malloc, timed
from ssmflow.ssm import conv

#: (H, N, L, batch): the default config's s4d block at several lengths, and the issue's block
SIZES = [(16, 64, 16, 16), (16, 64, 32, 16), (16, 64, 64, 16), (16, 64, 128, 16), (16, 64, 256, 16),
         (16, 64, 1024, 16), (64, 64, 32, 32), (64, 64, 64, 32), (64, 64, 128, 32), (64, 64, 256, 32),
         (64, 64, 512, 32), (64, 64, 1024, 32)]
TOEPLITZ_LONGEST = 256


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per size (medians are printed)")
    add_malloc_flag(ap)
    a = ap.parse_args()
    set_malloc(a.default_malloc)
    jax.config.update("jax_enable_x64", False)
    print(f"jax {jax.__version__} ({jax.default_backend()}); loss + gradient of the S4D block, ms per call (median)")
    print(f"{'H':>4}{'N':>4}{'L':>6}{'batch':>6}{'fft':>10}{'fft_split':>10}{'toeplitz':>10}{'split/fft':>10}"
          f"{'toep/fft':>10}  auto")
    for h, n, length, batch in SIZES:
        paths = ["fft", "fft_split"] + (["toeplitz"] if length <= TOEPLITZ_LONGEST else [])
        steps = {}
        for path in paths:
            block, x, y = jax_setup(h, n, length, batch, path)
            steps[path] = (eqx.filter_jit(eqx.filter_value_and_grad(jax_loss)), block, x, y)
        repeat = max(3, int(2**21 // (h * length * batch)))
        times = {path: [] for path in paths}
        for _ in range(a.rounds):
            for path, (step, block, x, y) in steps.items():
                times[path].append(timed(lambda s=step, b=block, x=x, y=y: jax.block_until_ready(s(b, x, y)), repeat))
        med = {path: 1e3 * float(np.median(t)) for path, t in times.items()}
        toep = med.get("toeplitz", np.nan)
        print(f"{h:>4}{n:>4}{length:>6}{batch:>6}{med['fft']:>10.2f}{med['fft_split']:>10.2f}{toep:>10.2f}"
              f"{med['fft_split'] / med['fft']:>10.2f}{toep / med['fft']:>10.2f}  {conv.conv_path('auto', length, h)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
