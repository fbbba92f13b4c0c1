"""Random initialisations of the icl models (spec sections 4, 7, 8), official defaults.

GD-SSM: W_q ~ N(0, 0.1^2), lam = -0.5 (real part of the HiPPO-LegS eigenvalues),
log_step ~ U[log 1e-3, log 1e-1], D ~ N(0, 1), and C either `hippo` (Re(Ctil V), Ctil
complex lecun-normal, V block-diagonal (2 blocks) eigenvectors of the normal HiPPO-LegS
part, as S5 initialises C) or `lecun` (N(0, 1/H)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ssmflow.ssm.hippo import legs_normal_part
from ssmflow.studies.icl.baselines import LSA, LTISSM, NoGateSSM
from ssmflow.studies.icl.model import GDSSM
from ssmflow.studies.icl.nonlinear import SineGDSSM, make_embed

C_INITS = ("hippo", "lecun")
LOG_STEP_RANGE = (np.log(1e-3), np.log(1e-1))


def hippo_legs_normal_eigenvectors(n: int) -> np.ndarray:
    """Unitary eigenvectors V (n, n) of the normal part A + P P^T of HiPPO-LegS (any n >= 1).

    The normal part is -I/2 + (skew-symmetric), so V diagonalises the Hermitian matrix
    -i (A + P P^T + I/2) (Gu et al. 2022; Smith et al. 2023, S5).
    """
    _, v = np.linalg.eigh(-1j * (legs_normal_part(n) + 0.5 * np.eye(n)))
    return v


def hippo_block_eigenvectors(H: int, blocks: int = 2) -> np.ndarray:
    """Block-diagonal V (H, H) with `blocks` blocks (sizes as equal as possible)."""
    sizes = [s for s in np.diff(np.linspace(0, H, blocks + 1).round().astype(int)) if s > 0]
    return scipy.linalg.block_diag(*[hippo_legs_normal_eigenvectors(s) for s in sizes])


def init_c(key, H: int, c_init: str, dtype) -> jax.Array:
    """One readout matrix C (H, H)."""
    if c_init not in C_INITS:
        raise ValueError(f"`c_init` (={c_init!r}) must be one of {C_INITS}.")
    kr, ki = jax.random.split(key)
    if c_init == "lecun":
        return jax.random.normal(kr, (H, H), dtype) / np.sqrt(H)
    v = jnp.asarray(hippo_block_eigenvectors(H))
    ctil = (jax.random.normal(kr, (H, H)) + 1j * jax.random.normal(ki, (H, H))) / np.sqrt(H)
    return jnp.real(ctil @ v).astype(dtype)


def init_log_step(key, shape, dtype) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, *LOG_STEP_RANGE)


def init_gdssm(key, H: int, blocks: int, *, c_init: str = "hippo", pred_sign: float = -1.0, clip_decay: bool = False,
               diag_wq: bool = False, dtype=None) -> GDSSM:
    """A random K-block GD-SSM (every sublayer drawn independently)."""
    dtype = dtype or jnp.result_type(float)
    n_sub = 2 * blocks - 1
    kw, ks, kc, kd = jax.random.split(key, 4)
    C = jnp.stack([init_c(k, H, c_init, dtype) for k in jax.random.split(kc, n_sub)])
    return GDSSM(
        wq=0.1 * jax.random.normal(kw, (n_sub, 3, 3), dtype), lam=jnp.full((n_sub, H, H), -0.5, dtype),
        log_step=init_log_step(ks, (n_sub, H), dtype), C=C, D=jax.random.normal(kd, (3,), dtype),
        pred_sign=pred_sign, clip_decay=clip_decay, diag_wq=diag_wq,
    )


def init_lsa(key, H: int, *, pred_sign: float = -1.0, scale: float = 0.002, dtype=None) -> LSA:
    """LSA with every matrix N(0, 0.002^2) (8.1)."""
    dtype = dtype or jnp.result_type(float)
    k = jax.random.split(key, 4)
    m = [scale * jax.random.normal(ki, (2 * H, 2 * H), dtype) for ki in k]
    return LSA(P=m[0], W_V=m[1], W_K=m[2], W_Q=m[3], pred_sign=pred_sign)


def init_lti(key, H: int, *, state: int = 64, pred_sign: float = -1.0, dtype=None) -> LTISSM:
    """LTI SSM with S4D-Lin poles -1/2 + i pi n, lecun-normal complex B and C, D ~ N(0, 1)."""
    dtype = dtype or jnp.result_type(float)
    k = jax.random.split(key, 6)
    return LTISSM(
        lam_re=jnp.full(state, -0.5, dtype), lam_im=jnp.pi * jnp.arange(state, dtype=dtype),
        log_step=init_log_step(k[0], (state,), dtype),
        B_re=jax.random.normal(k[1], (state, H), dtype) / np.sqrt(2 * H), B_im=jax.random.normal(k[2], (state, H), dtype) / np.sqrt(2 * H),
        C_re=jax.random.normal(k[3], (H, state), dtype) / np.sqrt(2 * state),
        C_im=jax.random.normal(k[4], (H, state), dtype) / np.sqrt(2 * state),
        D=jax.random.normal(k[5], (H,), dtype), pred_sign=pred_sign,
    )


def init_nogate(key, H: int, *, pred_sign: float = -1.0, dtype=None) -> NoGateSSM:
    """GD-SSM state without the gate: W_q, lam, log_step as `init_gdssm`; R lecun-normal, c = 0."""
    dtype = dtype or jnp.result_type(float)
    kw, ks, kr = jax.random.split(key, 3)
    return NoGateSSM(
        wq=0.1 * jax.random.normal(kw, (3, 3), dtype), lam=jnp.full((H, H), -0.5, dtype),
        log_step=init_log_step(ks, (H,), dtype), R=jax.random.normal(kr, (H, H * H), dtype) / H,
        c=jnp.zeros(H, dtype), pred_sign=pred_sign,
    )


def init_sine(key, P: int, embed: str, *, hidden: int = 64, c_init: str = "hippo", pred_sign: float = -1.0,
              clip_decay: bool = False, dtype=None) -> SineGDSSM:
    """Embedding + one GD-SSM layer of width P + gated head (20); head weights lecun-normal, biases 0."""
    dtype = dtype or jnp.result_type(float)
    ke, kc, kg, ko = jax.random.split(key, 4)
    return SineGDSSM(
        embed=make_embed(embed, ke, P, hidden, dtype),
        core=init_gdssm(kc, P, 1, c_init=c_init, pred_sign=pred_sign, clip_decay=clip_decay, dtype=dtype),
        W_g=jax.random.normal(kg, (P, P), dtype) / np.sqrt(P), b_g=jnp.zeros(P, dtype),
        w_o=jax.random.normal(ko, (P,), dtype) / np.sqrt(P), b_o=jnp.zeros((), dtype),
    )
