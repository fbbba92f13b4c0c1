"""Comparison metrics of the icl study (spec section 10).

Functional (10.1), per eval set: preds_diff (22), model_cos (23) and model_diff (24) of
a model's query predictions and query sensitivities J = d yhat_q / d x_q against K-step
GD. Parameters (10.2): gauge fixing (25) of (W_q, C, D) and the alignments it defines.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, Float
from ssmflow.studies.icl.gauge import ROLE_YX, gauge_fix, sublayer_roles

COS_FLOOR = 1e-12


def functional_metrics(
    yhat: Float[Array, "task dy"], J: Float[Array, "task dy d"] | None, yhat_gd: Float[Array, "task dy"],
    J_gd: Float[Array, "task dy d"] | None,
) -> dict[str, Float[Array, ""]]:
    """(22)-(24) and their relative forms; the Jacobian metrics only when both J are given.

    preds_diff_rel = preds_diff / mean ||yhat_GD||; model_diff_rel = model_diff / mean_r ||J_GD[r, :]||
    (means over tasks and rows).
    """
    out = {"preds_diff": jnp.mean(jnp.linalg.norm(yhat - yhat_gd, axis=-1))}
    out["preds_diff_rel"] = out["preds_diff"] / jnp.mean(jnp.linalg.norm(yhat_gd, axis=-1))
    if J is not None and J_gd is not None:
        n_model, n_gd = jnp.linalg.norm(J, axis=-1), jnp.linalg.norm(J_gd, axis=-1)
        cos = jnp.sum(J * J_gd, axis=-1) / jnp.maximum(n_model * n_gd, COS_FLOOR)
        out["model_cos"] = jnp.mean(cos)
        out["model_diff"] = jnp.mean(jnp.linalg.norm(J - J_gd, axis=-1))
        out["model_diff_rel"] = out["model_diff"] / jnp.mean(n_gd)
    return out


def gauge_alignment(
    wq: np.ndarray, C: np.ndarray, D: np.ndarray, lbar: np.ndarray, c_star: np.ndarray, *, n_norm: int, pred_sign: float = -1.0,
) -> dict[str, np.ndarray]:
    """Symmetry-invariant parameter alignment (25) of K-block GD-SSMs.

    Each sublayer's W_q is normalised with its sign fixed by its role entry ((1,2) for
    yx, (1,1)+(3,3) for xx), D by D[3]; C absorbs the scales (yx sublayers also D's).

    **Arguments:** `wq` (..., sublayer, 3, 3), `C` and `lbar` (..., sublayer, H, H), `D`
    (..., 3), `c_star` (sublayer, H, H) the constructed C at eta*_K, `n_norm` the N
    (or H with c_norm P) of C* = -(eta/n_norm) I.
    **Returns:** align_wq, align_c, gain_ratio, eta_hat, lambda_mean, lambda_min
    (..., sublayer) and align_d (...).
    """
    yx = np.array(sublayer_roles((wq.shape[-3] + 1) // 2)) == ROLE_YX
    what, chat, dhat = gauge_fix(wq, C, D)
    h = C.shape[-1]
    tr_star = np.trace(c_star, axis1=-2, axis2=-1)
    tr_hat = np.trace(chat, axis1=-2, axis2=-1)
    align_c = np.sum(chat * c_star, axis=(-2, -1)) / (np.linalg.norm(chat, axis=(-2, -1)) * np.linalg.norm(c_star, axis=(-2, -1)))
    align_wq = np.where(yx, what[..., 0, 1], np.hypot(what[..., 0, 0], what[..., 2, 2]))
    return {
        "align_wq": align_wq,
        "align_c": align_c,
        "gain_ratio": tr_hat / tr_star,
        "eta_hat": np.where(yx, pred_sign, -1.0) * n_norm * tr_hat / h,
        "lambda_mean": lbar.mean(axis=(-2, -1)),
        "lambda_min": lbar.min(axis=(-2, -1)),
        "align_d": dhat[..., 2],
    }
