"""The non-linear extension (icl spec section 7): token embedding, one GD-SSM layer, gated head.

    h = out_N (.) sigmoid(W_g GELU(out_N) + b_g),    yhat_q = pred_sign * (w_o^T h + b_o)    (20)
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ssmflow._types import Array, Float
from ssmflow.studies.icl.model import GDSSM

EMBEDS = ("linear", "mlp")


class LinearEmbed(eqx.Module):
    """phi(u) = w_e u + b_e (`embed: linear`, official)."""

    w: Float[Array, " P"]
    b: Float[Array, " P"]

    def __call__(self, u: Float[Array, " 1"]) -> Float[Array, " P"]:
        return self.w * u[0] + self.b


class MLPEmbed(eqx.Module):
    """phi(u) = W_2 GELU(W_1 u + b_1) + b_2 (`embed: mlp`)."""

    W1: Float[Array, "hidden 1"]
    b1: Float[Array, " hidden"]
    W2: Float[Array, "P hidden"]
    b2: Float[Array, " P"]

    def __call__(self, u: Float[Array, " 1"]) -> Float[Array, " P"]:
        return self.W2 @ jax.nn.gelu(self.W1 @ u + self.b1) + self.b2


class SineGDSSM(eqx.Module):
    """Embedding, one GD-SSM layer of width P and the gated head (20)."""

    embed: LinearEmbed | MLPEmbed
    core: GDSSM
    W_g: Float[Array, "P P"]
    b_g: Float[Array, " P"]
    w_o: Float[Array, " P"]
    b_o: Float[Array, ""]

    def query(self, tokens: Float[Array, "seq 1"]) -> Float[Array, " 1"]:
        """yhat_q (a vector of length 1)."""
        out = self.core.query_output(jax.vmap(self.embed)(tokens))
        h = out * jax.nn.sigmoid(self.W_g @ jax.nn.gelu(out) + self.b_g)
        return self.core.pred_sign * (self.w_o @ h + self.b_o)[None]


def make_embed(kind: str, key, P: int, hidden: int, dtype) -> LinearEmbed | MLPEmbed:
    """A random embedding: lecun-normal weights, zero biases."""
    if kind not in EMBEDS:
        raise ValueError(f"`embed` (={kind!r}) must be one of {EMBEDS}.")
    k1, k2 = jax.random.split(key)
    if kind == "linear":
        return LinearEmbed(w=jax.random.normal(k1, (P,), dtype), b=jnp.zeros(P, dtype))
    return MLPEmbed(W1=jax.random.normal(k1, (hidden, 1), dtype), b1=jnp.zeros(hidden, dtype),
                    W2=jax.random.normal(k2, (P, hidden), dtype) / jnp.sqrt(hidden), b2=jnp.zeros(P, dtype))
