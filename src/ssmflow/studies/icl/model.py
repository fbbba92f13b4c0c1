"""The GD-SSM layer (icl spec sections 4-6): windows, bilinear form, decayed state, gated readout.

Pure functions, one equation each, then `GDSSM`, which holds the parameters of K blocks
(2K-1 sublayers with roles yx_1, xx_2, yx_2, ..., xx_K, yx_K, one shared gate D) and
calls them. With K = 1 it is the single layer of section 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, ArrayLike, Float
from ssmflow.studies.icl.gauge import ROLE_YX, sublayer_roles

C_NORMS = ("N", "P")


def windows(tokens: Float[Array, "seq H"]) -> Float[Array, "window 3 H"]:
    """Windows (11) of width 3 and stride 2: U_k = [x_k; ytil_k; x_{k+1}], k = 1..N."""
    n = (tokens.shape[0] - 1) // 2
    return jnp.stack([tokens[0 : 2 * n - 1 : 2], tokens[1 : 2 * n : 2], tokens[2 : 2 * n + 1 : 2]], axis=-2)


def bilinear_window(U: Float[Array, "*window 3 H"], wq: Float[Array, "3 3"]) -> Float[Array, "*window H H"]:
    """Local bilinear self-attention (12): A_k = U_k^T W_q U_k = sum_ab (W_q)_ab u_a u_b^T."""
    return jnp.einsum("...ai,ab,...bj->...ij", U, wq, U)


def decay(lam: Float[Array, "H H"], log_step: Float[Array, " H"], clip: bool = False) -> Float[Array, "H H"]:
    """Real ZOH decay (14): Lbar_ij = exp(lam_ij Delta_i), Delta_i = exp(log_step_i); clipped to (0, 1] if `clip`."""
    lbar = jnp.exp(lam * jnp.exp(log_step)[:, None])
    return jnp.minimum(lbar, 1.0) if clip else lbar


def _combine(left, right):
    """Composition of two affine maps S -> a (.) S + b (left first): the scan's operator."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def scan_parallel(lbar: Float[Array, "H H"], A: Float[Array, "window H H"]) -> Float[Array, "window H H"]:
    """States (13), S_k = Lbar (.) S_{k-1} + A_k, S_0 = 0, by a parallel associative scan."""
    return jax.lax.associative_scan(_combine, (jnp.broadcast_to(lbar, A.shape), A))[1]


def scan_sequential(lbar: Float[Array, "H H"], A: Float[Array, "window H H"]) -> Float[Array, "window H H"]:
    """States (13) by a sequential `lax.scan` (the reference for `scan_parallel`)."""

    def step(s, a):
        s = lbar * s + a
        return s, s

    return jax.lax.scan(step, jnp.zeros_like(A[0]), A)[1]


def final_state(lbar: Float[Array, "H H"], A: Float[Array, "window H H"]) -> Float[Array, "H H"]:
    """The last state of (13) in closed form: S_N = sum_i Lbar^(N-i) (.) A_i (zero for no windows)."""
    powers = lbar ** jnp.arange(A.shape[0] - 1, -1, -1, dtype=A.dtype)[:, None, None]
    return jnp.einsum("kij,kij->ij", powers, A)  # an einsum: XLA CPU runs it ~5x faster than multiply + sum


def gate(U: Float[Array, "*window 3 H"], D: Float[Array, " 3"]) -> Float[Array, "*window H"]:
    """Output gate input (15): o_k = U_k^T D = sum_a D_a u_{k,a}."""
    return jnp.einsum("...ai,a->...i", U, D)


def readout(C: Float[Array, "H H"], S: Float[Array, "*window H H"]) -> Float[Array, "*window H H"]:
    """Readout matrix (15): Z_k = C S_k^T."""
    return jnp.einsum("ij,...mj->...im", C, S)


def apply_blocks(C: Float[Array, "sublayer H H"], S: Float[Array, "sublayer H H"], o: Float[Array, " H"]) -> Float[Array, " H"]:
    """E_K o of (19) by matrix-vector products only: Z v = C (S^T v) and
    E_b v = E_{b-1} v + E_{b-1} (Z^{xx_b} v) + Z^{yx_b} v (2^(K-1) - 1 extra products, no H^3)."""

    def z(s, v):
        return C[s] @ (S[s].T @ v)

    def e(b, v):
        if b == 1:
            return z(0, v)
        return e(b - 1, v) + e(b - 1, z(2 * b - 3, v)) + z(2 * b - 2, v)

    return e((C.shape[0] + 1) // 2, o)


def compose_blocks(Z: Float[Array, "sublayer *window H H"]) -> Float[Array, "*window H H"]:
    """Stacked blocks (19): E_1 = Z^{yx_1}, E_b = E_{b-1} + E_{b-1} Z^{xx_b} + Z^{yx_b}."""
    E = Z[0]
    for b in range(1, (Z.shape[0] + 1) // 2):
        E = E + E @ Z[2 * b - 1] + Z[2 * b]
    return E


class GDSSM(eqx.Module):
    """GD-SSM with K blocks (2K-1 sublayers, shared gate D); K = 1 is one layer (section 4).

    **Fields:** `wq` (sublayer, 3, 3), `lam` (sublayer, H, H), `log_step` (sublayer, H),
    `C` (sublayer, H, H), `D` (3,); static `pred_sign` (C3), `clip_decay` and `diag_wq`
    (ablation 8.3a: only the diagonal of W_q acts).
    """

    wq: Float[Array, "sublayer 3 3"]
    lam: Float[Array, "sublayer H H"]
    log_step: Float[Array, "sublayer H"]
    C: Float[Array, "sublayer H H"]
    D: Float[Array, " 3"]
    pred_sign: float = eqx.field(static=True, default=-1.0)
    clip_decay: bool = eqx.field(static=True, default=False)
    diag_wq: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        n_sub = self.wq.shape[0]
        if n_sub % 2 != 1:
            raise ValueError(f"`wq` has {n_sub} sublayers; K blocks need 2K-1 (an odd number).")

    @property
    def blocks(self) -> int:
        return (self.wq.shape[0] + 1) // 2

    def effective_wq(self) -> Float[Array, "sublayer 3 3"]:
        return self.wq * jnp.eye(3, dtype=self.wq.dtype) if self.diag_wq else self.wq

    def decays(self) -> Float[Array, "sublayer H H"]:
        """Lbar (14) of every sublayer."""
        return jax.vmap(decay, in_axes=(0, 0, None))(self.lam, self.log_step, self.clip_decay)

    def states(self, tokens: Float[Array, "seq H"], parallel: bool = True) -> Float[Array, "sublayer window H H"]:
        """Prefix states S_k (13) of every sublayer at every window."""
        U = windows(tokens)
        A = jax.vmap(bilinear_window, in_axes=(None, 0))(U, self.effective_wq())
        return jax.vmap(scan_parallel if parallel else scan_sequential)(self.decays(), A)

    def outputs(self, tokens: Float[Array, "seq H"], parallel: bool = True) -> Float[Array, "window H"]:
        """out_k = E_k o_k (15)/(19) at every window k = 1..N."""
        Z = jax.vmap(readout)(self.C, self.states(tokens, parallel))
        return jnp.einsum("kij,kj->ki", compose_blocks(Z), gate(windows(tokens), self.D))

    def __call__(self, tokens: Float[Array, "seq H"], parallel: bool = True) -> Float[Array, "window H"]:
        """Predictions yhat_{k+1} = pred_sign * out_k at every window; the last row is the query's."""
        return self.pred_sign * self.outputs(tokens, parallel)

    def _last_output(self, s_prev: Float[Array, "sublayer H H"], U_last: Float[Array, "3 H"]) -> Float[Array, " H"]:
        """out_N from the state before the last window and the last window itself."""
        A = jax.vmap(bilinear_window, in_axes=(None, 0))(U_last, self.effective_wq())
        S = self.decays() * s_prev + A
        return apply_blocks(self.C, S, gate(U_last, self.D))

    def _prefix(self, tokens: Float[Array, "seq H"]) -> tuple[Float[Array, "sublayer H H"], Float[Array, "3 H"]]:
        U = windows(tokens)
        A = jax.vmap(bilinear_window, in_axes=(None, 0))(U[:-1], self.effective_wq())
        return jax.vmap(final_state)(self.decays(), A), U[-1]

    def query_output(self, tokens: Float[Array, "seq H"]) -> Float[Array, " H"]:
        """out_N, the raw output at the query window (closed-form last state, no scan)."""
        return self._last_output(*self._prefix(tokens))

    def query(self, tokens: Float[Array, "seq H"]) -> Float[Array, " H"]:
        """yhat_q = pred_sign * out_N."""
        return self.pred_sign * self.query_output(tokens)

    def query_jacobian(self, tokens: Float[Array, "seq H"]) -> Float[Array, "H H"]:
        """J = d yhat_q / d x_q through every path (x_q enters A_N and o_N only)."""
        s_prev, U_last = self._prefix(tokens)
        return jax.jacfwd(lambda xq: self.pred_sign * self._last_output(s_prev, U_last.at[2].set(xq)))(U_last[2])

    @classmethod
    def constructed(
        cls, eta: float | Sequence[float] | ArrayLike, n_context: int, H: int, *, c_norm: str = "N",
        pred_sign: float = -1.0, dtype=None,
    ) -> GDSSM:
        """The theoretical parameters (17) (one eta) or (19) (one eta per block, K = len(eta)).

        yx sublayers W_q = E_12 and C = pred_sign (eta_b / N) I; xx sublayers W_q = E_11 and
        C = -(eta_b / N) I (N -> H with `c_norm="P"`); Lbar = 1 (lam = 0); D = e_3.
        """
        if c_norm not in C_NORMS:
            raise ValueError(f"`c_norm` (={c_norm!r}) must be one of {C_NORMS}.")
        etas = np.atleast_1d(np.asarray(eta, dtype=float))
        dtype = dtype or jnp.result_type(float)
        roles = sublayer_roles(len(etas))
        norm = n_context if c_norm == "N" else H
        wq = np.zeros((len(roles), 3, 3))
        scale = np.zeros(len(roles))
        for s, role in enumerate(roles):
            wq[s, 0, 1 if role == ROLE_YX else 0] = 1.0
            scale[s] = (pred_sign if role == ROLE_YX else -1.0) * etas[(s + 1) // 2] / norm
        C = scale[:, None, None] * np.eye(H)
        return cls(
            wq=jnp.asarray(wq, dtype), lam=jnp.zeros((len(roles), H, H), dtype), log_step=jnp.zeros((len(roles), H), dtype),
            C=jnp.asarray(C, dtype), D=jnp.asarray([0.0, 0.0, 1.0], dtype), pred_sign=pred_sign,
        )
