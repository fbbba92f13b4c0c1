"""The two training tasks of the `s4d` study (no downloads: one ships with scikit-learn, one is generated).

- **sdigits**: scikit-learn's bundled 8x8 digits (1797 images, 10 classes), divided by
  16, resized bilinearly to `image_size` x `image_size` and read row by row as a
  sequence of length L = image_size^2 (d_in = 1). Stratified 70/10/20 split (seed 0),
  standardized with the training mean and std. Metric: accuracy (chance 0.1).
- **delay**: a long-range memory task. The input is white noise u ~ N(0, 1) of length
  L; the target is the input delayed by d = round(lag L) steps, y_l = u_{l-d}, scored
  on l >= d (sequence to sequence, causal). A kernel that picks out exactly one lag
  far in the past needs long memory and fine frequency resolution; both get harder as
  L (and with it d) grows. Metric: R^2 = 1 - MSE / Var(u) = 1 - MSE (chance 0).
  Batches are generated on the fly from the step's key; val and test sets are fixed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmflow._types import Array, Float, PRNGKeyArray

TASKS = ("sdigits", "delay")
VAL_KEY, TEST_KEY = 1, 2  # fixed generated evaluation sets (delay)


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


def sdigits_splits(image_size: int, seed: int = 0) -> tuple[TaskData, float, float]:
    """`sdigits_data` with the training mean and std it standardized with."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = jnp.asarray(digits.images / 16.0)
    if image_size != 8:
        images = jax.image.resize(images, (images.shape[0], image_size, image_size), "linear")
    x = np.asarray(images, dtype=float).reshape(images.shape[0], -1, 1)
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


class Task(NamedTuple):
    """What training and evaluation need to know about a task (all static)."""

    name: str
    length: int
    d_in: int
    d_out: int
    pooling: str  # "mean" (sdigits) or "none" (delay, sequence to sequence)
    lag: int  # delay only (0 otherwise)
    metric: str  # "accuracy" (sdigits) or "r2" (delay)

    def sample(self, key: PRNGKeyArray, batch: int, train_x: Array | None, train_y: Array | None):
        """A training minibatch `(x, y)`: drawn from the train split (sdigits) or generated (delay)."""
        if self.name == "delay":
            return delay_batch(key, batch, self.length, self.lag)
        idx = jax.random.randint(key, (batch,), 0, train_x.shape[0])
        return train_x[idx], train_y[idx]

    def sample_loss(self, pred: Array, y: Array) -> Float[Array, ""]:
        """One sample's loss: cross-entropy (sdigits) or MSE over positions l >= lag (delay)."""
        if self.name == "delay":
            return jnp.mean((pred[self.lag:] - y[self.lag:]) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(pred, y)

    def sample_score(self, pred: Array, y: Array) -> Float[Array, ""]:
        """One sample's metric: correct or not (sdigits) or 1 - MSE, i.e. R^2 of unit-variance targets (delay)."""
        if self.name == "delay":
            return 1.0 - self.sample_loss(pred, y)
        return (jnp.argmax(pred) == y).astype(pred.dtype)


def task_info(settings: dict) -> Task:
    """The task (static description, no data) from an experiment's settings."""
    name = settings["task"]
    if name == "sdigits":
        return Task(name, settings["image_size"] ** 2, 1, 10, "mean", 0, "accuracy")
    if name == "delay":
        length = settings["length"]
        return Task(name, length, 1, 1, "none", int(round(settings["lag"] * length)), "r2")
    raise ValueError(f"`task` (={name!r}) is not an s4d task; expected one of {TASKS}.")


def make_task(settings: dict) -> tuple[Task, TaskData]:
    """The task and its fixed data from an experiment's settings (config keys of the schema)."""
    task = task_info(settings)
    if task.name == "sdigits":
        return task, sdigits_data(settings["image_size"])
    return task, delay_data(task.length, task.lag, settings["n_eval"], settings["n_eval"])
