"""ssmflow.ssm.hippo: the LegS matrix, its normal part, eigendecomposition and basis (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from ssmflow.ssm import hippo


def test_hippo_legs_entries_match_eq_8():
    a, b = hippo.hippo_legs(5)
    for n in range(5):
        for k in range(5):
            expected = -np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1) if n > k else (-(n + 1) if n == k else 0.0)
            assert a[n, k] == pytest.approx(expected, abs=1e-14)
    np.testing.assert_allclose(b, np.sqrt(2 * np.arange(5) + 1), rtol=1e-15)
    p = hippo.legs_low_rank(5)
    np.testing.assert_allclose(np.outer(p, p), 0.5 * np.outer(b, b), rtol=1e-14)


def test_normal_part_is_minus_half_identity_plus_skew():
    s = hippo.legs_normal_part(32) + 0.5 * np.eye(32)
    np.testing.assert_allclose(s, -s.T, atol=1e-13)
    assert s[3, 1] == pytest.approx(-np.sqrt(3.5 * 1.5)) and s[1, 3] == pytest.approx(np.sqrt(3.5 * 1.5))


@pytest.mark.parametrize("n", [16, 64, 256])
def test_legs_eigenvalues_against_eigvals_and_eigenvectors(n):
    """mu from eigh(-iS) equals the positive Im parts of eigvals(A + PP^T) (1e-8 relative);
    Re is -1/2 (1e-8); the vectors are eigenvectors and B is projected by U*."""
    eig = hippo.legs_normal_eig(n)
    normal = hippo.legs_normal_part(n)
    ev = np.linalg.eigvals(normal)
    assert np.max(np.abs(ev.real + 0.5)) < 1e-8
    ref = np.sort(ev.imag[ev.imag > 0])
    assert eig.mu.shape == (n // 2,) and np.all(np.diff(eig.mu) > 0)
    np.testing.assert_allclose(eig.mu, ref, rtol=1e-8)
    lam = -0.5 + 1j * eig.mu
    np.testing.assert_allclose(normal @ eig.vectors, eig.vectors * lam, atol=1e-9 * n)
    np.testing.assert_allclose(eig.b_proj, eig.vectors.conj().T @ hippo.hippo_legs(n)[1], rtol=1e-12)


def test_largest_legs_frequency_grows_like_n_squared():
    mus = [hippo.legs_normal_eig(n).mu[-1] for n in (64, 256)]
    assert 12 < mus[1] / mus[0] < 20  # ~ (256/64)^2 = 16


def test_legs_basis_is_the_impulse_response_of_legs():
    """phi_k(t) = sqrt(2k+1) e^{-t} P_k(2e^{-t} - 1) equals [expm(tA) B]_k (eq. 20)."""
    a, b = hippo.hippo_legs(6)
    t = np.array([0.0, 0.1, 0.7, 1.9])
    dense = np.stack([scipy.linalg.expm(tm * a) @ b for tm in t], axis=1)[:4]
    np.testing.assert_allclose(hippo.legs_basis(t, 4), dense, rtol=1e-10, atol=1e-12)


def test_odd_state_size_error_names_value_and_allowed():
    with pytest.raises(ValueError, match=r"`state_size` \(=7\) must be an even integer >= 2"):
        hippo.legs_normal_eig(7)
