"""Config -> shards: the one pure function that expands a study's grids into jobs.

Axes that change array shapes or code paths (a study's `SHARD_AXES`, e.g. state size,
parameterization, depth) become one job each, a *shard*; every other axis is vmapped
inside the job. A shard carries the whole JSON spec that its job needs, so the
training command is reproducible by hand and Snakemake's params trigger reruns a
shard exactly when its own part of the config changes.

A shard with more runs (seeds x the batched axes) than the config's `max_runs_per_shard`
is split into parts along its batched axes, never along seeds (`ssmflow.reuse` keys a
shard's runs by its spec without the seed count): each part is a shard of its own, named
`<shard>_part=<i>of<n>`, whose spec lists a sub-range of those axes' values. A run's
numbers come from its own coordinates (`train.run_key`), so a part trains the same runs
as the whole shard would, and gather (`store.gather`) tiles the parts back together.
"""

from __future__ import annotations

import itertools
import math
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
    #: this shard is part `part` (1-based) of `n_parts` of one split shard (1 of 1: not split)
    part: int = 1
    n_parts: int = 1


def shard_name(fixed: dict[str, Any], part: int = 1, n_parts: int = 1) -> str:
    """'N=4_param=tied_depth=1_conv=circular' (axis order as in SHARD_AXES), with
    '_part=2of3' for a part of a split shard."""
    name = "_".join(f"{k}={v}" for k, v in fixed.items()) or "all"
    return f"{name}_part={part}of{n_parts}" if n_parts > 1 else name


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


def _ordered(values: list) -> list:
    """An axis's values as configured where monotonic, else sorted: a part's coords must be
    monotonic for gather (`xarray.combine_by_coords` orders the parts by them)."""
    pairs = list(zip(values, values[1:], strict=False))
    if all(x < y for x, y in pairs) or all(x > y for x, y in pairs):
        return list(values)
    return sorted(values)


def _chunks(values: list, size: int) -> list[list]:
    """`values` cut into ceil(len / size) contiguous chunks of near-equal length."""
    n = -(-len(values) // size)
    bounds = [round(k * len(values) / n) for k in range(n + 1)]
    return [values[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _chunk_sizes(axes: dict[str, list], max_combos: int, order: list[str]) -> dict[str, int]:
    """Chunk length per axis: the axes in `order` stay whole while they fit, the axis where
    they stop fitting is cut, every later one goes in single values."""
    room, size = max(1, max_combos), {}
    for a in order:
        size[a] = min(len(axes[a]), max(1, room))
        room //= size[a]
    return size


def split_axes(axes: dict[str, list], max_combos: int) -> list[dict[str, list]]:
    """Cut a shard's batched axes into boxes of at most `max_combos` value combinations.

    The boxes tile the grid (the product of each axis's chunks, in axis order), so the
    parts gather back into the whole. Of three greedy cuts (`_chunk_sizes` keeping whole
    first the last axes, the longest, or the shortest) the one with the fewest parts wins
    (the first of those on a tie), so the split is deterministic though not always minimal.

    **Arguments:** `axes`: {dim: values} of a shard spec; `max_combos` >= 1.
    **Returns:** the parts' `axes`, one dict per part (`[axes]` if it fits whole).
    """
    orders = [list(reversed(axes)), sorted(axes, key=lambda a: -len(axes[a])), sorted(axes, key=lambda a: len(axes[a]))]

    def n_parts(size):
        return math.prod(-(-len(v) // size[a]) for a, v in axes.items())

    size = min((_chunk_sizes(axes, max_combos, order) for order in orders), key=n_parts)
    if n_parts(size) == 1:
        return [axes]
    per_axis = [_chunks(_ordered(v), size[a]) if size[a] < len(v) else [list(v)] for a, v in axes.items()]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*per_axis)]


def expand(config: dict, study: str) -> dict[str, list[Shard]]:
    """All shards of a validated config's study, by experiment (order as in config).

    **Arguments:** `config` validated by `ssmflow.config.validate`; `study` name.
    **Returns:** {experiment: [Shard, ...]}.
    """
    decl = study_contract.get(study)
    common = common_settings(config, study)
    max_runs = config.get("max_runs_per_shard")
    out: dict[str, list[Shard]] = {}
    for exp, ecfg in config[study]["experiments"].items():
        axes = ecfg["axes"]
        shard_axes = [a for a in decl.shard_axes if a in axes]
        settings = experiment_settings(ecfg, decl)
        shards = []
        for combo in itertools.product(*(axes[a] for a in shard_axes)):
            fixed = dict(zip(shard_axes, combo, strict=True))
            run_axes = {a: ([fixed[a]] if a in fixed else list(axes[a])) for a in decl.run_dims if a in axes}
            parts = [run_axes]
            if max_runs is not None:
                parts = split_axes(run_axes, max_runs // common.get("seeds", 1))
            for k, part_axes in enumerate(parts, 1):
                name = shard_name(fixed, k, len(parts))
                spec = {
                    "study": study,
                    "experiment": exp,
                    "shard": name,
                    "axes": part_axes,
                    "settings": settings,
                    "common": common,
                }
                shards.append(Shard(study, exp, name, fixed, spec, k, len(parts)))
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
        "settings": experiment_settings(ecfg, study_contract.get(study)),
        "common": common_settings(config, study),
    }


def experiment_settings(ecfg: dict, decl: study_contract.Study) -> dict[str, Any]:
    """An experiment's settings as its training and data jobs see them: every key but its
    axes and those only stages read (`Stage.settings`)."""
    skip = {"axes", *decl.stage_keys}
    return {k: v for k, v in ecfg.items() if k not in skip}


def stage_settings(config: dict, study: str, experiment: str, stage: study_contract.Stage) -> Any:
    """The experiment config value a stage reads (`Stage.settings`), or None."""
    return config[study]["experiments"][experiment].get(stage.settings) if stage.settings else None


def shard_table(config: dict, study: str) -> list[dict[str, Any]]:
    """Flat rows (experiment, shard, runs) for listing and for the workflow."""
    rows = []
    for exp, shards in expand(config, study).items():
        for s in shards:
            rows.append({"study": study, "experiment": exp, "shard": s.name, "runs": shard_runs(s.spec), **s.fixed})
    return rows


def split_summary(shards: dict[str, list[Shard]]) -> list[str]:
    """One line per split shard of `expand`'s result: which, into how many parts, how many runs each."""
    lines = []
    for exp, exp_shards in shards.items():
        for s in exp_shards:
            if s.n_parts > 1 and s.part == 1:
                runs = [shard_runs(p.spec) for p in exp_shards if p.fixed == s.fixed]
                each = f"{min(runs)}" if min(runs) == max(runs) else f"{min(runs)}-{max(runs)}"
                lines.append(f"{s.study}/{exp}/{shard_name(s.fixed)}: {sum(runs)} runs split into {s.n_parts} shards "
                             f"of {each} runs each (max_runs_per_shard)")
    return lines
