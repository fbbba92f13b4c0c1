"""Stripe denoising (freqbias.md X3): images bundled with scikit-image, flattened row-major.

    (19) n_V[i, j] = rho cos(omega_p j),  n_H[i, j] = rho cos(omega_p i)
    (20) a_0 = -e^{-5};  a_n = -3 + i alpha n, n = 1..N/2-1;  C_n = z_n |Im a_n|/1000, z_n ~ CN(0, 1)
    (21) yhat = g Conv_beta(K, x) + b
    (22) mse_out(nu) = mean ||yhat(x + nu) - x||^2/L;  T(nu) = ||yhat(x + nu) - yhat(x)||^2/||nu||^2

Images are grayscale in [0, 1], resized to rows x cols, mapped v -> 2v - 1 (so the
noise in model units is 2 n). A and Delta are frozen; C, g and b are trained on clean
images to reproduce their input (MSE). The convolution is linear (padded to 2L).
Every image ships inside the scikit-image wheel (`skimage/data/*`); nothing is downloaded.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ssmflow._types import Array, Complex, Float, PRNGKeyArray
from ssmflow.ssm.discretize import discretize_zoh
from ssmflow.ssm.kernels import vandermonde_kernel
from ssmflow.ssm.sobolev import sobolev_fft_conv
from ssmflow.ssm.transfer import transfer_discrete

#: the bundled test images of scikit-image that `natural` may use (all inside the wheel)
NATURAL_IMAGES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
                  "immunohistochemistry", "moon", "page", "rocket", "text")
SOURCES = ("faces", "natural")
N_FACES = 100  # lfw_subset(): images 0-99 are faces, 100-199 non-faces


class ImageSet(NamedTuple):
    """Images `(image, row, col)` in [0, 1], their source label and their origin per image
    ('lfw_subset[3]', 'brick crop 5', ...)."""

    images: np.ndarray
    source: np.ndarray
    origin: np.ndarray | None = None


def _resize(img: np.ndarray, rows: int, cols: int, order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (rows, cols), order=order, anti_aliasing=order > 0 and min(img.shape) > max(rows, cols), mode="reflect")


def natural_image(name: str) -> np.ndarray:
    """A bundled scikit-image test image as grayscale float in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    if name not in NATURAL_IMAGES:
        raise ValueError(f"`name` (={name!r}) is not a bundled natural image; expected one of {NATURAL_IMAGES}.")
    img = img_as_float(getattr(skimage.data, name)())
    return rgb2gray(img) if img.ndim == 3 else img


def random_crops(img: np.ndarray, count: int, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random squares of side U[min(128, m), m] (m = min(h, w)), each resized to rows x cols."""
    h, w = img.shape
    m = min(h, w)
    out = []
    for _ in range(count):
        side = int(rng.integers(min(128, m), m + 1))
        i, j = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(_resize(img[i:i + side, j:j + side], rows, cols, order=1))
    return np.stack(out)


def load_images(cfg: dict, split: str, seed: int = 0) -> ImageSet:
    """The train or test images of a denoising config: faces, then natural crops (fixed seed)."""
    from skimage.data import lfw_subset

    rows, cols = cfg["rows"], cfg["cols"]
    parts, labels, origin = [], [], []
    if "faces" in cfg["sources"]:
        faces = lfw_subset()[:N_FACES]
        n_train = cfg["faces_train"]
        first = 0 if split == "train" else n_train
        chosen = faces[:n_train] if split == "train" else faces[n_train:n_train + cfg["faces_test"]]
        parts.append(np.stack([_resize(f, rows, cols, order=1) for f in chosen]))
        labels += ["faces"] * len(chosen)
        origin += [f"lfw_subset[{first + i}]" for i in range(len(chosen))]
    if "natural" in cfg["sources"]:
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        count = cfg["crops_train"] if split == "train" else cfg["crops_test"]
        for name in cfg[f"natural_{split}"]:
            parts.append(random_crops(natural_image(name), count, rows, cols, rng))
            labels += ["natural"] * count
            origin += [f"{name} crop {k}" for k in range(count)]
    return ImageSet(np.clip(np.concatenate(parts), 0.0, 1.0), np.asarray(labels, dtype=object), np.asarray(origin, dtype=object))


def stripe_noise(orientation: str, amplitude: np.ndarray, rows: int, cols: int, omega_p: float) -> np.ndarray:
    """Eq. 19 for every image: rho cos(omega_p j) (vertical) or rho cos(omega_p i) (horizontal), `(image, row, col)`."""
    if orientation == "vertical":
        wave = np.broadcast_to(np.cos(omega_p * np.arange(cols))[None, :], (rows, cols))
    elif orientation == "horizontal":
        wave = np.broadcast_to(np.cos(omega_p * np.arange(rows))[:, None], (rows, cols))
    else:
        raise ValueError(f"`orientation` (={orientation!r}) must be 'vertical' or 'horizontal'.")
    return np.asarray(amplitude)[:, None, None] * wave[None]


def denoise_eigenvalues(state_size: int, alpha: Float[Array, ""] | float) -> Complex[Array, " mode"]:
    """Eq. 20: a_0 = -e^{-5} (Im 0), a_n = -3 + i alpha n for n = 1..N/2-1."""
    n = jnp.arange(state_size // 2, dtype=jnp.result_type(float))
    return jnp.where(n == 0, -jnp.exp(-5.0), -3.0) + 1j * alpha * n


class DenoiseModel(eqx.Module):
    """Eq. 21: yhat = g Conv_beta(K, x) + b with frozen (A, Delta); C, g, b trained."""

    c_re: Float[Array, " mode"]
    c_im: Float[Array, " mode"]
    gain: Float[Array, ""]
    bias: Float[Array, ""]

    def __init__(self, state_size: int, alpha: Float[Array, ""] | float, *, key: PRNGKeyArray):
        real = jnp.result_type(float)
        z = jax.random.normal(key, (2, state_size // 2), dtype=real) * jnp.sqrt(0.5)
        scale = jnp.abs(denoise_eigenvalues(state_size, alpha).imag) / 1000  # C_0 = 0 (eq. 20)
        self.c_re, self.c_im = z[0] * scale, z[1] * scale
        self.gain = jnp.ones((), real)
        self.bias = jnp.zeros((), real)

    def weights(self, lam: Complex[Array, " mode"], step: float) -> tuple[Complex[Array, " mode"], Complex[Array, " mode"]]:
        """(log Abar, C Bbar) of the ZOH system with B = 1."""
        disc = discretize_zoh(lam, jnp.ones_like(lam), step)
        return disc.log_abar, (self.c_re + 1j * self.c_im) * disc.bbar

    def __call__(self, x: Float[Array, "*batch time"], lam: Complex[Array, " mode"], *, step: float,
                 beta: Float[Array, ""], kappa: float) -> Float[Array, "*batch time"]:
        log_abar, w = self.weights(lam, step)
        k = vandermonde_kernel(log_abar, w, x.shape[-1])
        return self.gain * sobolev_fft_conv(x, k, beta, kappa) + self.bias

    def response(self, lam: Complex[Array, " mode"], omega: Float[Array, " freq"], *, step: float,
                 beta: Float[Array, ""], kappa: float) -> Float[Array, " freq"]:
        """|g w(omega) Khat(omega)|: the trained filter's gain at omega (rad/sample)."""
        log_abar, w = self.weights(lam, step)
        sob = (1 + kappa * jnp.abs(omega) / (2 * jnp.pi)) ** beta
        return jnp.abs(self.gain * sob * transfer_discrete(log_abar, w, omega))


def noise_metrics(model: DenoiseModel, lam, clean: Float[Array, "image time"], noise: Float[Array, "image time"],
                  *, step: float, beta, kappa: float) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """(mse_out, mse_ref, transmission) of eq. 22 over a set of images (model units, noise already x2)."""
    length = clean.shape[-1]
    out_clean = model(clean, lam, step=step, beta=beta, kappa=kappa)
    out_noisy = model(clean + noise, lam, step=step, beta=beta, kappa=kappa)
    mse_out = jnp.mean(jnp.sum((out_noisy - clean) ** 2, axis=-1) / length)
    mse_ref = jnp.mean(jnp.sum(noise**2, axis=-1) / length)
    passed = jnp.sum((out_noisy - out_clean) ** 2)
    return mse_out, mse_ref, passed / jnp.maximum(jnp.sum(noise**2), jnp.finfo(clean.dtype).tiny)

