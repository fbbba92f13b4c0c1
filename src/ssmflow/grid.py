"""Config -> shards: the one pure function that expands a study's grids into jobs.

Axes that change array shapes or code paths (a study's `SHARD_AXES`, e.g. state size,
parameterization, depth) become one job each, a *shard*; every other axis is vmapped
inside the job. A shard carries the whole JSON spec that its job needs, so the
training command is reproducible by hand and Snakemake's params trigger reruns a
shard exactly when its own part of the config changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ssmflow import study as study_contract


def layout(study: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The study's store layout: (dims kept whole in one chunk, ragged dims NaN-padded on gather)."""
    s = study_contract.get(study)
    return tuple(s.whole_dims), tuple(s.pad_dims)


@dataclass(frozen=True)
class Shard:
    """One training job: an experiment at one combination of the shard axes."""

    study: str
    experiment: str
    name: str
    fixed: dict[str, Any] = field(hash=False)
    spec: dict[str, Any] = field(hash=False)


def shard_name(fixed: dict[str, Any]) -> str:
    """'N=4_param=tied_depth=1_conv=circular' (axis order as in SHARD_AXES)."""
    return "_".join(f"{k}={v}" for k, v in fixed.items()) or "all"


def shard_runs(spec: dict[str, Any]) -> int:
    """The number of runs a shard spec trains from scratch: seeds x every batched axis value."""
    n_runs = spec["common"].get("seeds", 1)
    for values in spec["axes"].values():
        n_runs *= len(values)
    return n_runs


def runs_formula(spec: dict[str, Any]) -> str:
    """How a shard's runs multiply: '2 seeds x a (1000 values) x p0 (500 values)'."""
    axes = [f"{a} ({len(v)} values)" for a, v in spec["axes"].items() if len(v) > 1]
    return " x ".join([f"{spec['common'].get('seeds', 1)} seeds", *axes])


def expand(config: dict, study: str) -> dict[str, list[Shard]]:
    """All shards of a validated config's study, by experiment (order as in config).

    **Arguments:** `config` validated by `ssmflow.config.validate`; `study` name.
    **Returns:** {experiment: [Shard, ...]}.
    """
    decl = study_contract.get(study)
    common = common_settings(config, study)
    out: dict[str, list[Shard]] = {}
    for exp, ecfg in config[study]["experiments"].items():
        axes = ecfg["axes"]
        shard_axes = [a for a in decl.shard_axes if a in axes]
        settings = {k: v for k, v in ecfg.items() if k != "axes"}
        shards = []
        for combo in itertools.product(*(axes[a] for a in shard_axes)):
            fixed = dict(zip(shard_axes, combo, strict=True))
            run_axes = {a: ([fixed[a]] if a in fixed else list(axes[a])) for a in decl.run_dims if a in axes}
            spec = {
                "study": study,
                "experiment": exp,
                "shard": shard_name(fixed),
                "axes": run_axes,
                "settings": settings,
                "common": common,
            }
            shards.append(Shard(study, exp, shard_name(fixed), fixed, spec))
        out[exp] = shards
    return out


def seed_values(spec: dict[str, Any]) -> list[int]:
    """The seeds a training job trains: `spec["train_seeds"]` when the spine asks for a
    subset (the others are reused, `ssmflow.reuse`), else 0 .. seeds - 1."""
    if "train_seeds" in spec:
        return [int(s) for s in spec["train_seeds"]]
    return list(range(spec["common"].get("seeds", 1)))


def common_settings(config: dict, study: str) -> dict[str, Any]:
    """The study section's settings shared by its experiments, without the sections only
    study stores read (so editing those reruns no training or data job)."""
    skip = {"experiments", *study_contract.get(study).not_training}
    return {k: v for k, v in config[study].items() if k not in skip}


def experiment_spec(config: dict, study: str, experiment: str) -> dict[str, Any]:
    """The JSON spec of one experiment as a whole (every axis value): the data stage's input."""
    ecfg = config[study]["experiments"][experiment]
    return {
        "study": study,
        "experiment": experiment,
        "axes": ecfg["axes"],
        "settings": {k: v for k, v in ecfg.items() if k != "axes"},
        "common": common_settings(config, study),
    }


def shard_table(config: dict, study: str) -> list[dict[str, Any]]:
    """Flat rows (experiment, shard, runs) for listing and for the workflow."""
    rows = []
    for exp, shards in expand(config, study).items():
        for s in shards:
            rows.append({"study": study, "experiment": exp, "shard": s.name, "runs": shard_runs(s.spec), **s.fixed})
    return rows
