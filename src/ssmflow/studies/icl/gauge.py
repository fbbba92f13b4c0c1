"""Sublayer roles and the gauge fixing (25) of the icl study's GD-SSM parameters.

NumPy only: the figures use it on stored snapshots without importing JAX.
"""

from __future__ import annotations

import numpy as np

ROLE_YX, ROLE_XX = 0, 1


def sublayer_roles(blocks: int) -> tuple[int, ...]:
    """Roles of the 2K-1 sublayers of K blocks: yx_1, then (xx_b, yx_b) for b = 2..K."""
    return (ROLE_YX,) + (ROLE_XX, ROLE_YX) * (blocks - 1)


def gauge_fix(wq: np.ndarray, C: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauge fixing (25) of K-block GD-SSM parameters: (What_q, Chat, Dhat), the same function.

    Each sublayer's W_q is divided by alpha = ||W_q||_F sgn(role entry) ((1,2) for yx,
    (1,1)+(3,3) for xx), D by delta = ||D|| sgn(D[3]); C is multiplied by alpha (and by
    delta in yx sublayers, which carry D's scale).

    **Arguments:** `wq` (..., sublayer, 3, 3), `C` (..., sublayer, H, H), `D` (..., 3).
    """
    roles = np.array(sublayer_roles((wq.shape[-3] + 1) // 2))
    yx = roles == ROLE_YX
    entry = np.where(yx, wq[..., 0, 1], wq[..., 0, 0] + wq[..., 2, 2])
    alpha = np.linalg.norm(wq, axis=(-2, -1)) * np.sign(entry)
    delta = np.linalg.norm(D, axis=-1) * np.sign(D[..., 2])
    chat = C * (alpha * np.where(yx, delta[..., None], 1.0))[..., None, None]
    return wq / alpha[..., None, None], chat, D / delta[..., None]
