"""HiPPO-LegS (Gu et al. 2020) and the normal part behind S4D-LegS (Gu et al. 2022, eqs. 8-9).

Pure NumPy in float64: these are fixed matrices computed once on the host, and their
eigendecomposition uses `eigh` of the Hermitian -i S, never a general `eig` (spec D6).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _check_size(n: int, *, even: bool = False) -> None:
    if n < 1 or (even and n % 2):
        allowed = "an even integer >= 2" if even else "an integer >= 1"
        raise ValueError(f"`state_size` (={n}) must be {allowed}.")


def hippo_legs(state_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The HiPPO-LegS matrix A and input vector B (s4d.md eq. 8).

    A[n, k] = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k); B[n] = sqrt(2n+1).

    **Arguments:** `state_size`: N.
    **Returns:** `(A, B)` of shapes `(N, N)` and `(N,)`, float64.
    """
    _check_size(state_size)
    r = np.sqrt(2.0 * np.arange(state_size) + 1.0)
    a = -np.tril(np.outer(r, r), -1) - np.diag(np.arange(state_size) + 1.0)
    return a, r.copy()


def legs_low_rank(state_size: int) -> np.ndarray:
    """P with P[n] = sqrt(n + 1/2), so that P P^T = (1/2) B B^T (eq. 8); shape `(N,)`."""
    _check_size(state_size)
    return np.sqrt(np.arange(state_size) + 0.5)


def legs_normal_part(state_size: int) -> np.ndarray:
    """A^(N) = A_LegS + P P^T = -(1/2) I + S with S skew-symmetric (eq. 8); shape `(N, N)`."""
    a, _ = hippo_legs(state_size)
    p = legs_low_rank(state_size)
    return a + np.outer(p, p)


class LegSEig(NamedTuple):
    """The kept half of the eigendecomposition of the LegS normal part (eq. 9).

    `mu`: `(N/2,)` positive imaginary parts, ascending; the eigenvalues are -1/2 + i mu.
    `vectors`: `(N, N/2)` complex unit eigenvectors U of those eigenvalues; the other
    half are their complex conjugates (S is real).
    `b_proj`: `(N/2,)` U* B_LegS, the LegS input vector in the eigenbasis (not halved).
    """

    mu: np.ndarray
    vectors: np.ndarray
    b_proj: np.ndarray


def legs_normal_eig(state_size: int) -> LegSEig:
    """Eigenvalues with mu > 0, eigenvectors and projected B of the LegS normal part (eq. 9).

    -i S is Hermitian, so `numpy.linalg.eigh` gives real mu and orthonormal U; the
    eigenvalues of A^(N) are -1/2 + i mu. S has no zero eigenvalue for even N.

    **Arguments:** `state_size`: N, even.
    **Returns:** a `LegSEig`.
    """
    _check_size(state_size, even=True)
    s = legs_normal_part(state_size) + 0.5 * np.eye(state_size)
    mu, u = np.linalg.eigh(-1j * s)
    keep = mu > 0
    mu, u = mu[keep], u[:, keep]
    _, b = hippo_legs(state_size)
    return LegSEig(mu=mu, vectors=u, b_proj=u.conj().T @ b)


def legs_basis(t: np.ndarray, order: int) -> np.ndarray:
    """The LegS basis phi_k(t) = [e^{tA} B]_k = sqrt(2k+1) e^{-t} P_k(2 e^{-t} - 1) (eq. 20).

    **Arguments:** `t`: times `(time,)`, >= 0; `order`: number of basis functions K.
    **Returns:** `(K, time)` float64.
    """
    t = np.asarray(t, dtype=float)
    z = 2.0 * np.exp(-t) - 1.0
    rows = [np.sqrt(2 * k + 1.0) * np.exp(-t) * np.polynomial.legendre.legval(z, np.eye(order)[k]) for k in range(order)]
    return np.stack(rows)
