"""What a training job asks its scheduler for, and the check that every shard fits, before any job.

A training job holds all runs of its shard (the seeds times the batched axes) in one
compiled program, so its memory grows with its number of runs: `train_mem_mb` is the one
formula for a shard that `ssmflow plan` has not measured, used by the training rule's
`mem_mb` (workflow/rules/common.smk, through `ssmflow.plan.resources_for`) and by
`check_shards`, which the Snakefile runs at parse time; a measured shard asks for its
planned memory (`ssmflow.plan.job_mem_mb`) in both. A shard that would ask for more
than one job may have (the config's `max_job_mem_mb`; null: this host's physical memory,
`host_mem_mb`) is refused with a `ConfigError` that names it and says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ssmflow import grid
from ssmflow.config import ConfigError

#: memory of a training job without runs (Python, JAX, the compiled program), MB
TRAIN_BASE_MB = 1500
#: memory per run of a training job (its carry, data and records), MB
TRAIN_MB_PER_RUN = 20


def train_mem_mb(n_runs: int, attempt: int = 1, limit_mb: int | None = None) -> int:
    """The memory (MB) a training job of `n_runs` runs asks for on its `attempt`-th try.

    **Arguments:** `n_runs`: runs of the shard (seeds x batched axes, `grid.shard_runs`);
    `attempt`: 1 for the first try, each retry (`--retries`) asks `attempt` times as much;
    `limit_mb`: if given, no attempt asks for more (a retry never outgrows the nodes).
    **Returns:** `(TRAIN_BASE_MB + TRAIN_MB_PER_RUN * n_runs) * attempt`, capped at `limit_mb`.
    """
    mem = (TRAIN_BASE_MB + TRAIN_MB_PER_RUN * n_runs) * attempt
    return mem if limit_mb is None else min(mem, limit_mb)


def max_runs_within(limit_mb: int) -> int:
    """The most runs one training job may hold under `limit_mb` on its first try (0 if none)."""
    return max(0, (limit_mb - TRAIN_BASE_MB) // TRAIN_MB_PER_RUN)


def host_mem_mb() -> int:
    """This host's physical memory in MB (`os.sysconf`)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def host_available_mb() -> int:
    """Memory (MB) this host can give new processes now: /proc/meminfo's MemAvailable,
    or the physical memory where that is missing."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return host_mem_mb()


def job_mem_limit_mb(config: Mapping) -> int:
    """The memory limit (MB) of one job: the validated config's `max_job_mem_mb`, or, where
    that is null, this host's physical memory."""
    limit = config["max_job_mem_mb"]
    return host_mem_mb() if limit is None else int(limit)


def job_mem_limit(config: Mapping) -> tuple[int, str]:
    """`(limit MB, where it comes from)` of one job's memory, for messages that name it."""
    limit = job_mem_limit_mb(config)
    source = (f"max_job_mem_mb={limit} MB" if config["max_job_mem_mb"] is not None else
              f"{limit} MB, this host's physical memory (max_job_mem_mb is null; on SLURM set it to your nodes' memory)")
    return limit, source


def check_shards(shards: Mapping[str, Mapping[str, Sequence[grid.Shard]]], config: Mapping) -> None:
    """Refuse a config whose training shard would ask for more memory than one job may have.

    **Arguments:** `shards`: {study: {experiment: [Shard, ...]}} (`grid.expand` per study);
    `config`: the validated config (`max_job_mem_mb`, `max_runs_per_shard`).
    **Raises:** `ConfigError` naming every shard over the limit: study, experiment, shard,
    its runs, the memory it asks for, the limit, and what to change.
    """
    from ssmflow import plan  # a shard that `ssmflow plan` measured asks for its planned memory

    limit, source = job_mem_limit(config)
    lines = []
    for study, by_exp in shards.items():
        for exp, exp_shards in by_exp.items():
            for s in exp_shards:
                n_runs = grid.shard_runs(s.spec)
                probe = plan.cached_probe(s.spec)
                mem = train_mem_mb(n_runs) if probe is None else plan.job_mem_mb(plan.predict(probe)["peak_mb"])
                if mem > limit:
                    how = "ask for" if probe is None else "ask for (as planned by `ssmflow plan`)"
                    lines.append(f"study {study}, experiment {exp}, shard {s.name}: {n_runs} runs "
                                 f"({grid.runs_formula(s.spec)}) {how} {mem} MB; the limit is {source}.")
    if not lines:
        return
    fit = max_runs_within(limit)
    now = config["max_runs_per_shard"]
    raise ConfigError(
        f"training jobs too large for the memory limit (a job asks {TRAIN_BASE_MB} MB + {TRAIN_MB_PER_RUN} MB per run):\n  "
        + "\n  ".join(lines)
        + f"\nOne job fits at most {fit} runs. Lower `seeds` or the number of values of the batched axes, or set "
          f"the top-level key max_runs_per_shard (e.g. to {fit}; now {'null' if now is None else now}) to split "
          "such shards along their batched axes (never along seeds); or raise max_job_mem_mb if your nodes have more memory."
    )
