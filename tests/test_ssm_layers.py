"""ssmflow.ssm.layers and ssmflow.ssm.optim: shapes, real leaves, one compile, stability, optimizer groups,
the real-part transforms and frozen B (X4), the sampling-rate factor (eq. 18)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssmflow.ssm import conv, discretize, layers, optim

H, N, L = 8, 16, 128


def _model(pooling="mean", init="legs", method="zoh", depth=2, dropout=0.0):
    return layers.S4DModel(2, 3, channels=H, state_size=N, depth=depth, init=init, method=method, pooling=pooling,
                           dropout=dropout, key=jax.random.key(0))


def test_block_maps_batch_channel_time_to_itself():
    block = layers.S4DBlock(H, N, init="lin", key=jax.random.key(1))
    u = jax.random.normal(jax.random.key(2), (4, H, L))
    assert jax.vmap(block)(u).shape == (4, H, L)


@pytest.mark.parametrize("method", discretize.METHODS)
def test_block_equals_time_first_recurrence_reference(method):
    """The channel-first block (FFT conv along the last axis) equals the block written time
    step by time step: LayerNorm of each u_l, the SSM by its `lax.scan` recurrence per
    channel, D skip, GELU, Linear, GLU, residual (float64, 1e-10)."""
    block = layers.S4DBlock(H, N, init="legs", method=method, key=jax.random.key(5))
    u = jax.random.normal(jax.random.key(6), (H, L))
    ssm, norm, out = block.layer.ssm, block.norm, block.layer.out
    ut = np.asarray(u).T  # (L, H)
    mean, var = ut.mean(1, keepdims=True), ut.var(1, keepdims=True)
    z = (ut - mean) / np.sqrt(var + norm.eps) * np.asarray(norm.weight) + np.asarray(norm.bias)
    disc = discretize.discretize(ssm.eigenvalues(), ssm.b_re + 1j * ssm.b_im, ssm.step()[:, None], method)
    c = ssm.c_re + 1j * ssm.c_im
    y = np.stack([np.asarray(conv.scan_recurrence(disc.abar[h], disc.bbar[h], c[h], jnp.asarray(z[:, h])))
                  for h in range(H)], axis=1) + np.asarray(ssm.d) * z
    v = np.asarray(jax.nn.gelu(jnp.asarray(y)))
    o = v @ np.asarray(out.weight).T + np.asarray(out.bias)
    ref = ut + o[:, :H] / (1 + np.exp(-o[:, H:]))
    got = np.asarray(block(u)).T
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-10


@pytest.mark.parametrize(("pooling", "shape"), [("mean", (3,)), ("last", (3,)), ("none", (L, 3))])
def test_model_output_shape_per_pooling(pooling, shape):
    x = jax.random.normal(jax.random.key(3), (L, 2))
    assert _model(pooling)(x).shape == shape


def test_model_is_causal():
    """With pooling "none", changing the input at time t changes no output before t (up to FFT rounding)."""
    model = _model("none")
    x = jax.random.normal(jax.random.key(4), (L, 2))
    y0, y1 = model(x), model(x.at[70].add(5.0))
    np.testing.assert_allclose(y0[:70], y1[:70], rtol=0, atol=1e-12)
    assert np.abs(y0[70:] - y1[70:]).max() > 1e-6


def test_all_leaves_are_real():
    leaves = jax.tree.leaves(eqx.filter(_model(), eqx.is_array))
    assert leaves and all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in leaves)


def test_one_compile_per_length_and_state_size():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def loss(model, x):
        return jnp.sum(jax.vmap(model)(x) ** 2)

    model = _model()
    for seed in range(3):  # new values, same shapes: no retrace
        x = jax.random.normal(jax.random.key(seed), (2, L, 2))
        eqx.filter_grad(loss)(model, x)


def test_dropout_mask_is_tied_over_time():
    x = jnp.ones((H, L))
    y = layers.tied_dropout(x, 0.5, jax.random.key(0))
    dropped = np.asarray(y == 0)
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # the same channels at every step
    np.testing.assert_array_equal(layers.tied_dropout(x, 0.5, None), x)


@pytest.mark.parametrize("method", discretize.METHODS)
def test_discrete_eigenvalues_inside_unit_circle_for_any_log_re(method):
    """Re(lambda) = -exp(log_re) < 0, hence |Abar| < 1, for log_re drawn in [-10, 10] (float64)."""
    ssm = layers.DiagonalSSM(H, N, init="inv", method=method, key=jax.random.key(0))
    log_re = jax.random.uniform(jax.random.key(1), ssm.log_re.shape, minval=-10.0, maxval=10.0)
    ssm = eqx.tree_at(lambda s: s.log_re, ssm, log_re)
    lam = ssm.eigenvalues()
    assert float(lam.real.max()) < 0
    abar = discretize.discretize(lam, ssm.b_re + 1j * ssm.b_im, ssm.step()[:, None], method).abar
    assert float(jnp.abs(abar).max()) < 1


@pytest.mark.parametrize("method", discretize.METHODS)
def test_stability_survives_gradient_steps_that_push_toward_instability(method):
    """100 Adam steps (lr 0.1, so every leaf may move by up to ~10) of gradient *ascent* on the
    kernel energy, which grows as |Abar| -> 1, still leave every |Abar| < 1 (float64)."""
    ssm = layers.DiagonalSSM(H, N, init="lin", method=method, key=jax.random.key(2))

    def energy(s):
        return -jnp.sum(s.kernel(L) ** 2)

    opt = optax.adam(0.1)
    state = opt.init(eqx.filter(ssm, eqx.is_array))
    for _ in range(100):
        grads = eqx.filter_grad(energy)(ssm)
        updates, state = opt.update(grads, state)
        ssm = eqx.apply_updates(ssm, updates)
    assert float(ssm.log_re.min()) < -5  # pushed hard toward the imaginary axis
    lam = ssm.eigenvalues()
    abar = discretize.discretize(lam, ssm.b_re + 1j * ssm.b_im, ssm.step()[:, None], method).abar
    assert float(lam.real.max()) < 0
    assert np.isfinite(np.asarray(abar)).all() and float(jnp.abs(abar).max()) < 1


def test_optimizer_groups_give_ssm_leaves_their_own_rate_and_no_decay():
    model = _model(depth=1)
    params = eqx.filter(model, eqx.is_array)
    labels = optim.param_labels(params)
    ssm_labels = labels.blocks[0].layer.ssm
    assert {name for name in ("log_re", "im", "b_re", "b_im", "c_re", "c_im", "d", "log_dt")
            if getattr(ssm_labels, name) in ("ssm", "b")} == set(optim.SSM_LEAVES)  # "b": the SSM group's B
    assert set(jax.tree.leaves(labels.encoder)) == {"rest"} and set(jax.tree.leaves(labels.decoder)) == {"rest"}
    lr, lr_ssm, wd = 1e-2, 1e-4, 0.1
    opt = optim.s4d_optimizer(lr=lr, lr_ssm=lr_ssm, weight_decay=wd, total_steps=1000, warmup_frac=0.001)
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for _ in range(2):  # step 0 is the warmup's zero learning rate
        updates, state = opt.update(zeros, state, params)
    ssm_up = updates.blocks[0].layer.ssm
    for name in optim.SSM_LEAVES:  # no gradient, no decay: no move
        np.testing.assert_array_equal(getattr(ssm_up, name), 0.0)
    np.testing.assert_allclose(ssm_up.c_re, -lr * wd * params.blocks[0].layer.ssm.c_re, rtol=1e-3)  # decayed
    ones = jax.tree.map(jnp.ones_like, params)
    opt = optim.s4d_optimizer(lr=lr, lr_ssm=lr_ssm, weight_decay=0.0, total_steps=1000, warmup_frac=0.001)
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(ones, state, params)
    assert float(jnp.abs(updates.blocks[0].layer.ssm.log_dt).max()) == pytest.approx(lr_ssm, rel=1e-3)
    assert float(jnp.abs(updates.blocks[0].layer.ssm.d).min()) == pytest.approx(lr, rel=1e-3)


def test_model_argument_errors_name_value_and_allowed():
    with pytest.raises(ValueError, match=r"`pooling` \(='max'\) is not supported; expected one of"):
        _model("max")
    with pytest.raises(ValueError, match=r"`method` \(='euler'\) is not a discretization"):
        layers.DiagonalSSM(H, N, method="euler", key=jax.random.key(0))


@pytest.mark.parametrize("transform", layers.REAL_TRANSFORMS)
def test_real_transforms_start_from_the_same_init(transform):
    ref = layers.DiagonalSSM(H, N, init="legs", key=jax.random.key(0))
    ssm = layers.DiagonalSSM(H, N, init="legs", real_transform=transform, key=jax.random.key(0))
    np.testing.assert_allclose(ssm.eigenvalues(), ref.eigenvalues(), rtol=1e-14)
    np.testing.assert_array_equal(ssm.c_re, ref.c_re)


@pytest.mark.parametrize("method", discretize.METHODS)
def test_relu_transform_keeps_re_negative_and_none_does_not(method):
    """Re(lambda) = -(relu(x) + 1e-4) < 0 for any raw leaf x (so |Abar| < 1); with none,
    Re(lambda) = -x exactly: a negative leaf makes the mode unstable (|Abar| > 1)."""
    raw = jax.random.uniform(jax.random.key(1), (H, N // 2), minval=-10.0, maxval=10.0)
    relu = eqx.tree_at(lambda s: s.log_re, layers.DiagonalSSM(H, N, init="lin", method=method, real_transform="relu",
                                                              key=jax.random.key(0)), raw)
    lam = relu.eigenvalues()
    assert float(lam.real.max()) == pytest.approx(-layers.RELU_FLOOR) and float(lam.real.max()) < 0
    np.testing.assert_allclose(lam.real, -(np.maximum(raw, 0) + 1e-4), rtol=1e-14)
    abar = discretize.discretize(lam, relu.b_re + 1j * relu.b_im, relu.step()[:, None], method).abar
    assert float(jnp.abs(abar).max()) < 1
    none = eqx.tree_at(lambda s: s.log_re, layers.DiagonalSSM(H, N, init="lin", method=method, real_transform="none",
                                                              key=jax.random.key(0)), raw)
    np.testing.assert_array_equal(none.eigenvalues().real, -raw)
    abar = discretize.discretize(none.eigenvalues(), none.b_re + 1j * none.b_im, none.step()[:, None], method).abar
    assert float(jnp.abs(abar).max()) > 1  # unconstrained: the ablation's point


def test_frozen_b_receives_exactly_zero_update_per_run():
    """train_b = 0 (a traced per-run scalar, as in a batched job) zeroes every update of B
    while the other SSM leaves move; train_b = 1 updates B like log_dt's group (lr_ssm)."""
    params = eqx.filter(_model(depth=2), eqx.is_array)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)

    def updates(train_b):
        opt = optim.s4d_optimizer(lr=1e-2, lr_ssm=1e-3, weight_decay=0.1, total_steps=100, warmup_frac=0.01,
                                  train_b=train_b)
        state = opt.init(params)
        for _ in range(3):
            up, state = opt.update(grads, state, params)
        return up

    both = jax.vmap(updates)(jnp.array([1.0, 0.0]))
    for block in both.blocks:
        ssm = block.layer.ssm
        for name in optim.B_LEAVES:
            leaf = np.asarray(getattr(ssm, name))
            assert (leaf[1] == 0).all(), name  # frozen: exactly zero
            np.testing.assert_allclose(leaf[0], np.asarray(ssm.log_dt)[0, :1, None] * np.ones_like(leaf[0]), rtol=1e-6)
        assert (np.asarray(ssm.log_re)[1] != 0).all() and (np.asarray(ssm.c_re)[1] != 0).all()  # the rest moves
    model = _model(depth=2)
    moved = eqx.apply_updates(model, jax.tree.map(lambda u: u[1], both))
    for before, after in zip(model.ssms(), moved.ssms(), strict=True):
        np.testing.assert_array_equal(after.b_re, before.b_re)
        np.testing.assert_array_equal(after.b_im, before.b_im)


@pytest.mark.parametrize("init", ["legs", "inv", "lin", "real", "random"])
def test_rate_two_kernel_is_the_sum_of_adjacent_taps(init):
    """Eq. 18 (ZOH): the kernel at 2 Delta is K_2l + K_2l+1 of the kernel at Delta, to 1e-12
    (float64, relative to the largest tap); `at_rate` changes log_dt by log 2 and nothing else."""
    ssm = layers.DiagonalSSM(H, N, init=init, method="zoh", dt_min=1e-3, dt_max=0.1, key=jax.random.key(7))
    fast = ssm.kernel(2 * L)
    slow = layers.at_rate(ssm, 2.0)
    got = slow.kernel(L)
    want = fast[:, 0::2] + fast[:, 1::2]
    assert float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want))) < 1e-12
    np.testing.assert_allclose(slow.step(), 2 * ssm.step(), rtol=1e-14)
    for name in ("log_re", "im", "b_re", "b_im", "c_re", "c_im", "d"):
        np.testing.assert_array_equal(getattr(slow, name), getattr(ssm, name))
    assert (slow.method, slow.real_transform) == (ssm.method, ssm.real_transform)


def test_model_at_rate_two_reads_the_signal_at_every_other_sample():
    """The whole model at r = 2 on x[::2]: each SSM convolves with the pair sums of its rate-1
    kernel (checked against a direct construction), every DiagonalSSM's Delta doubled, one
    compile for any r (a traced rate)."""
    model = _model("none", depth=2)
    x = jax.random.normal(jax.random.key(8), (2 * L, 2))
    slow = layers.at_rate(model, 2.0)
    for a, b in zip(model.ssms(), slow.ssms(), strict=True):
        np.testing.assert_allclose(b.step(), 2 * a.step(), rtol=1e-14)
        k = a.kernel(2 * L)
        u = jax.random.normal(jax.random.key(9), (H, L))
        want = conv.causal_fft_conv(u, k[:, 0::2] + k[:, 1::2]) + a.d[:, None] * u
        np.testing.assert_allclose(b(u), want, rtol=1e-10, atol=1e-12)
    assert slow(x[::2]).shape == (L, 3)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(m, r, x):
        return layers.at_rate(m, r)(x)

    for r in (1.0, 2.0, 4.0):
        run(model, jnp.asarray(r), x[::2])
    with pytest.raises(ValueError, match=r"`rate` \(=0\) must be > 0"):
        layers.at_rate(model, 0)


def test_unknown_real_transform_names_value_and_allowed():
    with pytest.raises(ValueError, match=r"`real_transform` \(='softplus'\) is not supported; expected one of"):
        layers.DiagonalSSM(H, N, real_transform="softplus", key=jax.random.key(0))


def _direct_bidirectional(k_fwd, k_bwd, u):
    """y_l = sum_{j <= l} K_{l-j} u_j + sum_{j > l} K'_{j-l-1} u_j, by loops (float64)."""
    length = u.shape[-1]
    y = np.zeros_like(u)
    for h in range(u.shape[0]):
        for l in range(length):
            y[h, l] = sum(k_fwd[h, l - j] * u[h, j] for j in range(l + 1))
            y[h, l] += sum(k_bwd[h, j - l - 1] * u[h, j] for j in range(l + 1, length))
    return y


def test_bidirectional_ssm_adds_the_anticausal_kernel():
    """freqbias X4's bidirectional layer: the forward kernel on the past and present, the
    backward kernel (its own C) on the strict future, as the official layout [K, 0, flip(K')]
    (float64, 1e-10); the forward leaves are those of the unidirectional layer."""
    key = jax.random.key(3)
    one = layers.DiagonalSSM(3, 8, init="lin", key=key)
    two = layers.DiagonalSSM(3, 8, init="lin", bidirectional=True, key=key)
    for name in ("log_re", "im", "b_re", "b_im", "c_re", "c_im", "d", "log_dt"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    u = np.asarray(jax.random.normal(jax.random.key(4), (3, 24)))
    k_f, k_b = np.asarray(two.kernel(24)), np.asarray(two.kernel(24, backward=True))
    assert np.abs(k_b - k_f).max() > 1e-3  # its own C
    want = _direct_bidirectional(k_f, k_b, u) + np.asarray(two.d)[:, None] * u
    np.testing.assert_allclose(np.asarray(two(jnp.asarray(u))), want, atol=1e-10)
    # causal alone: a change of u at time 10 moves no output before 10
    bumped = u.copy()
    bumped[:, 10] += 1.0
    diff = np.asarray(one(jnp.asarray(bumped)) - one(jnp.asarray(u)))
    assert np.abs(diff[:, :10]).max() < 1e-12 and np.abs(diff[:, 10:]).max() > 1e-3
    diff2 = np.asarray(two(jnp.asarray(bumped)) - two(jnp.asarray(u)))
    assert np.abs(diff2[:, :10]).max() > 1e-6


def test_learnable_sobolev_filter_is_eq_14_and_the_identity_at_init():
    """The learnable Sobolev filter: at its init (s_h = 0) the plain convolution (float64,
    1e-12); with s_h set, the filtered convolution of `ssm.sobolev` at the `lra` preset
    (w_m = (1 + m/(2L))^{s_h}, kappa = 1), channel by channel; and s_h gets a gradient."""
    from ssmflow.ssm.sobolev import preset_kappa, sobolev_fft_conv

    key = jax.random.key(5)
    plain = layers.DiagonalSSM(4, 8, init="lin", key=key)
    filt = layers.DiagonalSSM(4, 8, init="lin", sobolev="learnable", key=key)
    u = jax.random.normal(jax.random.key(6), (4, 32))
    np.testing.assert_allclose(np.asarray(filt(u)), np.asarray(plain(u)), atol=1e-12)
    s_h = jnp.asarray([-1.0, 0.0, 0.5, 2.0])
    tilted = eqx.tree_at(lambda m: m.s_h, filt, s_h)
    want = sobolev_fft_conv(u, filt.kernel(32), s_h, preset_kappa("lra", 1.0)) + filt.d[:, None] * u
    np.testing.assert_allclose(np.asarray(tilted(u)), np.asarray(want), atol=1e-12)
    assert np.abs(np.asarray(tilted(u) - filt(u))[0]).max() > 1e-3  # s_h = -1 changes channel 0
    grad = jax.grad(lambda m: jnp.sum(m(u) ** 2))(filt)
    assert np.abs(np.asarray(grad.s_h)).min() > 0
    with pytest.raises(ValueError, match="sobolev"):
        layers.DiagonalSSM(4, 8, sobolev="lra", key=key)
