"""Fixed numbers and derived geometry of the freqbias experiments (JAX-free; freqbias.md sections 7 and F9).

Waves: the input frequencies s_k = 2 pi m_k / (L Delta) are exactly periodic on the window
(m_k whole cycles per window) and must sit below Nyquist (m_k < L/2).

Stripe denoising: an image of `rows` x `cols` pixels is flattened row-major (l = cols i + j).
At the upstream width W = 128 the stripe frequency is omega_p = 2 pi 61/128 rad/pixel and
Delta = 1e-4. For another width W' (spec X3, "Derived geometry"):

    omega_p' = 2 pi round(61 W'/128)/W'
    Delta'   = Delta (omega_p'/W') / (omega_p/128)   (the row fundamental keeps its continuous frequency)
    alpha presets raw = pi, enhance = pi/3, middle = 10 pi unchanged (continuous frequencies)
    flip' = 490.52 (128 Delta)/(W' Delta')             (mode spacing alpha' Delta' ~ 2 pi/W', the row harmonic)

and N = W' real states (N/2 = W'/2 modes) puts flip's top mode near Nyquist, as N = 128 does at W = 128.
"""

from __future__ import annotations

import math

UPSTREAM_WIDTH = 128
UPSTREAM_STEP = 1e-4
UPSTREAM_CYCLES = 61  # stripe cycles per 128 columns
UPSTREAM_FLIP = 490.52
#: alpha presets of the official denoising script; flip is rescaled to the width (module docstring)
ALPHA_PRESETS = ("raw", "enhance", "middle", "flip")
#: the three noise conditions of the denoising metrics
NOISES = ("none", "horizontal", "vertical")


def wave_frequencies(cycles, length: int, step: float) -> list[float]:
    """s_k = 2 pi m_k / (L Delta), rad per unit time."""
    return [2 * math.pi * m / (length * step) for m in cycles]


def stripe_omega(cols: int) -> float:
    """omega_p' = 2 pi round(61 W'/128)/W' rad/pixel (the vertical stripes' sequence frequency)."""
    return 2 * math.pi * round(UPSTREAM_CYCLES * cols / UPSTREAM_WIDTH) / cols


def denoise_step(cols: int) -> float:
    """Delta' = Delta (omega_p'/W')/(omega_p/128): the row fundamental keeps its continuous frequency."""
    return UPSTREAM_STEP * (stripe_omega(cols) / cols) / (stripe_omega(UPSTREAM_WIDTH) / UPSTREAM_WIDTH)


def alpha_value(preset: str, cols: int) -> float:
    """The alpha of a preset at width W' (raw, enhance, middle unchanged; flip rescaled)."""
    values = {"raw": math.pi, "enhance": math.pi / 3, "middle": 10 * math.pi,
              "flip": UPSTREAM_FLIP * UPSTREAM_WIDTH * UPSTREAM_STEP / (cols * denoise_step(cols))}
    if preset not in values:
        raise ValueError(f"`preset` (={preset!r}) is not an alpha preset; expected one of {ALPHA_PRESETS}.")
    return values[preset]


def stripe_frequencies(cols: int) -> dict[str, float]:
    """Sequence frequencies (rad/sample) of the stripes: vertical omega_V = omega_p', horizontal omega_H = omega_p'/W'."""
    return {"vertical": stripe_omega(cols), "horizontal": stripe_omega(cols) / cols}


def top_mode_omega(preset: str, cols: int, state_size: int) -> float:
    """alpha (N/2 - 1) Delta': the top mode of eq. 20 in rad/sample (must stay below pi)."""
    return alpha_value(preset, cols) * (state_size // 2 - 1) * denoise_step(cols)
