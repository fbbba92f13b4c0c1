"""The data stage of the `s4d` study: an experiment's task data as one labelled store.

`data_dataset(spec)` (rule `s4d_data`) writes `results/s4d/<exp>/data.zarr`; every
training shard of the experiment reads it (`task_data`), so the shards train and
evaluate on the very same arrays.

- **sdigits**: all 1797 sequences with their split (train/val/test: stratified 70/10/20,
  seed 0), label and position in scikit-learn's `load_digits`, standardized with the
  train statistics (attrs `standardize`).
- **delay**: the fixed val and test sets (keys `tasks.VAL_KEY`, `tasks.TEST_KEY`). Training
  batches are generated per step, in training, from the step's key: the store holds the
  generator's parameters (attrs `generator`), and attrs `fresh_samples` says so.

Inputs are stored as the model consumes them (the spec's precision, float32 by default),
so training from the store gives the same numbers as synthesizing in the job. None of
it depends on the seeds, the inits or the shard.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow.studies.s4d import tasks as tk

SPLITS = ("train", "val", "test")
#: dims of the data store kept whole in one chunk (`sample` dropped where that chunk would be too big)
WHOLE_DIMS = ("sample", "time", "feature")


def data_spec(spec: dict) -> dict:
    """The part of an experiment (or shard) spec the task data depends on (its digest is the store's)."""
    settings = spec["settings"]
    keys = ("image_size",) if settings["task"] == "sdigits" else ("length", "lag", "n_eval")
    return {"study": spec["study"], "task": settings["task"], **{k: settings[k] for k in keys},
            "precision": spec["common"]["precision"]}


def _check_precision(precision: str) -> None:
    import jax

    if (precision == "float64") != bool(jax.config.jax_enable_x64):
        raise ValueError(f"the spec's `precision` (={precision!r}) is not JAX's current one; "
                         "call ssmflow.train.set_precision(spec['common']['precision']) first.")


def _as_model_input(a: np.ndarray) -> np.ndarray:
    """An array exactly as training feeds it to the model (jnp.asarray to the default float)."""
    import jax.numpy as jnp

    return np.asarray(jnp.asarray(a, jnp.result_type(float)))


def data_dataset(spec: dict) -> xr.Dataset:
    """The experiment's task data: every split's inputs and targets on one `sample` dim.

    **Arguments:** an experiment spec (`grid.experiment_spec`) or a shard spec (same data).
    JAX's precision must be the spec's.
    **Returns:** a Dataset with `x` (sample, time, feature), `y` (sample) labels (sdigits) or
    (sample, time, feature) targets (delay), coords `split` and `source_index` on `sample`;
    attrs: provenance, the task, `fresh_samples`, `whole_dims` (the store's chunk layout).
    """
    from ssmflow import store
    from ssmflow.config import digest

    settings, common = spec["settings"], spec["common"]
    _check_precision(common["precision"])
    task = tk.task_info(settings)
    extra: dict = {}
    if task.name == "sdigits":
        data, mean, std = tk.sdigits_splits(settings["image_size"])
        extra.update(
            image_size=settings["image_size"], split_seed=0, split_fractions={"train": 0.7, "val": 0.1, "test": 0.2},
            standardize={"mean": mean, "std": std, "from": "train split, after /16 and the bilinear resize"},
            source="sklearn.datasets.load_digits (1797 8x8 images, 10 classes), /16, resized to image_size^2, row-major",
            fresh_samples=("training minibatches are drawn per step, in training, not stored: indices "
                           "jax.random.randint(k_data, (batch,), 0, n_train) into the train split (in "
                           "stored order), k_data = split(fold_in(run's stream key, step))[0]; the stream key is "
                           "train.run_key('s4d', {experiment, seed, stream: 'train'}). Val and test are fixed (stored)."),
        )
    else:
        data = tk.delay_data(task.length, task.lag, settings["n_eval"], settings["n_eval"])
        extra.update(
            generator={"function": "ssmflow.studies.s4d.tasks.delay_batch", "x": "N(0, 1) white noise (batch, length, 1)",
                       "y": "x delayed by lag steps, zeros before the lag", "length": task.length, "lag": task.lag,
                       "val_key": tk.VAL_KEY, "test_key": tk.TEST_KEY},
            fresh_samples=("training batches are generated per step, in training, not stored: "
                           f"delay_batch(k_data, batch, {task.length}, {task.lag}) with "
                           "k_data = split(fold_in(run's stream key, step))[0], the stream key "
                           "train.run_key('s4d', {experiment, seed, stream: 'train'}) (attrs generator). "
                           f"The store holds the fixed val and test sets, from jax.random.key({tk.VAL_KEY}) and "
                           f"jax.random.key({tk.TEST_KEY})."),
        )
    parts = [(name, split) for name, split in zip(SPLITS, data, strict=True) if split is not None]
    x = np.concatenate([_as_model_input(s.x) for _, s in parts])
    y = np.concatenate([_as_model_input(s.y) if task.name == "delay" else np.asarray(s.y) for _, s in parts])
    split = np.concatenate([np.full(s.x.shape[0], name, dtype=object) for name, s in parts])
    source = np.concatenate([s.index if s.index is not None else np.arange(s.x.shape[0]) for _, s in parts])
    y_dims = ("sample",) if y.ndim == 1 else ("sample", "time", "feature")
    y_attrs = ({"long_name": "digit label (0-9)"} if task.name == "sdigits"
               else {"long_name": f"target: the input delayed by {task.lag} steps"})
    ds = xr.Dataset(
        {
            "x": (("sample", "time", "feature"), x, {"long_name": "model input (standardized)" if task.name == "sdigits" else "model input u"}),
            "y": (y_dims, y, y_attrs),
        },
        coords={
            "sample": np.arange(x.shape[0]), "time": np.arange(x.shape[1]), "feature": np.arange(x.shape[2]),
            "split": ("sample", split, {"long_name": "split of each sample: " + ", ".join(n for n, _ in parts)}),
            "source_index": ("sample", source.astype(np.int64),
                             {"long_name": "position in load_digits" if task.name == "sdigits" else "position in its generated set"}),
        },
    )
    ds.attrs = store.provenance(
        digest(data_spec(spec)), common["precision"], study=spec["study"], experiment=spec["experiment"],
        task=task.name, metric=task.metric, length=task.length, d_in=task.d_in, d_out=task.d_out,
        pooling=task.pooling, lag=task.lag, splits=[n for n, _ in parts],
        split_sizes={n: int(s.x.shape[0]) for n, s in parts}, data_spec=data_spec(spec), **extra,
    )
    ds.attrs["whole_dims"] = whole_dims(ds)
    return ds


def whole_dims(ds: xr.Dataset) -> list[str]:
    """WHOLE_DIMS, without `sample` where one chunk of all samples would pass the store's cap."""
    from ssmflow import store

    whole = store.fitting_whole_dims(ds, [d for d in WHOLE_DIMS if d != "sample"], ["sample"])
    return [d for d in WHOLE_DIMS if d in whole]


def task_data(ds: xr.Dataset) -> tk.TaskData:
    """The splits of a data store as `tasks.TaskData` (arrays loaded, in stored order)."""
    split = np.array([str(v) for v in ds["split"].values])  # object or StringDType labels
    out = []
    for name in SPLITS:
        mask = split == name
        if not mask.any():
            out.append(None)
            continue
        sub = ds[["x", "y"]].isel(sample=np.flatnonzero(mask)).load()
        out.append(tk.Split(sub.x.values, sub.y.values, np.asarray(sub.source_index.values)))
    return tk.TaskData(*out)


def check_matches(spec: dict, ds: xr.Dataset) -> None:
    """Refuse a data store made from other task settings than the spec's."""
    want, have = data_spec(spec), ds.attrs.get("data_spec")
    if have is not None and dict(have) != want:
        raise ValueError(f"the data store was made for {have!r}, the spec needs {want!r}: rerun the data stage for this config.")
