#!/usr/bin/env bash
# The paper-scale plan and one paper-scale shard of s4d and icl on a GPU machine, for
# BENCHMARKS.md ("Paper scale on an accelerator"). Run from the repository root in an
# environment that has ssmflow with JAX's CUDA plugin (`pip install -e '.[cuda]'`, done
# beforehand where the GPU machine cannot reach PyPI):
#
#   bash bench/device_paper.sh [OUT]        (default OUT: results/device; ~10 min on one H100)
#
# It prints the devices, then writes to OUT: the s4d and icl plans of config/paper.yaml
# (one probe at a time: the probes' memory budget is the host's, not the GPU's), and
# bench/paper_shard.py for s4d sdigits N=64 with vmap and with map (what
# `batching: auto` picks on each backend) and for icl E1, each bounded to a few steps.
set -euo pipefail
out="${1:-results/device}"
mkdir -p "$out"
python -c "import jax; print('JAX', jax.__version__, 'backend', jax.default_backend(), jax.devices())" | tee "$out/devices.txt"
if [ "$(python -c 'import jax; print(jax.default_backend())')" = cpu ]; then
  echo "no accelerator: JAX runs on the CPU here (install '.[cuda]' on a GPU machine)" >&2
  exit 1
fi
for study in s4d icl; do
  ssmflow plan --configfile config/paper.yaml --study "$study" --jobs 1 --cache-dir "$out/plan" \
    --probe-timeout 300 | tee "$out/plan_$study.txt" || true
done
for b in vmap map; do
  python bench/paper_shard.py s4d sdigits N=64_disc=zoh --steps 40 --chunk 10 --batching "$b" | tee "$out/s4d_$b.txt"
done
python bench/paper_shard.py icl E1 d=10_n_context=10_blocks=1 --steps 400 --chunk 100 | tee "$out/icl_E1.txt"
