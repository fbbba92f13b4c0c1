"""The S4D optimizer (spec D10): two parameter groups under one AdamW schedule.

Group "ssm" = the leaves log_re, im, b_re, b_im, log_dt of every `DiagonalSSM`: learning
rate `lr_ssm`, no weight decay. Group "rest" = everything else (C, D, encoder, output
linears, norms, decoder): learning rate `lr` and weight decay. Both follow a linear
warmup then a cosine decay, through `optax.multi_transform`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import optax

from ssmflow._types import PyTree
from ssmflow.ssm.layers import DiagonalSSM

SSM_LEAVES = ("log_re", "im", "b_re", "b_im", "log_dt")


def _is_ssm(node) -> bool:
    return isinstance(node, DiagonalSSM)


def param_labels(params: PyTree) -> PyTree:
    """A pytree like `params` with "ssm" on the SSM leaves (`SSM_LEAVES`) and "rest" elsewhere."""

    def ssm_leaves(tree):
        nodes = [node for node in jax.tree.leaves(tree, is_leaf=_is_ssm) if _is_ssm(node)]
        return [getattr(node, name) for node in nodes for name in SSM_LEAVES]

    labels = jax.tree.map(lambda _: "rest", params)
    return eqx.tree_at(ssm_leaves, labels, replace=["ssm"] * len(ssm_leaves(labels)))


def warmup_cosine(lr: float, total_steps: int, warmup_frac: float) -> optax.Schedule:
    """Linear warmup from 0 over `warmup_frac` of the steps, then cosine decay to 0."""
    warmup = max(1, int(round(warmup_frac * total_steps)))
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))


def s4d_optimizer(*, lr: float, lr_ssm: float, weight_decay: float, total_steps: int,
                  warmup_frac: float = 0.05) -> optax.GradientTransformation:
    """AdamW with the two groups of the module docstring; labels come from the parameters it is given."""
    return optax.multi_transform(
        {
            "ssm": optax.adamw(warmup_cosine(lr_ssm, total_steps, warmup_frac), weight_decay=0.0),
            "rest": optax.adamw(warmup_cosine(lr, total_steps, warmup_frac), weight_decay=weight_decay),
        },
        param_labels,  # a function: the label tree is itself a (callable) Module
    )
