"""Zarr store I/O: atomic writes, readable string labels, gathering, provenance."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import ROOT, venv_env

from ssmflow import store


def _shard(n: int, param: str) -> xr.Dataset:
    ds = xr.Dataset(
        {"p": (("N", "param", "seed", "step"), np.random.default_rng(n).normal(size=(1, 1, 2, 5))),
         "b": (("N", "param", "seed", "state", "step"), np.ones((1, 1, 2, n, 5)))},
        coords={"N": [n], "param": np.array([param], dtype=object), "seed": [0, 1], "step": np.arange(5), "state": np.arange(n)},
    )
    ds.attrs = store.provenance(f"digest{n}{param}", "float64", shard=f"N={n}")
    return ds


def test_write_is_atomic_and_replaces_only_when_complete(tmp_path):
    path = tmp_path / "s.zarr"
    store.write_atomic(_shard(1, "tied"), path)
    bad = _shard(2, "tied")
    bad["meta"] = ("seed", np.array([{"a": 1}, {"b": 2}], dtype=object))  # dicts: zarr fails mid-write
    with pytest.raises(Exception):
        store.write_atomic(bad, path)
    xr.testing.assert_identical(store.open_store(path).load().drop_attrs(), _shard(1, "tied").drop_attrs().assign_coords(param=np.array(["tied"], dtype=object)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # the failed temporary is gone


def test_string_labels_round_trip_and_gather_pads_ragged_state(tmp_path):
    paths = []
    for n in (1, 3):
        for param in ("tied", "untied"):
            paths.append(store.write_atomic(_shard(n, param), tmp_path / f"{n}{param}.zarr"))
    ds = store.gather(paths, pad_dims=("state",))
    assert ds.sizes == {"N": 2, "param": 2, "seed": 2, "step": 5, "state": 3}
    assert [str(v) for v in ds.param.values] == ["tied", "untied"]
    assert np.isnan(ds.b.sel(N=1, state=2)).all() and (ds.b.sel(N=3) == 1).all()
    assert len(ds.attrs["shard_digests"]) == 4 and ds.attrs["config_digest"]
    assert ds.attrs["source_digest"] and "shard_source_digests" not in ds.attrs  # one code for every shard
    out = store.write_atomic(ds, tmp_path / "all.zarr", whole=("step", "state", "seed"))
    back = xr.open_zarr(out)
    assert [str(v) for v in back.param.values] == ["tied", "untied"]
    assert back.p.encoding["chunks"] == (1, 1, 2, 5)


def test_chunk_limit_is_enforced():
    big = xr.Dataset({"x": (("a", "step"), np.zeros((3, 3_000_000)))})
    with pytest.raises(ValueError, match="16 MiB"):
        store.chunk_encoding(big, whole=("a", "step"))
    # where a store is written, a chunk that would be too big is cut along its largest dim instead
    assert store.chunk_encoding(big, whole=("a", "step"), split=True)["x"]["chunks"] == (3, 375_000)


def test_a_variable_too_big_for_one_chunk_is_written_in_several(tmp_path):
    x = np.arange(5 * 2 * 600_000, dtype=np.float64).reshape(5, 2, 600_000)  # 45.8 MiB whole
    ds = xr.Dataset({"x": (("step", "seed", "col"), x), "small": (("seed",), np.ones(2))})
    path = store.write_atomic(ds, tmp_path / "big.zarr", whole=("step", "seed", "col"))
    back = xr.open_zarr(path)
    chunks = back.x.encoding["chunks"]
    assert np.prod(chunks) * 8 <= store.MAX_CHUNK_BYTES and chunks[:2] == (5, 2) and chunks[2] < 600_000
    assert back.small.encoding["chunks"] == (2,)
    np.testing.assert_array_equal(back.x.values, x)


def test_open_store_refuses_a_store_that_lacks_a_chunk(tmp_path):
    path = store.write_atomic(_shard(2, "tied"), tmp_path / "s.zarr", whole=("step",))
    (path / "p" / "c" / "0" / "0" / "1" / "0").unlink()  # seed 1 of p: zarr would read it as NaN
    with pytest.raises(OSError, match=r"s\.zarr is incomplete: 'p' lacks 1 chunk\(s\), e\.g\. p/c/0/0/1/0"):
        store.open_store(path)


def test_a_chunk_of_only_fill_values_is_stored(tmp_path):
    ds = _shard(1, "tied")
    ds["p"][:, :, 1] = np.nan  # a diverged run: its chunk holds only the fill value
    path = store.write_atomic(ds, tmp_path / "s.zarr", whole=("step",))
    assert (path / "p" / "c" / "0" / "0" / "1" / "0").is_file()  # zarr skips such chunks by default
    assert store.missing_chunks(path) == {}
    assert np.isnan(store.open_store(path).p.sel(seed=1)).all()


def test_store_opens_without_a_warning_beside_a_snakemake_timestamp(tmp_path):
    """The README's `xr.open_zarr(path)` under `-W error::RuntimeWarning -W error::UserWarning`,
    on a store holding the file Snakemake adds to a `directory()` output (tests/test_workflow.py
    checks the same on stores the workflow made)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        path = store.write_atomic(_shard(2, "tied"), tmp_path / "s.zarr")
        (path / ".snakemake_timestamp").touch()
        ds = xr.open_zarr(path).load()
        store.open_store(path).load()
    assert float(ds.b.sum()) == 20.0


def test_provenance_names_the_sources_that_ran_outside_git(tmp_path):
    """A copy of the package outside any git checkout: `git_commit` is 'unknown', and
    `source_digest` still names the code, changing with any loaded module's source."""
    shutil.copytree(ROOT / "src" / "ssmflow", tmp_path / "src" / "ssmflow", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import json; from ssmflow import store; a = store.provenance('d', 'float64'); print(json.dumps([store.__file__, a['git_commit'], a['source_digest']]))"
    env = {**venv_env(), "PYTHONPATH": str(tmp_path / "src")}

    def attrs() -> list[str]:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout.splitlines()[-1])

    where, commit, before = attrs()
    assert where == str(tmp_path / "src" / "ssmflow" / "store.py") and commit == "unknown"
    assert len(before) == 64 and int(before, 16) >= 0
    with open(tmp_path / "src" / "ssmflow" / "store.py", "a") as f:
        f.write("\n# edited\n")
    assert attrs()[2] != before


def test_gather_lists_the_sources_of_shards_that_ran_different_code(tmp_path):
    paths = []
    for n, source in ((1, "a"), (2, "b")):
        ds = _shard(n, "tied")
        ds.attrs["source_digest"] = source
        paths.append(store.write_atomic(ds, tmp_path / f"{n}.zarr"))
    ds = store.gather(paths, pad_dims=("state",))
    assert "source_digest" not in ds.attrs and ds.attrs["shard_source_digests"] == ["a", "b"]


NUMPY_STAGE = """
import json, sys
from ssmflow import cli, store
cli.set_precision("float64")  # what `ssmflow stage` does for a stage with precision_from_input
ds = store.open_store(sys.argv[1])
kinds = sorted({type(v.variable._data).__module__.split(".")[0] for v in ds.data_vars.values()})
ds = ds.load()
ds.attrs = store.provenance("d", "float64")
store.write_atomic(ds, sys.argv[2])
print(json.dumps({"kinds": kinds, "jax": "jax" in sys.modules, "dask": "dask.array" in sys.modules,
                  "jax_version": ds.attrs["jax_version"]}))
"""


def test_a_numpy_stage_imports_neither_jax_nor_dask(tmp_path):
    # A stage that computes in NumPy (dynamics theory and evaluate, every evaluate stage,
    # the s4d kernel limit) opens, loads and writes stores and sets the precision without
    # paying JAX's or dask's import; the store still records the installed JAX version.
    from importlib.metadata import version

    store.write_atomic(_shard(3, "tied"), tmp_path / "in.zarr")
    res = subprocess.run([sys.executable, "-c", NUMPY_STAGE, str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr")],
                         capture_output=True, text=True, env=venv_env(), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["kinds"] == ["xarray"], out  # xarray's lazily indexed arrays, not dask's
    assert (out["jax"], out["dask"]) == (False, False), out
    assert out["jax_version"] == version("jax")
    xr.testing.assert_identical(store.open_store(tmp_path / "out.zarr").load().drop_attrs(),
                                store.open_store(tmp_path / "in.zarr").load().drop_attrs())


def test_a_headline_table_summarises_each_setting_over_seeds():
    """`tables.headline_frame`: one row per setting, each metric's seed mean (min - max, n),
    booleans as fractions, metrics the table lacks left out, an empty cell for an all-NaN metric."""
    from ssmflow import tables

    ds = xr.Dataset(
        {"err": (("a", "seed"), [[1.0, 2.0, 6.0], [np.nan, np.nan, np.nan]]),
         "ok": (("a", "seed"), [[True, False, True], [False, False, False]])},
        coords={"a": [0.5, 0.9], "seed": [0, 1, 2]},
    )
    frame = tables.headline_frame(ds, ("err", "missing", "ok"), ["a", "seed"])
    assert list(frame.columns) == ["a", "err", "ok"]
    assert frame.to_dict("records") == [{"a": 0.5, "err": "3 (1 - 6, n = 3)", "ok": "0.6667 (0 - 1, n = 3)"},
                                        {"a": 0.9, "err": "", "ok": "0 (0 - 0, n = 3)"}]
    with pytest.raises(ValueError, match="none of the headline metrics"):
        tables.headline_frame(ds, ("loss",), ["a", "seed"])
    assert "<table" in tables.headline_html(ds, ("err",), ["a", "seed"], "t")
