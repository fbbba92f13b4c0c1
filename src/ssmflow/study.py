"""The study contract: everything the spine (grid, CLI, rules) needs to know of a study.

Each study declares one `Study` in its package (`studies/<study>/__init__.py`, as
`STUDY`); `registry()` collects them. Nothing else lists the studies or reads a
study's module attributes by name, so the rules are written once (workflow/rules/study.smk)
and a new study is its own package, its config section, its schema and its captions.

The flow of one experiment, with the stage names that become rule names
(`<study>_<stage>`):

    checks ─┐ (gate)
    data ───┴─► train[shard] … ─► gather ─► trajectories ─► stages (theory, evaluate, ...) ─► figures

- `checks` (optional): identities that gate training, `<checks module>.run_checks()`.
- `data` (optional): the experiment's synthesized data, `<data module>.data_dataset(spec)`,
  written to `results/<study>/<exp>/data.zarr`; training reads it. `spec` is the experiment
  spec narrowed by `data_keys` (a light function, `select_spec`) to what the data depends
  on, so that the data job reruns (and retrains its experiment) only when its data changes.
- `train`: one job per shard, `<train module>.train_shard(spec[, data])`.
- `gather`: the spine's `store.gather`, with the study's layout (`whole_dims`, `pad_dims`).
- `stages`: experiment-level stages after gather (`Stage`), each reading stores of its
  experiment and writing one.
- `study_stores`: stores computed from a config section alone (no training), spanning
  experiments (`StudyStore`).
- `figures`: a function of the study's config section giving every figure with the stores
  it reads (keys `<product>/<experiment>` or a study store's name, paths relative to
  `results/<study>/`). Figures read only these declared paths (`FigureInputs`).

Example (a study package's `__init__.py`):

    STUDY = Study(
        name="toy", package=__name__, schema=Path(__file__).with_name("schema.yaml"),
        shard_axes=("N",), run_dims=("N", "lr"), categorical=(), whole_dims=("step", "seed"),
        stages=(Stage("evaluate", "evaluate", "metrics_dataset", reads=("trajectories",), writes="metrics", csv=True),),
        figures=figures, check_config=check_config,
    )
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: environment variable naming extra study packages (colon-separated import paths), each
#: declaring a `STUDY`: how a study that lives outside ssmflow is registered
EXTRA_STUDIES_ENV = "SSMFLOW_STUDIES"


@dataclass(frozen=True)
class Stage:
    """An experiment-level stage after gather: `<module>.<function>(*stores)` -> Dataset.

    **Arguments:**
    - `name`: the stage (rule `<study>_<name>`).
    - `module`: module of the study package that computes it (e.g. "reference").
    - `function`: its function, called with the opened stores of `reads`, in order.
    - `reads`: products of the same experiment it reads ("trajectories", "theory", "data", ...).
    - `writes`: the product it writes, `results/<study>/<exp>/<writes>.zarr`.
    - `csv`: also write the product as a flat table `<writes>.csv` (metrics).
    - `precision_from_input`: set JAX's precision from the first store's `precision` attr.
    - `settings`: a key of the experiment's config that configures this stage. The stage
      then runs only for experiments that set it, its function gets the key's value as the
      keyword `settings`, and the key is left out of the training and data specs (editing it
      reruns this stage and what reads its product, never training).

    - `headline`: with `csv`, the metrics of the report's headline table (`ssmflow.tables`):
      the stage also writes `<writes>.html` (seed mean and range per setting), shown in the
      Snakemake report next to the figures.

    `reads` may name `models`, the experiment's trained models (`ssmflow.models`; the stage's
    function gets the folder's path, not a store).
    """

    name: str
    module: str
    function: str
    reads: tuple[str, ...]
    writes: str
    csv: bool = False
    precision_from_input: bool = False
    settings: str | None = None
    headline: tuple[str, ...] = ()

    def applies(self, experiment: dict) -> bool:
        """Whether the stage runs for an experiment (its config section)."""
        return self.settings is None or self.settings in experiment


#: the product name of an experiment's trained models (a folder, not a store: `ssmflow.models`)
MODELS = "models"


def product_file(product: str) -> str:
    """The file name of an experiment's product under results/<study>/<exp>/."""
    return MODELS if product == MODELS else f"{product}.zarr"


@dataclass(frozen=True)
class StudyStore:
    """A store computed from one config section of the study alone (no training).

    `<module>.<function>(section) -> Dataset`, written to `results/<study>/<file>` by rule
    `<study>_<name>`. The section is left out of training specs, so editing it retrains nothing.
    """

    name: str
    file: str
    module: str
    function: str
    config_key: str
    precision: str = "float64"
    whole_dims: tuple[str, ...] | None = None  # chunk layout; default: the study's whole_dims


@dataclass(frozen=True)
class Study:
    """One study's declaration (see the module docstring)."""

    name: str
    package: str
    schema: Path
    shard_axes: tuple[str, ...]
    run_dims: tuple[str, ...]
    categorical: tuple[str, ...]
    whole_dims: tuple[str, ...]
    figures: Callable[[dict], dict[str, dict[str, str]]]
    pad_dims: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    study_stores: tuple[StudyStore, ...] = ()
    check_config: Callable[[dict], list[str]] = field(default=lambda section: [])
    checks: str | None = "checks"
    data: str | None = None
    data_keys: Callable[[dict], dict] | None = None  # experiment spec -> the part its data depends on
    train: str = "job"
    figures_module: str = "figures"
    #: shard axes whose values change a code path but neither the shapes nor the cost of a
    #: training job: shards differing only in them share one probe of `ssmflow plan`
    probe_shared: tuple[str, ...] = ()
    #: function of the train module: shard spec -> a pytree shaped like one run's trained
    #: model (`ssmflow.models.load` fills it); None: the study keeps no model files
    model_template: str | None = None

    def module(self, part: str):
        """Import `<package>.<part>` (a stage's module)."""
        return importlib.import_module(f"{self.package}.{part}")

    def module_name(self, part: str) -> str:
        return f"{self.package}.{part}"

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise ValueError(f"`stage` (={name!r}) is not a stage of study {self.name!r}; allowed: {[s.name for s in self.stages]}.")

    def study_store(self, name: str) -> StudyStore:
        for s in self.study_stores:
            if s.name == name:
                return s
        raise ValueError(f"`store` (={name!r}) is not a store of study {self.name!r}; allowed: {[s.name for s in self.study_stores]}.")

    @property
    def not_training(self) -> tuple[str, ...]:
        """Config sections a training job does not read (those of the study stores)."""
        return tuple(s.config_key for s in self.study_stores)

    @property
    def stage_keys(self) -> tuple[str, ...]:
        """Experiment config keys that only stages read (`Stage.settings`)."""
        return tuple(s.settings for s in self.stages if s.settings)

    @property
    def training_parts(self) -> tuple[str, ...]:
        """The modules a training job's runs depend on: the train module and the data module
        (its input). The train rule's code inputs and the run archive's digest both use this."""
        return tuple(p for p in (self.train, self.data) if p)


_REGISTRY: dict[str, Study] | None = None
_REGISTRY_KEY: str | None = None


def registry() -> dict[str, Study]:
    """Every registered study by name: ssmflow's own (`ssmflow.studies.BUILTIN`) and the
    packages named in the `SSMFLOW_STUDIES` environment variable."""
    global _REGISTRY, _REGISTRY_KEY
    extra = os.environ.get(EXTRA_STUDIES_ENV, "")
    if _REGISTRY is None or _REGISTRY_KEY != extra:
        from ssmflow.studies import BUILTIN

        packages = [f"ssmflow.studies.{name}" for name in BUILTIN] + [p for p in extra.split(":") if p]
        studies = {}
        for pkg in packages:
            study = importlib.import_module(pkg).STUDY
            if study.name in studies:
                raise ValueError(f"study {study.name!r} is declared twice ({studies[study.name].package} and {pkg}).")
            studies[study.name] = study
        _REGISTRY, _REGISTRY_KEY = studies, extra
    return _REGISTRY


def get(name: str) -> Study:
    """The registered study `name`; a clear error naming the registered ones otherwise."""
    studies = registry()
    if name not in studies:
        raise ValueError(f"`study` (={name!r}) is not a registered study; allowed: {sorted(studies)}.")
    return studies[name]


class FigureInputs(Mapping[str, Path]):
    """The stores a figure job was given by its rule: `<product>/<experiment>` (or a study
    store's name) -> path. A figure reads only these; asking for anything else is an error.

    Example:
        inputs = FigureInputs({"trajectories/F1": Path("results/dynamics/F1/trajectories.zarr")})
        inputs.experiments("trajectories")  # ["F1"], in declared order
        ds = inputs.open("trajectories", "F1")
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike]):
        self._paths = {k: Path(v) for k, v in paths.items()}

    @classmethod
    def parse(cls, items: list[str]) -> FigureInputs:
        """From `KEY=PATH` strings (the figure command's `--input` arguments)."""
        pairs = {}
        for item in items:
            key, sep, path = item.partition("=")
            if not sep or not key or not path:
                raise ValueError(f"`--input` (={item!r}) must be KEY=PATH.")
            pairs[key] = path
        return cls(pairs)

    def __getitem__(self, key: str) -> Path:
        if key not in self._paths:
            raise KeyError(f"figure input {key!r} was not declared; declared: {sorted(self._paths)}.")
        return self._paths[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def experiments(self, product: str = "trajectories") -> list[str]:
        """The experiments whose `product` was declared, in declared order."""
        return [k.partition("/")[2] for k in self._paths if k.partition("/")[0] == product and "/" in k]

    def path(self, product: str, experiment: str | None = None) -> Path:
        return self[product if experiment is None else f"{product}/{experiment}"]

    def has(self, product: str, experiment: str | None = None) -> bool:
        return (product if experiment is None else f"{product}/{experiment}") in self._paths

    def open(self, product: str, experiment: str | None = None) -> Any:
        """The declared store (lazily opened xarray Dataset)."""
        from ssmflow import store

        return store.open_store(self.path(product, experiment))

    def csv(self, product: str, experiment: str) -> Any:
        """The declared table `<product>.csv` of an experiment, as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path(f"{product}_csv", experiment))


def select_spec(spec: dict, *, axes=(), settings=(), common=()) -> dict:
    """`spec` (an experiment or shard spec) with only the named axes, settings and common
    keys (those present), keeping its shape: what a data stage reads, as its rule's params."""
    return {
        "study": spec["study"],
        "experiment": spec["experiment"],
        "axes": {k: spec["axes"][k] for k in axes if k in spec["axes"]},
        "settings": {k: spec["settings"][k] for k in settings if k in spec["settings"]},
        "common": {k: spec["common"][k] for k in common if k in spec["common"]},
    }


def experiment_inputs(study: str, experiment: str, products: tuple[str, ...]) -> dict[str, str]:
    """Figure-input declarations of one experiment's products, paths relative to results/<study>/.

    "metrics_csv" is the evaluate stage's table `metrics.csv`; other products are stores.
    """
    out = {}
    for p in products:
        name = f"{p.removesuffix('_csv')}.csv" if p.endswith("_csv") else product_file(p)
        out[f"{p}/{experiment}"] = f"{experiment}/{name}"
    return out
