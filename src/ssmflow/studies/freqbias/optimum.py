"""The best denoising model of eq. 21's class, in closed form (NumPy, float64; issue 12).

With A and Delta frozen, yhat = g Conv_beta(K, x) + b and K_l = 2 Re sum_n C_n Bbar_n Abar_n^l is
linear in theta = (g c_re, g c_im, b). So the lowest MSE any training of (C, g, b) can reach on
a set of images is a linear least-squares problem over one feature per (mode, Re/Im), the
filtered convolution Conv_beta(K_p, x) of the image with that unit parameter's kernel, plus a
constant. `fit` solves it by the normal equations (accumulated over image blocks, so the
spec's L = 32768 fits in memory); `apply` evaluates a theta, so a trained model's
(g c, b) and the optimum are compared on the same footing. Nothing here is imported by
training: it is a yardstick for the trained runs (bench/denoise_blur.py, tests).
"""

from __future__ import annotations

import numpy as np


def unit_kernel_spectra(state_size: int, alpha: float, step: float, length: int) -> np.ndarray:
    """rfft (n = 2L) of the kernel of each unit parameter (c_re_n = 1, then c_im_n = 1; the rest 0),
    B = 1, ZOH, eq. 20's eigenvalues: `(2 (N/2), L + 1)` complex."""
    n = np.arange(state_size // 2)
    lam = np.where(n == 0, -np.exp(-5.0), -3.0) + 1j * alpha * n
    z = step * lam
    bbar = np.expm1(z) / lam
    powers = np.exp(z[:, None] * np.arange(length))
    kernels = np.concatenate([2 * np.real(bbar[:, None] * powers), 2 * np.real(1j * bbar[:, None] * powers)])
    return np.fft.rfft(kernels, n=2 * length)


def sobolev_weights(length: int, beta: float, kappa: float) -> np.ndarray:
    """w_m = (1 + kappa m/n)^beta on the rfft bins of n = 2L (ssmflow.ssm.sobolev, eq. 12)."""
    n_fft = 2 * length
    return (1 + kappa * np.arange(n_fft // 2 + 1) / n_fft) ** beta


def features(x: np.ndarray, spectra: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Conv_beta(K_p, x) for every unit kernel p, linear convolution: `(p, image, L)`."""
    length = x.shape[-1]
    xf = np.fft.rfft(x, n=2 * length)
    return np.fft.irfft(xf[None] * (spectra * weights)[:, None], n=2 * length)[..., :length]


def fit(inputs: np.ndarray, targets: np.ndarray, spectra: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """theta = argmin sum_images ||sum_p theta_p Conv_beta(K_p, input) + theta_b - target||^2, `(p + 1,)`.

    Normal equations on the column-scaled Gram matrix, solved on its eigenvectors with
    eigenvalue above 1e-13 of the largest (the raw preset's modes are nearly collinear)."""
    p, length = spectra.shape[0], inputs.shape[-1]
    block = max(1, 2**24 // (p * 2 * length))  # feature blocks of at most 128 MiB
    gram, rhs = np.zeros((p + 1, p + 1)), np.zeros(p + 1)
    for i in range(0, len(inputs), block):
        f = features(inputs[i:i + block], spectra, weights)
        f = np.concatenate([f, np.ones((1, *f.shape[1:]))]).reshape(p + 1, -1)
        gram += f @ f.T
        rhs += f @ targets[i:i + block].reshape(-1)
    scale = np.sqrt(np.diag(gram)) + 1e-300
    ev, vec = np.linalg.eigh(gram / scale[:, None] / scale[None, :])
    keep = ev > ev.max() * 1e-13
    return (vec[:, keep] @ ((vec[:, keep].T @ (rhs / scale)) / ev[keep])) / scale


def apply(x: np.ndarray, theta: np.ndarray, spectra: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The model of theta = (g c_re, g c_im, b) on images `x` `(image, L)`."""
    length = x.shape[-1]
    k = np.tensordot(theta[:-1], spectra, axes=1)
    return np.fft.irfft(np.fft.rfft(x, n=2 * length) * k * weights, n=2 * length)[..., :length] + theta[-1]


def model_theta(c_re: np.ndarray, c_im: np.ndarray, gain: float, bias: float) -> np.ndarray:
    """theta of a trained DenoiseModel's parameters."""
    return np.concatenate([gain * np.asarray(c_re, float), gain * np.asarray(c_im, float), [float(bias)]])
