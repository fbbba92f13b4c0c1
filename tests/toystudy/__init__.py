"""A toy study that lives outside ssmflow: least squares by gradient descent.

It exists to show (and test, tests/test_toy_study.py) that a study is its own package,
its config section, its schema and its caption: registered through `SSMFLOW_STUDIES=toystudy`,
it runs end to end through the generic rules (data -> train -> gather -> theory ->
evaluate -> figure) without any file of ssmflow naming it.

Per seed, the data store holds a design X (n, max dim) and targets y = X w* + noise; a
shard trains every learning rate x seed at one feature dimension `dim` (the first `dim`
columns of X) with full-batch GD. The theory is the closed form of GD on a quadratic,
w_t = w_ls + (I - lr H)^t (w_0 - w_ls) with H = X^T X / n, on the recorded steps.
"""

from __future__ import annotations

from pathlib import Path

from ssmflow.study import Stage, Study, experiment_inputs


def check_config(section: dict) -> list[str]:
    """Cross-key checks: the recording interval divides the steps."""
    if section["steps"] % section["record_every"]:
        return [f"config key toy.record_every: got {section['record_every']}; allowed: a divisor of toy.steps (={section['steps']})."]
    return []


def figures(section: dict) -> dict[str, dict[str, str]]:
    """One figure per experiment: its loss curves against the closed form."""
    return {f"loss_{e}": experiment_inputs("toy", e, ("trajectories", "theory", "metrics_csv")) for e in section["experiments"]}


STUDY = Study(
    name="toy",
    package=__name__,
    schema=Path(__file__).with_name("schema.yaml"),
    shard_axes=("dim",),
    run_dims=("dim", "lr"),
    categorical=(),
    whole_dims=("step", "seed", "sample", "feature"),
    pad_dims=("feature",),
    checks=None,
    data="data",
    stages=(
        Stage("theory", "reference", "theory_dataset", reads=("trajectories", "data"), writes="theory", precision_from_input=True),
        Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories", "theory"), writes="metrics", csv=True),
    ),
    figures=figures,
    check_config=check_config,
)
