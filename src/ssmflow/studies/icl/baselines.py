"""Baselines and ablations of the icl study (spec section 8).

- `LSA`: one-layer linear self-attention of von Oswald et al. 2023, eq. (21);
- `LTISSM`: an LTI diagonal complex SSM (ZOH, S4D-Lin init) with no multiplicative
  interaction (8.2);
- `NoGateSSM`: the GD-SSM state read out linearly, without the output gate (8.3b);
  (the `diag_wq` ablation (8.3a) is a flag of `GDSSM`);
- `gated_token_query`: the gated-token SSM of 8.4 (v2 view, scalar-y), construction only.

Every model exposes `query(tokens) -> yhat_q` and `query_jacobian(tokens) -> d yhat_q / d x_q`
on the token sequence (2), like `GDSSM`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ssmflow._types import Array, Float
from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.studies.icl.model import bilinear_window, decay, final_state, windows


def _jacobian_last_token(fn, tokens: Float[Array, "seq H"]) -> Float[Array, "H H"]:
    return jax.jacfwd(lambda xq: fn(tokens.at[-1].set(xq)))(tokens[-1])


def lsa_tokens(tokens: Float[Array, "seq H"]) -> Float[Array, "pair E"]:
    """e_j = [x_j; ytil_j] for the N context pairs and e_q = [x_q; 0] (last row), E = 2H."""
    x, ytil = tokens[0::2], tokens[1::2]
    return jnp.concatenate([x, jnp.concatenate([ytil, jnp.zeros_like(x[:1])])], axis=1)


class LSA(eqx.Module):
    """Linear self-attention, one layer, one head (21): e_q' = e_q + P W_V (sum_j e_j e_j^T) W_K^T W_Q e_q.

    **Fields:** `P`, `W_V`, `W_K`, `W_Q`, each (2H, 2H); static `pred_sign`.
    """

    P: Float[Array, "E E"]
    W_V: Float[Array, "E E"]
    W_K: Float[Array, "E E"]
    W_Q: Float[Array, "E E"]
    pred_sign: float = eqx.field(static=True, default=-1.0)

    def query(self, tokens: Float[Array, "seq H"]) -> Float[Array, " H"]:
        """yhat_q = pred_sign * (y-block of e_q'); the sum runs over all N+1 tokens."""
        e = lsa_tokens(tokens)
        h = tokens.shape[1]
        q = self.W_K.T @ (self.W_Q @ e[-1])
        update = self.P @ (self.W_V @ (e.T @ (e @ q)))
        return self.pred_sign * (e[-1] + update)[h:]

    def query_jacobian(self, tokens: Float[Array, "seq H"]) -> Float[Array, "H H"]:
        return _jacobian_last_token(self.query, tokens)

    @classmethod
    def constructed(cls, eta: float, n_context: int, H: int, *, pred_sign: float = -1.0, dtype=None) -> LSA:
        """W_K = W_Q = [[I, 0], [0, 0]], W_V = [[0, 0], [0, pred_sign I]], P = (eta/N) I: one GD step."""
        dtype = dtype or jnp.result_type(float)
        eye, zero = jnp.eye(H, dtype=dtype), jnp.zeros((H, H), dtype)
        wk = jnp.block([[eye, zero], [zero, zero]])
        wv = jnp.block([[zero, zero], [zero, pred_sign * eye]])
        return cls(P=(eta / n_context) * jnp.eye(2 * H, dtype=dtype), W_V=wv, W_K=wk, W_Q=wk, pred_sign=pred_sign)


class LTISSM(eqx.Module):
    """LTI diagonal SSM (8.2): h_t = Lbar (.) h_{t-1} + Bbar u_t, out_t = Re(C h_t) + D (.) u_t, ZOH.

    Complex parameters are stored as real and imaginary parts. **Fields:** `lam_re`,
    `lam_im`, `log_step` (state,), `B_re`, `B_im` (state, H), `C_re`, `C_im` (H, state), `D` (H,).
    """

    lam_re: Float[Array, " state"]
    lam_im: Float[Array, " state"]
    log_step: Float[Array, " state"]
    B_re: Float[Array, "state H"]
    B_im: Float[Array, "state H"]
    C_re: Float[Array, "H state"]
    C_im: Float[Array, "H state"]
    D: Float[Array, " H"]
    pred_sign: float = eqx.field(static=True, default=-1.0)

    def _discrete(self):
        """ZOH (`ssm.discretize_zoh`, B = 1 per mode, then the (state, H) input matrix)."""
        lam = self.lam_re + 1j * self.lam_im
        disc = discretize_zoh(lam, jnp.ones_like(lam), jnp.exp(self.log_step))
        return disc.log_abar, disc.abar, disc.bbar[:, None] * (self.B_re + 1j * self.B_im)

    def _readout(self, h, u_last):
        return self.pred_sign * (jnp.real((self.C_re + 1j * self.C_im) @ h) + self.D * u_last)

    def _prefix_state(self, tokens):
        """h_{L-1}: the state after all tokens but the query, in closed form."""
        lam_dt, _, bbar = self._discrete()
        k = jnp.arange(tokens.shape[0] - 2, -1, -1, dtype=tokens.dtype)
        powers = jnp.exp(k[:, None] * lam_dt[None, :])
        return jnp.einsum("tp,pi,ti->p", powers, bbar, tokens[:-1])

    def query(self, tokens: Float[Array, "seq H"]) -> Float[Array, " H"]:
        """yhat_q = pred_sign * out_{2N+1}."""
        _, lbar, bbar = self._discrete()
        return self._readout(lbar * self._prefix_state(tokens) + bbar @ tokens[-1], tokens[-1])

    def query_jacobian(self, tokens: Float[Array, "seq H"]) -> Float[Array, "H H"]:
        _, lbar, bbar = self._discrete()
        h_prev = self._prefix_state(tokens)
        return jax.jacfwd(lambda xq: self._readout(lbar * h_prev + bbar @ xq, xq))(tokens[-1])


class NoGateSSM(eqx.Module):
    """GD-SSM state read out without the gate (8.3b): yhat_q = pred_sign * (R vec(S_N) + c)."""

    wq: Float[Array, "3 3"]
    lam: Float[Array, "H H"]
    log_step: Float[Array, " H"]
    R: Float[Array, "H HH"]
    c: Float[Array, " H"]
    pred_sign: float = eqx.field(static=True, default=-1.0)

    def query(self, tokens: Float[Array, "seq H"]) -> Float[Array, " H"]:
        s_n = final_state(decay(self.lam, self.log_step), bilinear_window(windows(tokens), self.wq))
        return self.pred_sign * (self.R @ s_n.reshape(-1) + self.c)

    def query_jacobian(self, tokens: Float[Array, "seq H"]) -> Float[Array, "H H"]:
        return _jacobian_last_token(self.query, tokens)


def gated_token_query(
    x: Float[Array, "pair d"], y: Float[Array, " n"], lbar: Float[Array, " d"], bbar: Float[Array, "d dd"],
    G: Float[Array, "d dd"],
) -> Float[Array, ""]:
    """Gated-token SSM (8.4, scalar-y): v_i = [y_i x_i; x_{i+1}], h_i = Lbar (.) h_{i-1} + Bbar v_i,
    yhat_q = -h_N . (G v_N). `x` holds x_1..x_N and x_q (last)."""
    v = jnp.concatenate([y[:, None] * x[:-1], x[1:]], axis=1)
    powers = lbar ** jnp.arange(v.shape[0] - 1, -1, -1, dtype=v.dtype)[:, None]
    h = jnp.sum(powers * (v @ bbar.T), axis=0)
    return -h @ (G @ v[-1])


def gated_token_constructed(eta: float, n_context: int, d: int, dtype=None):
    """(Lbar, Bbar, G) of 8.4 giving one GD step: Lbar = 1, Bbar = -(eta/N)[I, 0], G = [0, I]."""
    dtype = dtype or jnp.result_type(float)
    eye, zero = jnp.eye(d, dtype=dtype), jnp.zeros((d, d), dtype)
    return jnp.ones(d, dtype), -(eta / n_context) * jnp.concatenate([eye, zero], axis=1), jnp.concatenate([zero, eye], axis=1)
