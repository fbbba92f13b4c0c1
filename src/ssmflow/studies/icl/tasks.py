"""In-context regression tasks (icl spec section 2): linear (vector-y, scalar-y) and sine.

A batch holds `batch` independent tasks. Each task is a token sequence (2): the context
pairs interleaved, x_1, ytil_1, ..., x_N, ytil_N, then the query x_q, with the query
target y_q kept aside. Conventions C1-C2: x ~ U(-r/2, r/2) i.i.d., W ~ N(0, s^2), no
label noise.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ssmflow._types import Array, Float, PRNGKeyArray

VARIANTS = ("vector", "scalar")
SINE_DRAWS = ("independent", "shared")


class Tasks(NamedTuple):
    """A batch of tasks.

    - `tokens`: (batch, 2N+1, H) the model input (2);
    - `x`: (batch, N+1, d) context inputs then the query input x_q;
    - `y`: (batch, N+1, d_y) context targets then the query target y_q;
    - `w`: the task parameters: W (batch, d_y, d) for linear tasks, (a, phi) (batch, 2) for sine.
    """

    tokens: Float[Array, "batch seq H"]
    x: Float[Array, "batch pair d"]
    y: Float[Array, "batch pair dy"]
    w: Array


def interleave(x: Float[Array, "batch pair H"], ytil: Float[Array, "batch pair H"]) -> Float[Array, "batch seq H"]:
    """Tokens (2): x_1, ytil_1, ..., x_N, ytil_N, x_q from N+1 inputs and N+1 (or N) labels."""
    batch, pairs, width = x.shape
    n = pairs - 1
    body = jnp.stack([x[:, :n], ytil[:, :n]], axis=2).reshape(batch, 2 * n, width)
    return jnp.concatenate([body, x[:, n:]], axis=1)


def linear_tasks(
    key: PRNGKeyArray,
    batch: int,
    d: int,
    n_context: int,
    *,
    variant: str = "vector",
    input_range: float = 1.0,
    weight_scale: float = 1.0,
    dtype=jnp.float32,
) -> Tasks:
    """Linear regression tasks y = W x (1), tokens (2).

    Vector-y: d_y = d, ytil = y. Scalar-y: d_y = 1, W = w^T, ytil = y e_d (the label sits
    in the last coordinate of an otherwise zero token).

    **Returns:** `Tasks` with tokens (batch, 2N+1, d).
    """
    if variant not in VARIANTS:
        raise ValueError(f"`variant` (={variant!r}) must be one of {VARIANTS}.")
    kx, kw = jax.random.split(key)
    half = 0.5 * input_range
    x = jax.random.uniform(kx, (batch, n_context + 1, d), dtype, -half, half)
    d_y = d if variant == "vector" else 1
    w = weight_scale * jax.random.normal(kw, (batch, d_y, d), dtype)
    y = jnp.einsum("bed,bnd->bne", w, x)
    ytil = y if variant == "vector" else jnp.zeros_like(x).at[..., -1].set(y[..., 0])
    return Tasks(interleave(x, ytil), x, y, w)


def sine_tasks(
    key: PRNGKeyArray,
    batch: int,
    n_context: int,
    *,
    draw: str = "independent",
    input_range: float = 1.0,
    dtype=jnp.float32,
) -> Tasks:
    """Sine regression tasks y = a sin(x + phi) (section 2.2), scalar tokens.

    `draw="independent"`: a ~ U(0.1, 0.5) and phi ~ U(0, pi) independently;
    `draw="shared"` (official generator): one u ~ U(0, 1) gives a = 0.1 + 0.4 u, phi = pi u.

    **Returns:** `Tasks` with tokens (batch, 2N+1, 1) and w = (a, phi) (batch, 2).
    """
    if draw not in SINE_DRAWS:
        raise ValueError(f"`draw` (={draw!r}) must be one of {SINE_DRAWS}.")
    kx, ka, kp = jax.random.split(key, 3)
    half = 0.5 * input_range
    x = jax.random.uniform(kx, (batch, n_context + 1, 1), dtype, -half, half)
    u_a = jax.random.uniform(ka, (batch,), dtype)
    u_p = u_a if draw == "shared" else jax.random.uniform(kp, (batch,), dtype)
    a, phi = 0.1 + 0.4 * u_a, jnp.pi * u_p
    y = a[:, None, None] * jnp.sin(x + phi[:, None, None])
    return Tasks(interleave(x, y), x, y, jnp.stack([a, phi], axis=1))


def query_loss(yhat: Float[Array, "batch dy"], y_q: Float[Array, "batch dy"]) -> Float[Array, ""]:
    """Loss (3): (1/(2 d_y)) E ||y_q - yhat_q||^2, the mean over the batch."""
    return 0.5 * jnp.mean(jnp.sum((y_q - yhat) ** 2, axis=-1)) / y_q.shape[-1]
