"""The training tasks of the `s4d` study (no downloads: one ships with scikit-learn, the others are generated).

- **sdigits**: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), divided by
  16, resized bilinearly to `image_size` x `image_size` and read row by row as a
  sequence of length L = image_size^2 (d_in = 1). Stratified 70/10/20 split (seed 0),
  standardized with the training mean and std. Metric: accuracy (chance 0.1).
- **psdigits**: sdigits with one fixed permutation of the L positions (seed 1234,
  `psdigits_permutation`), the same for every sample and split: neighbouring pixels end
  up far apart, so the model needs long-range memory.
- **delay**: a long-range memory task. The input is white noise u ~ N(0, 1) of length
  L; the target is the input delayed by d = round(lag L) steps, y_l = u_{l-d}, scored
  on l >= d (sequence to sequence, causal). A kernel that picks out exactly one lag
  far in the past needs long memory and fine frequency resolution; both get harder as
  L (and with it d) grows. Metric: R^2 = 1 - MSE / Var(u) = 1 - MSE (chance 0).
  Batches are generated on the fly from the step's key; val and test sets are fixed.
- **adding** (spec section 8): the standard adding problem. Two input channels, values
  v_l ~ U(0, 1) and a marker channel with one 1 uniform in each half; the target is the
  sum of the two marked values, read at the last step (pooling `last`: a causal model's
  last step has seen both markers). Metric: MSE (predicting 1 gives 1/6, the variance
  of a sum of two U(0, 1)).
- **tones** (spec section 8, a Speech-Commands-like proxy): 10 classes, each an ordered
  triple of frequencies from a geometric codebook of 8 in [0.02 pi, 0.45 pi] rad/sample
  (`TONES_CODEBOOK`, `tones_classes`: drawn once, seed 0, with 3 pairs of classes that
  share a frequency set in another order). A sample is three consecutive tone segments
  (boundaries b1 ~ U[0.25 L, 0.4 L], b2 ~ U[0.6 L, 0.75 L]), amplitudes U(0.5, 1), random
  phases, plus white noise of sd 0.5; the class is read from the mean over time. Metric:
  accuracy (chance 0.1). Its half-rate test set (for the zero-shot rate change, X5) is the
  test set at every other sample: the same continuous signals sampled every 2 steps
  (L/2 samples, top frequency 0.9 pi < pi, no aliasing).
Generated tasks draw their training batches per step from the step's key; their
validation and test sets are fixed (keys `VAL_KEY`, `TEST_KEY`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmflow._types import Array, Float, PRNGKeyArray

TASKS = ("sdigits", "psdigits", "delay", "adding", "tones")
#: the tasks read from scikit-learn's digits (a train split, minibatches drawn from it)
DIGITS_TASKS = ("sdigits", "psdigits")
PSDIGITS_SEED = 1234
VAL_KEY, TEST_KEY = 1, 2  # fixed generated evaluation sets (delay, adding, tones)
#: tones: the frequency codebook (rad/sample), geometric from 0.02 pi to 0.45 pi
TONES_CODEBOOK = np.geomspace(0.02 * np.pi, 0.45 * np.pi, 8)
TONES_CLASSES, TONES_SHARED_PAIRS, TONES_SEED = 10, 3, 0
TONES_NOISE = 0.5


class Split(NamedTuple):
    """Inputs `(sample, time, d_in)` and targets of one split; `index`: each sample's
    position in its source (sdigits: the order of `load_digits`), None if generated."""

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray | None = None


class TaskData(NamedTuple):
    """A task's fixed data: train split (None if generated), val and test splits."""

    train: Split | None
    val: Split
    test: Split


def sdigits_data(image_size: int, seed: int = 0) -> TaskData:
    """Sequential digits: resized, flattened row-major, split 70/10/20 stratified, standardized."""
    return sdigits_splits(image_size, seed)[0]


def psdigits_permutation(length: int) -> np.ndarray:
    """The fixed permutation of psdigits: position l of a sequence holds pixel perm[l] (row-major)."""
    return np.random.default_rng(PSDIGITS_SEED).permutation(length)


def sdigits_splits(image_size: int, seed: int = 0, permuted: bool = False) -> tuple[TaskData, float, float]:
    """`sdigits_data` with the training mean and std it standardized with; `permuted`: psdigits
    (the positions reordered by `psdigits_permutation`)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = jnp.asarray(digits.images / 16.0)
    if image_size != 8:
        images = jax.image.resize(images, (images.shape[0], image_size, image_size), "linear")
    x = np.asarray(images, dtype=float).reshape(images.shape[0], -1, 1)
    if permuted:
        x = x[:, psdigits_permutation(x.shape[1])]
    y = digits.target.astype(np.int32)
    i = np.arange(x.shape[0])
    x_rest, x_test, y_rest, y_test, i_rest, i_test = train_test_split(x, y, i, test_size=0.2, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val, i_train, i_val = train_test_split(x_rest, y_rest, i_rest, test_size=0.125, stratify=y_rest, random_state=seed)
    mean, std = x_train.mean(), x_train.std()
    splits = ((x_train, y_train, i_train), (x_val, y_val, i_val), (x_test, y_test, i_test))
    return TaskData(*(Split((a - mean) / std, b, c) for a, b, c in splits)), float(mean), float(std)


def delay_batch(key: PRNGKeyArray, batch: int, length: int, lag: int) -> tuple[Float[Array, "batch time 1"], Float[Array, "batch time 1"]]:
    """White-noise inputs and their copies delayed by `lag` steps (zeros before the lag)."""
    u = jax.random.normal(key, (batch, length, 1), dtype=jnp.result_type(float))
    return u, jnp.pad(u, ((0, 0), (lag, 0), (0, 0)))[:, :length]


def delay_data(length: int, lag: int, n_val: int, n_test: int) -> TaskData:
    """Fixed val and test sets of the delay task (keys VAL_KEY, TEST_KEY); no train split."""
    val = Split(*map(np.asarray, delay_batch(jax.random.key(VAL_KEY), n_val, length, lag)))
    test = Split(*map(np.asarray, delay_batch(jax.random.key(TEST_KEY), n_test, length, lag)))
    return TaskData(None, val, test)


def adding_batch(key: PRNGKeyArray, batch: int, length: int) -> tuple[Float[Array, "batch time 2"], Float[Array, " batch"]]:
    """Adding-problem inputs (values U(0, 1), a marker channel with one 1 in each half) and targets (the marked sum)."""
    k_v, k_1, k_2 = jax.random.split(key, 3)
    dtype = jnp.result_type(float)
    values = jax.random.uniform(k_v, (batch, length), dtype=dtype)
    half = length // 2
    first = jax.random.randint(k_1, (batch,), 0, half)
    second = jax.random.randint(k_2, (batch,), half, length)
    t = jnp.arange(length)
    marker = ((t == first[:, None]) | (t == second[:, None])).astype(dtype)
    return jnp.stack([values, marker], axis=-1), jnp.sum(values * marker, axis=1)


def adding_data(length: int, n_val: int, n_test: int) -> TaskData:
    """Fixed val and test sets of the adding problem (keys VAL_KEY, TEST_KEY); no train split."""
    val = Split(*map(np.asarray, adding_batch(jax.random.key(VAL_KEY), n_val, length)))
    test = Split(*map(np.asarray, adding_batch(jax.random.key(TEST_KEY), n_test, length)))
    return TaskData(None, val, test)


def tones_classes(seed: int = TONES_SEED) -> np.ndarray:
    """The class codebook of tones: `(TONES_CLASSES, 3)` ordered triples of distinct codebook indices.

    The first `2 TONES_SHARED_PAIRS` classes are pairs (2k, 2k + 1) with the same frequency
    set in another order; the others have sets of their own. Drawn once from `seed` (0).
    """
    rng = np.random.default_rng(seed)
    n_freq = len(TONES_CODEBOOK)
    sets: list[frozenset] = []
    triples: list[tuple[int, ...]] = []
    while len(triples) < TONES_CLASSES:
        triple = tuple(int(i) for i in rng.choice(n_freq, 3, replace=False))
        if frozenset(triple) in sets:
            continue
        sets.append(frozenset(triple))
        triples.append(triple)
        if len(triples) <= 2 * TONES_SHARED_PAIRS:  # its partner: the same set, another order
            other = tuple(int(i) for i in rng.permutation(triple))
            while other == triple:
                other = tuple(int(i) for i in rng.permutation(triple))
            triples.append(other)
    return np.array(triples[:TONES_CLASSES], dtype=np.int32)


def tones_segments(key: PRNGKeyArray, batch: int, length: int):
    """The continuous description of `batch` tones samples: labels `(batch,)`, boundaries
    `(batch, 2)` (b1 ~ U[0.25 L, 0.4 L], b2 ~ U[0.6 L, 0.75 L], continuous), amplitudes and
    phases `(batch, 3)`, and the noise key."""
    k_y, k_b1, k_b2, k_amp, k_phase, k_noise = jax.random.split(key, 6)
    dtype = jnp.result_type(float)
    y = jax.random.randint(k_y, (batch,), 0, TONES_CLASSES)
    b1 = jax.random.uniform(k_b1, (batch,), dtype=dtype, minval=0.25 * length, maxval=0.4 * length)
    b2 = jax.random.uniform(k_b2, (batch,), dtype=dtype, minval=0.6 * length, maxval=0.75 * length)
    amp = jax.random.uniform(k_amp, (batch, 3), dtype=dtype, minval=0.5, maxval=1.0)
    phase = jax.random.uniform(k_phase, (batch, 3), dtype=dtype, minval=0.0, maxval=2 * np.pi)
    return y, jnp.stack([b1, b2], axis=1), amp, phase, k_noise


def tones_signal(y, bounds, amp, phase, times: Float[Array, " time"]) -> Float[Array, "batch time"]:
    """The noiseless tones of `tones_segments` at continuous times `times` (in samples of
    the full rate): segment k is amp_k sin(omega_k t + phase_k), omega from the class's triple."""
    omega = jnp.asarray(TONES_CODEBOOK, times.dtype)[jnp.asarray(tones_classes())[y]]  # (batch, 3)
    seg = (times[None, :] >= bounds[:, :1]).astype(jnp.int32) + (times[None, :] >= bounds[:, 1:]).astype(jnp.int32)
    w, a, p = (jnp.take_along_axis(v, seg, axis=1) for v in (omega, amp, phase))
    return a * jnp.sin(w * times[None, :] + p)


def tones_batch(key: PRNGKeyArray, batch: int, length: int) -> tuple[Float[Array, "batch time 1"], Array]:
    """A batch of tones samples `(batch, L, 1)` (signal plus white noise of sd `TONES_NOISE`) and their labels."""
    y, bounds, amp, phase, k_noise = tones_segments(key, batch, length)
    times = jnp.arange(length, dtype=jnp.result_type(float))
    noise = TONES_NOISE * jax.random.normal(k_noise, (batch, length), dtype=times.dtype)
    return (tones_signal(y, bounds, amp, phase, times) + noise)[..., None], y


def half_rate(x: np.ndarray) -> np.ndarray:
    """Sequences `(sample, L, feature)` sampled at every other step, `(sample, ceil(L/2), feature)`:
    the same continuous signals at rate factor r = 2 (for tones, the noise too)."""
    return x[:, ::2]


def tones_data(length: int, n_val: int, n_test: int) -> TaskData:
    """Fixed val and test sets of tones (keys VAL_KEY, TEST_KEY); no train split (the half-rate
    test set is `half_rate(test.x)`)."""
    val = Split(*map(np.asarray, tones_batch(jax.random.key(VAL_KEY), n_val, length)))
    test = Split(*map(np.asarray, tones_batch(jax.random.key(TEST_KEY), n_test, length)))
    return TaskData(None, val, test)


#: the generated classification/regression tasks whose val and test sizes are `n_val`, `n_test`
GENERATED = {"adding": adding_data, "tones": tones_data}


class Task(NamedTuple):
    """What training and evaluation need to know about a task (all static)."""

    name: str
    length: int
    d_in: int
    d_out: int
    pooling: str  # "mean" (sdigits, tones), "last" (adding) or "none" (delay, sequence to sequence)
    lag: int  # delay only (0 otherwise)
    metric: str  # "accuracy" (sdigits, tones), "r2" (delay) or "mse" (adding)

    def sample(self, key: PRNGKeyArray, batch: int, train_x: Array | None, train_y: Array | None):
        """A training minibatch `(x, y)`: drawn from the train split (sdigits) or generated."""
        if self.name == "delay":
            return delay_batch(key, batch, self.length, self.lag)
        if self.name == "adding":
            return adding_batch(key, batch, self.length)
        if self.name == "tones":
            return tones_batch(key, batch, self.length)
        idx = jax.random.randint(key, (batch,), 0, train_x.shape[0])
        return train_x[idx], train_y[idx]

    def sample_loss(self, pred: Array, y: Array) -> Float[Array, ""]:
        """One sample's loss: cross-entropy (sdigits, tones), MSE over positions l >= lag (delay),
        or the squared error of the sum (adding)."""
        if self.name == "delay":
            return jnp.mean((pred[self.lag:] - y[self.lag:]) ** 2)
        if self.name == "adding":
            return (pred[0] - y) ** 2
        return optax.softmax_cross_entropy_with_integer_labels(pred, y)

    def sample_score(self, pred: Array, y: Array) -> Float[Array, ""]:
        """One sample's metric: correct or not (sdigits, tones), 1 - MSE, i.e. R^2 of
        unit-variance targets (delay), or the squared error (adding: its mean is the MSE)."""
        if self.name == "delay":
            return 1.0 - self.sample_loss(pred, y)
        if self.name == "adding":
            return self.sample_loss(pred, y)
        return (jnp.argmax(pred) == y).astype(pred.dtype)


def task_info(settings: dict) -> Task:
    """The task (static description, no data) from an experiment's settings."""
    name = settings["task"]
    if name in DIGITS_TASKS:
        return Task(name, settings["image_size"] ** 2, 1, 10, "mean", 0, "accuracy")
    if name == "delay":
        length = settings["length"]
        return Task(name, length, 1, 1, "none", int(round(settings["lag"] * length)), "r2")
    if name == "adding":
        return Task(name, settings["length"], 2, 1, "last", 0, "mse")
    if name == "tones":
        return Task(name, settings["length"], 1, TONES_CLASSES, "mean", 0, "accuracy")
    raise ValueError(f"`task` (={name!r}) is not an s4d task; expected one of {TASKS}.")


def make_task(settings: dict) -> tuple[Task, TaskData]:
    """The task and its fixed data from an experiment's settings (config keys of the schema)."""
    task = task_info(settings)
    if task.name in DIGITS_TASKS:
        return task, sdigits_splits(settings["image_size"], permuted=task.name == "psdigits")[0]
    if task.name == "delay":
        return task, delay_data(task.length, task.lag, settings["n_eval"], settings["n_eval"])
    return task, GENERATED[task.name](task.length, settings["n_val"], settings["n_test"])
