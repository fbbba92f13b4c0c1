"""The data stage of the `s4d` study: an experiment's task data as one labelled store.

`data_dataset(spec)` (rule `s4d_data`) writes `results/s4d/<exp>/data.zarr`; every
training shard of the experiment reads it (`task_data`), so the shards train and
evaluate on the very same arrays.

- **sdigits**: all 1797 sequences with their split (train/val/test: stratified 70/10/20,
  seed 0), label and position in scikit-learn's `load_digits`, standardized with the
  train statistics (attrs `standardize`).
- **psdigits**: the same, every sequence reordered by one fixed permutation (attrs
  `permutation`, seed `tasks.PSDIGITS_SEED`).
- **delay**, **adding**, **tones**: the fixed val and test sets (keys `tasks.VAL_KEY`,
  `tasks.TEST_KEY`). Training batches are generated per step, in training, from the step's
  key: the store holds the generator's parameters (attrs `generator`), and attrs
  `fresh_samples` says so.
- **tones** also stores its half-rate test set for the zero-shot rate change (X5):
  `x_half`, `y_half` on dims (`sample_half`, `time_half`, `feature`), the test sequences
  at every other sample (L/2 samples of the same continuous signals, noise included),
  with coord `half_of` = the `sample` each comes from.

Inputs are stored as the model consumes them (the spec's precision, float32 by default),
so training from the store gives the same numbers as synthesizing in the job. None of
it depends on the seeds, the inits or the shard.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ssmflow.studies.s4d import DATA_SETTINGS
from ssmflow.studies.s4d import tasks as tk

SPLITS = ("train", "val", "test")
#: dims of the data store kept whole in one chunk (`sample`, `sample_half` dropped where that chunk would be too big)
WHOLE_DIMS = ("sample", "time", "feature", "sample_half", "time_half")
#: what the generated tasks' batches are, for the store's `generator` attrs
GENERATORS = {
    "delay": {"function": "ssmflow.studies.s4d.tasks.delay_batch", "x": "N(0, 1) white noise (batch, length, 1)",
              "y": "x delayed by lag steps, zeros before the lag"},
    "adding": {"function": "ssmflow.studies.s4d.tasks.adding_batch",
               "x": "(batch, length, 2): values U(0, 1) and a marker channel with one 1 uniform in each half",
               "y": "the sum of the two marked values (batch,)"},
    "tones": {"function": "ssmflow.studies.s4d.tasks.tones_batch",
              "x": "(batch, length, 1): three tone segments (boundaries U[0.25 L, 0.4 L], U[0.6 L, 0.75 L]), "
                   "amplitudes U(0.5, 1), phases U(0, 2 pi), plus N(0, 0.5^2) white noise",
              "y": "class 0-9: the ordered frequency triple of attrs tones_classes (indices into tones_codebook)"},
}


def data_spec(spec: dict) -> dict:
    """The part of an experiment (or shard) spec the task data depends on (its digest is the store's)."""
    settings = spec["settings"]
    return {"study": spec["study"], "task": settings["task"], **{k: settings[k] for k in DATA_SETTINGS[settings["task"]]},
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
    **Returns:** a Dataset with `x` (sample, time, feature), `y` (sample) labels (sdigits,
    tones) or sums (adding), or (sample, time, feature) targets (delay), coords `split` and
    `source_index` on `sample`; tones also `x_half`, `y_half` (module docstring); attrs:
    provenance, the task, `fresh_samples`, `whole_dims` (the store's chunk layout).
    """
    from ssmflow import store
    from ssmflow.config import digest

    settings, common = spec["settings"], spec["common"]
    _check_precision(common["precision"])
    task = tk.task_info(settings)
    extra: dict = {}
    if task.name in tk.DIGITS_TASKS:
        permuted = task.name == "psdigits"
        data, mean, std = tk.sdigits_splits(settings["image_size"], permuted=permuted)
        if permuted:
            extra.update(permutation={"seed": tk.PSDIGITS_SEED, "how": "x[:, perm] of the row-major sequence, "
                                      "perm = numpy.random.default_rng(seed).permutation(L), before the split"})
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
        data = tk.make_task(settings)[1]
        call = (f"delay_batch(k_data, batch, {task.length}, {task.lag})" if task.name == "delay"
                else f"{task.name}_batch(k_data, batch, {task.length})")
        extra.update(
            generator={**GENERATORS[task.name], "length": task.length, "val_key": tk.VAL_KEY, "test_key": tk.TEST_KEY,
                       **({"lag": task.lag} if task.name == "delay" else {})},
            fresh_samples=("training batches are generated per step, in training, not stored: "
                           f"{call} with k_data = split(fold_in(run's stream key, step))[0], the stream key "
                           "train.run_key('s4d', {experiment, seed, stream: 'train'}) (attrs generator). "
                           f"The store holds the fixed val and test sets, from jax.random.key({tk.VAL_KEY}) and "
                           f"jax.random.key({tk.TEST_KEY})."),
        )
        if task.name == "tones":
            extra.update(tones_codebook=[float(w) for w in tk.TONES_CODEBOOK], tones_classes=tk.tones_classes().tolist(),
                         tones_noise_sd=tk.TONES_NOISE)
    parts = [(name, split) for name, split in zip(SPLITS, data, strict=True) if split is not None]
    x = np.concatenate([_as_model_input(s.x) for _, s in parts])
    y = np.concatenate([np.asarray(s.y) if np.issubdtype(np.asarray(s.y).dtype, np.integer) else _as_model_input(s.y)
                        for _, s in parts])
    split = np.concatenate([np.full(s.x.shape[0], name, dtype=object) for name, s in parts])
    source = np.concatenate([s.index if s.index is not None else np.arange(s.x.shape[0]) for _, s in parts])
    y_dims = ("sample",) if y.ndim == 1 else ("sample", "time", "feature")
    y_attrs = {"long_name": {"sdigits": "digit label (0-9)", "psdigits": "digit label (0-9)", "delay": f"target: the input delayed by {task.lag} steps",
                             "adding": "target: the sum of the two marked values",
                             "tones": "class label (0-9): an ordered frequency triple"}[task.name]}
    variables = {
        "x": (("sample", "time", "feature"), x, {"long_name": "model input (standardized)" if task.name in tk.DIGITS_TASKS else "model input u"}),
        "y": (y_dims, y, y_attrs),
    }
    coords = {}
    if task.name == "tones":
        test = np.flatnonzero(split == "test")
        variables["x_half"] = (("sample_half", "time_half", "feature"), tk.half_rate(x[test]),
                               {"long_name": "test inputs at every other sample (rate factor r = 2: Delta -> 2 Delta)"})
        variables["y_half"] = (("sample_half",), y[test], {"long_name": "class label of each half-rate test sequence"})
        coords = {"sample_half": np.arange(test.size), "time_half": np.arange(variables["x_half"][1].shape[1]),
                  "half_of": ("sample_half", test.astype(np.int64), {"long_name": "the `sample` (test split) it is taken from"})}
        extra.update(half_rate={"rate": 2, "length": int(variables["x_half"][1].shape[1]),
                                "top_frequency": float(2 * tk.TONES_CODEBOOK.max()),
                                "how": "x_half = x[test samples, ::2]: the same continuous signals sampled every 2 steps"})
    ds = xr.Dataset(
        variables,
        coords={
            "sample": np.arange(x.shape[0]), "time": np.arange(x.shape[1]), "feature": np.arange(x.shape[2]),
            "split": ("sample", split, {"long_name": "split of each sample: " + ", ".join(n for n, _ in parts)}),
            "source_index": ("sample", source.astype(np.int64),
                             {"long_name": "position in load_digits" if task.name in tk.DIGITS_TASKS else "position in its generated set"}),
            **coords,
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
    """WHOLE_DIMS, without `sample` (`sample_half`) where one chunk of all samples would pass the store's cap."""
    from ssmflow import store

    samples = ("sample", "sample_half")
    whole = store.fitting_whole_dims(ds, [d for d in WHOLE_DIMS if d not in samples], samples)
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


def half_rate_test(ds: xr.Dataset) -> tk.Split:
    """The half-rate test set of a tones data store (X5): inputs at every other sample, labels,
    and `index` = the `sample` of the full-rate test sequence each comes from."""
    if "x_half" not in ds:
        raise ValueError(f"the data store of task {ds.attrs.get('task')!r} has no half-rate test set; only tones has one.")
    sub = ds[["x_half", "y_half"]].load()
    return tk.Split(sub.x_half.values, sub.y_half.values, np.asarray(ds.half_of.values))


def check_matches(spec: dict, ds: xr.Dataset) -> None:
    """Refuse a data store made from other task settings than the spec's."""
    want, have = data_spec(spec), ds.attrs.get("data_spec")
    if have is not None and dict(have) != want:
        raise ValueError(f"the data store was made for {have!r}, the spec needs {want!r}: rerun the data stage for this config.")
