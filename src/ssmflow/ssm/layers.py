"""S4D layers as Equinox modules (s4d.md section 6): parameters only, the math in `ssm/*`.

- `DiagonalSSM`: H independent SISO diagonal SSMs (one per channel, no tying), stored
  as real leaves log_re, im, b_re, b_im, c_re, c_im, d, log_dt (spec D3-D4), with the
  real-part transform Re(lambda) = -f(log_re) of spec eq. 4 (`REAL_TRANSFORMS`).
- `S4DLayer`: v = GELU(SSM(z)), dropout tied over time, GLU(Linear_{H -> 2H}(v)).
- `S4DBlock`: the prenorm residual block u + Dropout(S4DLayer(LayerNorm(u))).
- `S4DModel`: Linear encoder, a stack of blocks, pooling over time, Linear decoder.
- `at_rate(model, r)`: the same model at sampling-rate factor r (eq. 18): every step size
  Delta multiplied by r, nothing else changed.

A model maps one sequence `(L, d_in)`; batches are `jax.vmap`ed by the caller, and the
kernels (which do not depend on the input) are then computed once per batch. Inside the
model the activations are channel-first, `(H, L)`: the FFT convolution runs along the
last (contiguous) axis without a transpose on the way in or out, and the channel mixing
is one `(2H, H) x (H, L)` product. On the 2-core CPU the engine's train step of the
block is 1.05x (H = 64, L = 1024) and 1.1x (the default grid's block) faster than with
time-first `(L, H)` activations, in interleaved runs (BENCHMARKS.md, "S4D block").
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ssmflow._types import Array, Complex, Float, PRNGKeyArray
from ssmflow.ssm.conv import causal_conv, check_conv
from ssmflow.ssm.discretize import METHODS, discretize
from ssmflow.ssm.init import diagonal_init, init_log_step
from ssmflow.ssm.kernels import vandermonde_kernel
from ssmflow.ssm.sobolev import preset_kappa, sobolev_weights

POOLINGS = ("mean", "last", "none")
#: the Sobolev filter of a DiagonalSSM's convolution (freqbias eq. 14, the official LRA layer):
#: off, or learnable: w_m = (1 + m/(2L))^{s_h} on the rfft bins of the 2L-point FFT, one
#: exponent s_h per channel, initialised at 0 (w = 1: the plain convolution)
SOBOLEV = ("off", "learnable")
#: Re(lambda) = -f(log_re) (spec section 3, the X4 ablation): exp (default, always < 0),
#: relu with a 1e-4 floor (always < 0), none (identity: Re(lambda) = -log_re, unconstrained)
REAL_TRANSFORMS = ("exp", "relu", "none")
RELU_FLOOR = 1e-4


def real_part(raw: Float[Array, "*shape"], transform: str) -> Float[Array, "*shape"]:
    """Re(lambda) = -f(raw) for the transform f named `transform` (one of `REAL_TRANSFORMS`)."""
    if transform == "exp":
        return -jnp.exp(raw)
    if transform == "relu":
        return -(jax.nn.relu(raw) + RELU_FLOOR)
    if transform == "none":
        return -raw
    raise ValueError(f"`real_transform` (={transform!r}) is not supported; expected one of {REAL_TRANSFORMS}.")


def real_part_inverse(re: Float[Array, "*shape"], transform: str) -> Float[Array, "*shape"]:
    """The raw leaf that gives Re(lambda) = `re` (< 0; for relu, below -RELU_FLOOR) under `transform`."""
    if transform == "exp":
        return jnp.log(-re)
    if transform == "relu":
        return -re - RELU_FLOOR
    if transform == "none":
        return -re
    raise ValueError(f"`real_transform` (={transform!r}) is not supported; expected one of {REAL_TRANSFORMS}.")


def tied_dropout(x: Float[Array, "channel time"], rate: float, key: PRNGKeyArray | None) -> Float[Array, "channel time"]:
    """Dropout with one mask per channel, shared by every time step; identity if `key` is None or rate 0."""
    if key is None or rate == 0:
        return x
    keep = jax.random.bernoulli(key, 1 - rate, (x.shape[0], 1))
    return jnp.where(keep, x / (1 - rate), 0)


class DiagonalSSM(eqx.Module):
    """H diagonal SSMs with N/2 conjugate-pair modes each, applied by causal convolution (`conv`).

    With `real_transform` exp (default) or relu, Re(lambda) = -f(log_re) < 0 for any value
    of the leaves, so every discrete eigenvalue has modulus < 1 after any gradient step;
    with none, Re(lambda) = -log_re is unconstrained (the leaf keeps its name: it is the
    raw real-part parameter whatever f is).
    """

    log_re: Float[Array, "channel mode"]
    im: Float[Array, "channel mode"]
    b_re: Float[Array, "channel mode"]
    b_im: Float[Array, "channel mode"]
    c_re: Float[Array, "channel mode"]
    c_im: Float[Array, "channel mode"]
    d: Float[Array, " channel"]
    log_dt: Float[Array, " channel"]
    s_h: Float[Array, " channel"] | None  # the learnable Sobolev exponents (`sobolev="learnable"`), else None
    c2_re: Float[Array, "channel mode"] | None  # C of the backward kernel (`bidirectional`), else None
    c2_im: Float[Array, "channel mode"] | None
    method: str = eqx.field(static=True)
    real_transform: str = eqx.field(static=True)
    conv: str = eqx.field(static=True)

    def __init__(self, channels: int, state_size: int, *, init: str = "legs", method: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, imag_scale: float = 1.0, real_scale: float = 1.0,
                 legs_b: str = "paper", real_transform: str = "exp", sobolev: str = "off", bidirectional: bool = False,
                 conv: str = "auto", key: PRNGKeyArray):
        """**Arguments:** `channels`: H; `state_size`: N (even); `init`: a name of
        `ssmflow.ssm.init.ALL_INITS`; `method`: "zoh" or "bilinear"; `dt_min`, `dt_max`: the
        log-uniform step range (eq. 5); `imag_scale`, `real_scale`: scales of Im and Re
        of lambda; `legs_b`: S4D-LegS's B, "paper" or "official" (`ssm.init.legs_input_weights`);
        `real_transform`: f of Re(lambda) = -f(log_re), one of `REAL_TRANSFORMS` (the init's
        lambda is the same for each); `sobolev`: one of `SOBOLEV`; `bidirectional`: add an
        anti-causal kernel with its own C (same lambda, B, Delta), as the official S4 layer:
        y_l = sum_{j <= l} K_{l-j} u_j + sum_{j > l} K'_{j-l-1} u_j; `key`: PRNG key (C, D,
        Delta and the random init; the backward C from a key of its own, so a unidirectional
        model's leaves are unchanged); `conv`: the path of the causal convolution, one of
        `ssmflow.ssm.conv.CONVS` ("auto": by H, L and backend, `conv_path`); the Sobolev
        filter and the bidirectional kernel always take the FFT (they act on its spectrum)."""
        if method not in METHODS:
            raise ValueError(f"`method` (={method!r}) is not a discretization; expected one of {METHODS}.")
        if real_transform not in REAL_TRANSFORMS:
            raise ValueError(f"`real_transform` (={real_transform!r}) is not supported; expected one of {REAL_TRANSFORMS}.")
        if not real_scale > 0:
            raise ValueError(f"`real_scale` (={real_scale}) must be > 0 so that Re(lambda) < 0.")
        if sobolev not in SOBOLEV:
            raise ValueError(f"`sobolev` (={sobolev!r}) is not supported; expected one of {SOBOLEV}.")
        check_conv(conv)
        if conv == "toeplitz" and (sobolev != "off" or bidirectional):
            raise ValueError(f"`conv` (={conv!r}) runs the plain causal kernel only; the Sobolev filter "
                             f"(sobolev={sobolev!r}) and the bidirectional kernel (bidirectional={bidirectional}) "
                             "need conv='fft' or 'auto'.")
        k_init, k_c, k_d, k_dt = jax.random.split(key, 4)
        lam, b = diagonal_init(init, k_init, channels, state_size, imag_scale=imag_scale, real_scale=real_scale,
                               legs_b=legs_b)
        self.log_re = real_part_inverse(lam.real, real_transform)
        self.im = lam.imag
        self.b_re, self.b_im = b.real, b.imag
        c = jax.random.normal(k_c, (2, channels, state_size // 2), dtype=lam.real.dtype) * jnp.sqrt(0.5)
        self.c_re, self.c_im = c[0], c[1]
        self.d = jax.random.normal(k_d, (channels,), dtype=lam.real.dtype)
        self.log_dt = init_log_step(k_dt, channels, dt_min, dt_max)
        self.s_h = jnp.zeros((channels,), lam.real.dtype) if sobolev == "learnable" else None
        if bidirectional:
            c2 = jax.random.normal(jax.random.fold_in(k_c, 1), (2, channels, state_size // 2), dtype=lam.real.dtype) * jnp.sqrt(0.5)
            self.c2_re, self.c2_im = c2[0], c2[1]
        else:
            self.c2_re = self.c2_im = None
        self.method = method
        self.real_transform = real_transform
        self.conv = conv

    def eigenvalues(self) -> Complex[Array, "channel mode"]:
        """lambda = -f(log_re) + i im (eq. 4; f = exp by default)."""
        return real_part(self.log_re, self.real_transform) + 1j * self.im

    def step(self) -> Float[Array, " channel"]:
        """The step size Delta = exp(log_dt) of each channel."""
        return jnp.exp(self.log_dt)

    def kernel(self, length: int, backward: bool = False) -> Float[Array, "channel time"]:
        """The discrete convolution kernel of every channel (eqs. 12-14); `backward`: the
        bidirectional layer's anti-causal kernel (its own C)."""
        disc = discretize(self.eigenvalues(), self.b_re + 1j * self.b_im, self.step()[:, None], self.method)
        c = self.c2_re + 1j * self.c2_im if backward else self.c_re + 1j * self.c_im
        return vandermonde_kernel(disc.log_abar, c * disc.bbar, length)

    def __call__(self, u: Float[Array, "channel time"]) -> Float[Array, "channel time"]:
        """y = Kbar * u + D u per channel (eq. 15) by the path `conv`; `u` and `y` are
        `(H, L)`. With the backward kernel and/or the Sobolev filter, one 2L-point FFT
        product of u with the 2L-long kernel [K, 0, flip(K')] (the official bidirectional
        layout), times w_m."""
        length = u.shape[-1]
        if self.s_h is None and self.c2_re is None:
            return causal_conv(u, self.kernel(length), self.conv) + self.d[:, None] * u
        k = jnp.pad(self.kernel(length), ((0, 0), (0, length)))
        if self.c2_re is not None:
            k = k + jnp.pad(jnp.flip(self.kernel(length, backward=True), axis=-1), ((0, 0), (length, 0)))
        n = 2 * length
        spectrum = jnp.fft.rfft(u, n=n) * jnp.fft.rfft(k, n=n)
        if self.s_h is not None:
            spectrum = spectrum * sobolev_weights(n, self.s_h, preset_kappa("lra", 1.0))
        return jnp.fft.irfft(spectrum, n=n)[..., :length] + self.d[:, None] * u


class S4DLayer(eqx.Module):
    """GELU(SSM(z)) -> tied dropout -> GLU(Linear_{H -> 2H}), on `(H, L)`."""

    ssm: DiagonalSSM
    out: eqx.nn.Linear
    dropout: float = eqx.field(static=True)

    def __init__(self, channels: int, state_size: int, *, init: str = "legs", method: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, imag_scale: float = 1.0, dropout: float = 0.0,
                 legs_b: str = "paper", real_transform: str = "exp", sobolev: str = "off", bidirectional: bool = False,
                 conv: str = "auto", key: PRNGKeyArray):
        k_ssm, k_out = jax.random.split(key)
        self.ssm = DiagonalSSM(channels, state_size, init=init, method=method, dt_min=dt_min, dt_max=dt_max,
                               imag_scale=imag_scale, legs_b=legs_b, real_transform=real_transform, sobolev=sobolev,
                               bidirectional=bidirectional, conv=conv, key=k_ssm)
        self.out = eqx.nn.Linear(channels, 2 * channels, key=k_out)
        self.dropout = dropout

    def __call__(self, z: Float[Array, "channel time"], *, key: PRNGKeyArray | None = None) -> Float[Array, "channel time"]:
        v = jax.nn.gelu(self.ssm(z))
        v = tied_dropout(v, self.dropout, key)
        return jax.nn.glu(self.out.weight @ v + self.out.bias[:, None], axis=0)


class S4DBlock(eqx.Module):
    """Prenorm residual block (eq. 19): u + Dropout(S4DLayer(LayerNorm(u))), on `(H, L)` (norm over channels)."""

    norm: eqx.nn.LayerNorm
    layer: S4DLayer
    dropout: float = eqx.field(static=True)

    def __init__(self, channels: int, state_size: int, *, init: str = "legs", method: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, imag_scale: float = 1.0, dropout: float = 0.0,
                 legs_b: str = "paper", real_transform: str = "exp", sobolev: str = "off", bidirectional: bool = False,
                 conv: str = "auto", key: PRNGKeyArray):
        self.norm = eqx.nn.LayerNorm(channels)
        self.layer = S4DLayer(channels, state_size, init=init, method=method, dt_min=dt_min, dt_max=dt_max,
                              imag_scale=imag_scale, dropout=dropout, legs_b=legs_b, real_transform=real_transform,
                              sobolev=sobolev, bidirectional=bidirectional, conv=conv, key=key)
        self.dropout = dropout

    def __call__(self, u: Float[Array, "channel time"], *, key: PRNGKeyArray | None = None) -> Float[Array, "channel time"]:
        k_layer, k_res = jax.random.split(key) if key is not None else (None, None)
        z = jax.vmap(self.norm, in_axes=1, out_axes=1)(u)
        return u + tied_dropout(self.layer(z, key=k_layer), self.dropout, k_res)


class S4DModel(eqx.Module):
    """Encoder -> `depth` S4D blocks -> pooling over time -> decoder: a small classifier/regressor.

    Maps one sequence `(L, d_in)` to `(d_out,)` (pooling "mean" or "last") or to
    `(L, d_out)` (pooling "none", sequence-to-sequence).
    """

    encoder: eqx.nn.Linear
    blocks: tuple[S4DBlock, ...]
    decoder: eqx.nn.Linear
    pooling: str = eqx.field(static=True)

    def __init__(self, d_in: int, d_out: int, *, channels: int, state_size: int, depth: int, init: str = "legs",
                 method: str = "zoh", dt_min: float = 1e-3, dt_max: float = 1e-1, imag_scale: float = 1.0,
                 dropout: float = 0.0, pooling: str = "mean", legs_b: str = "paper", real_transform: str = "exp",
                 sobolev: str = "off", bidirectional: bool = False, conv: str = "auto", key: PRNGKeyArray):
        """**Arguments:** `d_in`, `d_out`: input features and outputs; `channels`: H;
        `state_size`: N; `depth`: number of blocks; `init`, `method`, `dt_min`, `dt_max`,
        `imag_scale`, `legs_b`, `real_transform`, `sobolev`, `bidirectional`, `conv`: as `DiagonalSSM`; `dropout`: rate; `pooling`:
        "mean", "last" or "none"; `key`: PRNG key."""
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` (={pooling!r}) is not supported; expected one of {POOLINGS}.")
        if depth < 1:
            raise ValueError(f"`depth` (={depth}) must be >= 1.")
        k_enc, k_dec, *k_blocks = jax.random.split(key, depth + 2)
        self.encoder = eqx.nn.Linear(d_in, channels, key=k_enc)
        self.blocks = tuple(
            S4DBlock(channels, state_size, init=init, method=method, dt_min=dt_min, dt_max=dt_max,
                     imag_scale=imag_scale, dropout=dropout, legs_b=legs_b, real_transform=real_transform,
                     sobolev=sobolev, bidirectional=bidirectional, conv=conv, key=k)
            for k in k_blocks
        )
        self.decoder = eqx.nn.Linear(channels, d_out, key=k_dec)
        self.pooling = pooling

    def __call__(self, x: Float[Array, "time d_in"], *, key: PRNGKeyArray | None = None) -> Float[Array, "*time d_out"]:
        """**Arguments:** `x`: one sequence `(L, d_in)`; `key`: dropout key (None: no dropout).
        **Returns:** `(d_out,)`, or `(L, d_out)` with pooling "none"."""
        keys = jax.random.split(key, len(self.blocks)) if key is not None else [None] * len(self.blocks)
        u = jax.vmap(self.encoder, out_axes=1)(x)  # (H, L): channel-first inside the model
        for block, k in zip(self.blocks, keys, strict=True):
            u = block(u, key=k)
        if self.pooling == "mean":
            return self.decoder(jnp.mean(u, axis=1))
        if self.pooling == "last":
            return self.decoder(u[:, -1])
        return jax.vmap(self.decoder, in_axes=1)(u)

    def ssms(self) -> tuple[DiagonalSSM, ...]:
        """The diagonal SSM of every block, first to last."""
        return tuple(block.layer.ssm for block in self.blocks)


def at_rate(model, rate: float | Float[Array, ""]):
    """`model` (any pytree of `DiagonalSSM`s: an `S4DModel`, block or layer) run at
    sampling-rate factor `rate`: every step size Delta multiplied by r (eq. 18), every
    other leaf and the code path unchanged, so a model trained on sequences sampled
    every Delta reads the same continuous signal sampled every r Delta (e.g. r = 2: the
    input at every other sample). For ZOH the rate-2 kernel is exactly the sum of
    adjacent pairs of taps of the rate-1 kernel, K^(2 Delta)_l = K^(Delta)_2l + K^(Delta)_2l+1.

    **Arguments:** `model`; `rate`: r > 0 (a traced scalar is fine: no recompilation per r).
    **Returns:** the model with log_dt + log r in every `DiagonalSSM`.
    """
    if isinstance(rate, int | float) and not rate > 0:
        raise ValueError(f"`rate` (={rate}) must be > 0 (the factor multiplying every step size Delta).")
    def is_ssm(node) -> bool:
        return isinstance(node, DiagonalSSM)

    ssms = [node for node in jax.tree.leaves(model, is_leaf=is_ssm) if is_ssm(node)]
    if not ssms:
        raise ValueError(f"`model` (a {type(model).__name__}) holds no DiagonalSSM whose step size a rate could change.")
    shift = jnp.log(jnp.asarray(rate, ssms[0].log_dt.dtype))
    return eqx.tree_at(lambda m: [node.log_dt for node in jax.tree.leaves(m, is_leaf=is_ssm) if is_ssm(node)], model,
                       replace=[node.log_dt + shift for node in ssms])
