"""The generated s4d tasks adding and tones (s4d.md section 8): shapes, markers, targets, the class codebook."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from ssmflow.studies.s4d import tasks


def test_adding_batch_marks_one_value_in_each_half_and_sums_them():
    length = 100
    x, y = (np.asarray(a) for a in tasks.adding_batch(jax.random.key(0), 256, length))
    assert x.shape == (256, length, 2) and y.shape == (256,)
    values, marker = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(marker)) == {0.0, 1.0}
    assert (marker[:, : length // 2].sum(1) == 1).all() and (marker[:, length // 2:].sum(1) == 1).all()
    first, second = np.argmax(marker[:, : length // 2], 1), length // 2 + np.argmax(marker[:, length // 2:], 1)
    np.testing.assert_allclose(y, values[np.arange(256), first] + values[np.arange(256), second], rtol=1e-12)
    assert len(np.unique(first)) > 20 and len(np.unique(second)) > 20  # positions vary, anywhere in each half


def test_adding_predicting_one_scores_one_sixth():
    """The sum of two U(0, 1) has mean 1 and variance 2/12: predicting 1 gives MSE 1/6. On the
    fixed test set of 4096 the estimate's sd is sqrt((1/15 - 1/36)/4096) = 0.0031; 4 sd allowed."""
    task, data = tasks.make_task({"task": "adding", "length": 64, "n_val": 16, "n_test": 4096})
    assert (task.d_in, task.d_out, task.pooling, task.metric) == (2, 1, "last", "mse")
    ones = np.ones((4096, 1))
    mse = float(np.mean(jax.vmap(task.sample_score)(ones, data.test.y)))
    assert abs(mse - 1 / 6) < 4 * np.sqrt((1 / 15 - 1 / 36) / 4096), mse
    assert float(task.sample_loss(np.array([0.3]), np.array(0.5))) == pytest.approx(0.04)


def test_tones_codebook_and_classes():
    codebook = tasks.TONES_CODEBOOK
    assert len(codebook) == 8 and codebook[0] == pytest.approx(0.02 * np.pi) and codebook[-1] == pytest.approx(0.45 * np.pi)
    np.testing.assert_allclose(codebook[1:] / codebook[:-1], (0.45 / 0.02) ** (1 / 7), rtol=1e-12)  # geometric
    assert 2 * codebook.max() < np.pi  # the half-rate set (every other sample) does not alias: 0.9 pi
    classes = tasks.tones_classes()
    assert classes.shape == (10, 3) and ((classes >= 0) & (classes < 8)).all()
    assert all(len(set(c)) == 3 for c in classes.tolist())
    assert len({tuple(c) for c in classes.tolist()}) == 10  # distinct ordered triples
    shared = [(i, j) for i, j in itertools.combinations(range(10), 2) if set(classes[i]) == set(classes[j])]
    assert len(shared) >= 3  # pairs that differ only in the order of their frequencies
    np.testing.assert_array_equal(tasks.tones_classes(), classes)  # drawn once: the same every call


def test_tones_samples_play_their_class_triple_in_order():
    """Each of the three segments of a sample has its dominant frequency (DFT peak of the noisy
    segment, zero-padded) at the codebook frequency of the class's triple, in order."""
    length, batch = 4096, 12
    x, y = tasks.tones_batch(jax.random.key(3), batch, length)
    x, y = np.asarray(x)[..., 0], np.asarray(y)
    assert x.shape == (batch, length) and y.dtype.kind == "i" and ((y >= 0) & (y < 10)).all()
    labels, bounds, amp, phase, _ = (np.asarray(a) if i < 4 else a for i, a in
                                    enumerate(tasks.tones_segments(jax.random.key(3), batch, length)))
    np.testing.assert_array_equal(labels, y)
    assert ((bounds[:, 0] >= 0.25 * length) & (bounds[:, 0] <= 0.4 * length)).all()
    assert ((bounds[:, 1] >= 0.6 * length) & (bounds[:, 1] <= 0.75 * length)).all()
    assert ((amp >= 0.5) & (amp <= 1)).all()
    classes, n_fft = tasks.tones_classes(), 1 << 15
    omega = 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft
    for s in range(batch):
        edges = [0, int(np.ceil(bounds[s, 0])), int(np.ceil(bounds[s, 1])), length]
        for k in range(3):
            seg = x[s, edges[k]:edges[k + 1]]
            peak = omega[np.argmax(np.abs(np.fft.rfft(seg - seg.mean(), n=n_fft)))]
            want = tasks.TONES_CODEBOOK[classes[y[s], k]]
            assert abs(peak - want) < 2 * np.pi / len(seg), (s, k, peak, want)
    noise = x - np.asarray(tasks.tones_signal(*map(np.asarray, (labels, bounds, amp, phase)), np.arange(length, dtype=float)))
    assert abs(noise.std() - tasks.TONES_NOISE) < 0.01  # white noise of sd 0.5 on top


def test_tones_half_rate_is_every_other_sample_of_the_same_signal():
    """Sampling the continuous tones at t = 0, 2, 4, ... equals taking every other sample."""
    length = 256
    labels, bounds, amp, phase, _ = tasks.tones_segments(jax.random.key(5), 4, length)
    full = np.asarray(tasks.tones_signal(labels, bounds, amp, phase, np.arange(length, dtype=float)))
    half = np.asarray(tasks.tones_signal(labels, bounds, amp, phase, np.arange(0, length, 2, dtype=float)))
    np.testing.assert_array_equal(tasks.half_rate(full[..., None])[..., 0], half)
    assert tasks.half_rate(np.zeros((3, length, 1))).shape == (3, length // 2, 1)


@pytest.mark.parametrize("name", ["adding", "tones"])
def test_generated_sets_are_fixed_and_batches_follow_the_key(name):
    settings = {"task": name, "length": 64, "n_val": 8, "n_test": 16}
    task, first = tasks.make_task(settings)
    _, again = tasks.make_task(settings)
    assert first.train is None and first.val.x.shape[0] == 8 and first.test.x.shape[0] == 16
    np.testing.assert_array_equal(first.test.x, again.test.x)
    assert not np.array_equal(first.val.x[:8], first.test.x[:8])  # val and test: different keys
    a, b = task.sample(jax.random.key(1), 4, None, None), task.sample(jax.random.key(2), 4, None, None)
    assert a[0].shape == (4, 64, task.d_in) and not np.array_equal(a[0], b[0])


def test_psdigits_is_sdigits_with_one_fixed_permutation():
    sd, _, _ = tasks.sdigits_splits(8)
    ps, _, _ = tasks.sdigits_splits(8, permuted=True)
    perm = tasks.psdigits_permutation(64)
    assert sorted(perm.tolist()) == list(range(64)) and (perm != np.arange(64)).mean() > 0.9
    np.testing.assert_array_equal(perm, np.random.default_rng(1234).permutation(64))
    for a, b in zip(sd, ps, strict=True):  # the same samples, labels and split; positions reordered
        np.testing.assert_array_equal(b.x, a.x[:, perm])
        np.testing.assert_array_equal(b.y, a.y)
        np.testing.assert_array_equal(b.index, a.index)
    task, data = tasks.make_task({"task": "psdigits", "image_size": 8})
    assert (task.name, task.length, task.metric) == ("psdigits", 64, "accuracy")
    np.testing.assert_array_equal(data.test.x, ps.test.x)
