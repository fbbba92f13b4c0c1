"""The S4D optimizer (spec D10): two parameter groups under one AdamW schedule.

Group "ssm" = the leaves log_re, im, b_re, b_im, log_dt of every `DiagonalSSM`: learning
rate `lr_ssm`, no weight decay. Group "rest" = everything else (C, D, encoder, output
linears, norms, decoder): learning rate `lr` and weight decay. Both follow a linear
warmup then a cosine decay, through `optax.multi_transform`.

B (b_re, b_im) carries its own label, "b", with the SSM group's settings, and its updates
are multiplied by `train_b`: 1 trains B as a member of the SSM group, 0 freezes it (the
X4 ablation: every update of B exactly zero). `train_b` may differ per run of a batched
ensemble (a traced scalar), so both choices train in one compiled program.
"""

from __future__ import annotations

import equinox as eqx
import jax
import optax

from ssmflow._types import PyTree
from ssmflow.ssm.layers import DiagonalSSM

SSM_LEAVES = ("log_re", "im", "b_re", "b_im", "log_dt")
#: the SSM-group leaves of B, labelled "b" so that `train_b` can scale (freeze) their updates
B_LEAVES = ("b_re", "b_im")


def _is_ssm(node) -> bool:
    return isinstance(node, DiagonalSSM)


def param_labels(params: PyTree) -> PyTree:
    """A pytree like `params` with "b" on B (`B_LEAVES`), "ssm" on the other SSM leaves
    (`SSM_LEAVES`) and "rest" elsewhere; "ssm" and "b" are the spec's SSM group."""

    def leaves(tree, names):
        nodes = [node for node in jax.tree.leaves(tree, is_leaf=_is_ssm) if _is_ssm(node)]
        return [getattr(node, name) for node in nodes for name in names]

    labels = jax.tree.map(lambda _: "rest", params)
    for label, names in (("ssm", SSM_LEAVES), ("b", B_LEAVES)):  # B last: "b" replaces its "ssm"
        labels = eqx.tree_at(lambda t, names=names: leaves(t, names), labels, replace=[label] * len(leaves(labels, names)))
    return labels


def warmup_cosine(lr: float, total_steps: int, warmup_frac: float) -> optax.Schedule:
    """Linear warmup from 0 over `warmup_frac` of the steps, then cosine decay to 0."""
    warmup = max(1, int(round(warmup_frac * total_steps)))
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))


def s4d_optimizer(*, lr: float, lr_ssm: float, weight_decay: float, total_steps: int,
                  warmup_frac: float = 0.05, train_b: float | jax.Array = 1.0) -> optax.GradientTransformation:
    """AdamW with the two groups of the module docstring; labels come from the parameters it is given.

    **Arguments:** `lr`, `weight_decay`: the non-SSM group's; `lr_ssm`: the SSM group's (no
    decay); `total_steps`, `warmup_frac`: the schedule; `train_b`: 1 (B trained) or 0 (B
    frozen: its updates are exactly zero), a float or a traced per-run scalar.
    """
    ssm_schedule = warmup_cosine(lr_ssm, total_steps, warmup_frac)
    return optax.multi_transform(
        {
            "ssm": optax.adamw(ssm_schedule, weight_decay=0.0),
            "b": optax.chain(optax.adamw(ssm_schedule, weight_decay=0.0), optax.scale(train_b)),
            "rest": optax.adamw(warmup_cosine(lr, total_steps, warmup_frac), weight_decay=weight_decay),
        },
        param_labels,  # a function: the label tree is itself a (callable) Module
    )
