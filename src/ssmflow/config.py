"""Loading and validating the ssmflow config: one composed JSON schema, then each study's cross-key checks.

The schema is composed per config (`schema_for`): the top-level keys from
`workflow/schemas/config.schema.yaml`, and for every study in `studies` its own section
schema (`Study.schema`, i.e. `src/ssmflow/studies/<study>/schema.yaml`) under
`properties.<study>`, required. The names allowed in `studies` are the registered studies
(`ssmflow.study.registry()`), so no file lists them. The schemas hold every allowed value
(enums, ranges, the keys of each experiment kind); Python adds only the checks that
combine several keys (`Study.check_config`), run on each enabled study's completed section.

A section of a registered study that is not in `studies` may stay in the file
(`config/config.yaml` keeps all four): it must be a mapping and is otherwise not checked
(nor completed), so a half-edited section of a study you are not running never blocks the
one you are. Enabling the study validates it.

Config files are read with `Loader`: YAML 1.2 floats (`1e-3` is a number), a duplicate key
refused. Snakemake reads its config files itself (YAML 1.1); `snakemake_config` reads them
again, so the workflow validates what ssmflow's loader reads.

Validation runs before any job: at Snakefile parse time and in every CLI command. A bad
config raises `ConfigError` naming the key, the bad value and what is allowed. NaN and
infinity are refused in every checked section, whatever the key's schema says (a NaN passes
every numeric bound). Schema
`default`s fill in keys the config leaves out, also through local `$ref`s and inside the
`if`/`then` branch of an experiment's kind.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is not allowed; the message names key, value and what is allowed."""


def _with_defaults(cls):
    props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from props(validator, properties, instance, schema)

    # an integer is an int: JSON Schema also counts 1e4 (10000.0) as one, which would reach
    # code that needs an int (a step count, a shape) as a float
    types = cls.TYPE_CHECKER.redefine("integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool))
    return jsonschema.validators.extend(cls, {"properties": set_defaults}, type_checker=types)


#: the validator: JSON Schema 2020-12 that also fills in `default`s and takes only ints as
#: integers. The `properties` of an `if`/`then` branch run only when its `if` holds, so a
#: kind's defaults fill only its experiments.
Validator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(path) -> str:
    """'dynamics.experiments.F3.axes.N[0]' from a jsonschema error path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _allowed(err: jsonschema.ValidationError) -> str:
    v, val = err.validator, err.validator_value
    match v:
        case "enum":
            return f"{val[0]!r}" if len(val) == 1 else f"one of {val}"
        case "const":
            return f"{val!r}"
        case "type":
            return f"a value of type {val}"
        case "minimum" | "exclusiveMinimum" | "maximum" | "exclusiveMaximum" | "multipleOf":
            return _number(err.schema)
        case "minItems" if val == 1:
            return "a non-empty list"
        case "minItems" | "maxItems":
            return f"a list with {'at least' if v == 'minItems' else 'at most'} {val} items"
        case "minProperties":
            return f"a mapping with at least {val} entries"
        case "uniqueItems":
            return "a list without repeated values"
        case "pattern":
            return f"a string matching {val!r}"
    return err.message


def _number(schema: dict) -> str:
    """'an even integer >= 2', 'a number in (-1, 1)': every numeric bound of one subschema."""
    what = "integer" if schema.get("type") == "integer" else "number"
    step = schema.get("multipleOf")
    noun = (f"an even {what}" if step == 2 else f"a multiple of {step}") if step else ("an integer" if what == "integer" else "a number")
    lo = ("[", ">=", schema["minimum"]) if "minimum" in schema else ("(", ">", schema["exclusiveMinimum"]) if "exclusiveMinimum" in schema else None
    hi = ("]", "<=", schema["maximum"]) if "maximum" in schema else (")", "<", schema["exclusiveMaximum"]) if "exclusiveMaximum" in schema else None
    if lo and hi:
        return f"{noun} in {lo[0]}{lo[2]}, {hi[2]}{hi[0]}"
    bound = lo or hi
    return f"{noun} {bound[1]} {bound[2]}" if bound else noun


def format_error(err: jsonschema.ValidationError) -> str:
    """One readable line per schema violation: key path, bad value (or keys), what is allowed.

    A subschema's `title` (e.g. "kind 'waves'") names the context in parentheses.
    """
    where = key_path(err.absolute_path)
    title = err.schema.get("title") if isinstance(err.schema, dict) else None
    ctx = f" ({title})" if title else ""
    if "propertyNames" in err.relative_schema_path:
        return f"config key {where}: bad name {err.instance!r}; allowed: {_allowed(err)}."
    if err.validator == "additionalProperties":
        declared = list(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(declared))
        return f"config key {where}: unknown key(s) {extra}{ctx}; allowed: only the keys {declared}."
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return f"config key {where}: missing key(s) {missing}{ctx}; required: {list(err.validator_value)}."
    return f"config key {where}: got {err.instance!r}; allowed: {_allowed(err)}{ctx}{_why_not_a_number(err)}."


def _why_not_a_number(err: jsonschema.ValidationError) -> str:
    """Why a value that reads as a number is not one, for a type error ('' otherwise)."""
    wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    if err.validator != "type" or not {"number", "integer"} & set(wanted):
        return ""
    if isinstance(err.instance, float) and "integer" in wanted:
        spelled = f": write {int(err.instance)}" if err.instance.is_integer() else ""
        return f"; {err.instance!r} is a float{spelled}"
    if isinstance(err.instance, str):
        try:
            float(err.instance)
        except ValueError:
            return ""
        return f"; {err.instance!r} is a string, not a number: quoted in the file, or nested YAML of `snakemake --config` (read as text)"
    return ""


#: a YAML 1.2 float with an exponent. YAML 1.1 (PyYAML, and Snakemake's loader) needs a
#: dot and a signed exponent, so it reads `1e-3`, `1E5` and `1.0e3` as strings; 1.2 reads
#: them as numbers, as a person writing a config means them.
YAML12_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (libyaml's where built in) for config and schema files, with the
    floats of YAML 1.2 (`YAML12_EXPONENT_FLOAT`) and with a duplicate key in a mapping
    refused (YAML 1.1 keeps the last value without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1}): give each key once", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


Loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML12_EXPONENT_FLOAT, list("-+0123456789."))


def load_yaml(path: str | Path) -> Any:
    """A YAML (or JSON) config file read with `Loader`.

    **Raises:** `ConfigError` naming the file, and the line and column of a syntax error or
    of a duplicate key.
    """
    try:
        with open(path) as f:
            return yaml.load(f, Loader=Loader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except yaml.MarkedYAMLError as err:
        if err.problem_mark is None:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        mark = err.problem_mark
        ctx = f" ({err.context} at line {err.context_mark.line + 1})" if err.context and err.context_mark else ""
        raise ConfigError(f"config file {path}, line {mark.line + 1}, column {mark.column + 1}: {err.problem}{ctx}.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None


def check_file(path: str | Path) -> None:
    """Refuse a config file that exists but is not valid YAML or repeats a key (`load_yaml`):
    the Snakefile's check of its `configfile:` before Snakemake reads it, whose own error
    names neither the file nor the line. A missing file passes (`--configfile` may replace it).
    """
    if Path(path).is_file():
        load_yaml(path)


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """A schema file as a dict (a fresh copy each call; `Loader` is libyaml's where built in:
    every Snakemake start reads the schemas)."""
    with open(path) as f:
        return yaml.load(f, Loader=Loader)


def _pointer(doc: dict, ref: str) -> Any:
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _hoist_defaults(doc: dict) -> dict:
    """Copy the `default` of each local `$ref` target beside the `$ref` (where the filler looks),
    so a setting defined once in `$defs` (e.g. `steps: {$ref: "#/$defs/steps"}`) keeps its default."""

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and "default" not in node:
                target = _pointer(doc, ref)
                walk(target)
                if isinstance(target, dict) and "default" in target:
                    node["default"] = copy.deepcopy(target["default"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return doc


@functools.lru_cache(maxsize=None)
def _study_schema(path: str, mtime_ns: int, name: str) -> dict:
    try:
        doc = _hoist_defaults(load_schema(Path(path)))
    except yaml.YAMLError as err:
        raise ValueError(f"study {name!r}: its config schema {path} is not valid YAML: {err}") from None
    # embedded under the top-level schema: `$id` makes its `#/$defs/...` refs resolve in its own
    # file; a `$schema` there would switch jsonschema to the plain (default-less) validator class
    doc.pop("$schema", None)
    doc.setdefault("$id", f"urn:ssmflow:study:{name}")
    return doc


def study_schema(name: str) -> dict:
    """The section schema of the registered study `name` (`Study.schema`, JSON Schema 2020-12),
    ready to embed: defaults of `$ref` targets hoisted, `$id` set, `$schema` dropped."""
    from ssmflow.study import get

    path = Path(get(name).schema)
    if not path.is_file():
        raise FileNotFoundError(f"study {name!r} declares its config schema at {path}, which does not exist.")
    return copy.deepcopy(_study_schema(str(path), path.stat().st_mtime_ns, name))


def enabled_studies(config: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> list[str]:
    """The registered studies listed in `config["studies"]` (its schema default if absent), in order."""
    from ssmflow.study import registry

    listed = config.get("studies", load_schema(schema_path)["properties"]["studies"].get("default", []))
    if not isinstance(listed, list):
        return []
    return list(dict.fromkeys(s for s in listed if isinstance(s, str) and s in registry()))


def schema_for(config: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> dict:
    """The schema `config` is validated against (module docstring): the top-level schema,
    the registered study names as the values of `studies`, and each enabled study's section
    schema under `properties.<study>`, required."""
    from ssmflow.study import registry

    schema = load_schema(schema_path)
    props = schema.setdefault("properties", {})
    names = sorted(registry())
    studies = props["studies"]
    studies["items"] = {**studies.get("items", {}), "enum": names, "title": "the registered studies"}
    enabled = enabled_studies(config, schema_path)
    for name in names:
        if name in props:
            raise ValueError(f"study {name!r} has the name of a top-level config key; rename the study.")
        props[name] = study_schema(name) if name in enabled else {
            "type": "object", "description": f"The `{name}` section; not checked while `{name}` is not in `studies`."}
    if enabled:
        schema["allOf"] = [*schema.get("allOf", []), {"title": "each study in `studies` needs its section", "required": enabled}]
    return schema


def validate(config: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate `config`, fill in defaults and run each enabled study's cross-key checks.

    **Returns:** a completed deep copy of `config` (sections of studies not in `studies` as given).
    **Raises:** `ConfigError` listing every problem.
    """
    from ssmflow.study import get, registry

    cfg = copy.deepcopy(dict(config))
    schema = schema_for(cfg, schema_path)
    errors = sorted(Validator(schema).iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    # `allOf` wrappers can report the same problem twice; keep the first of each message
    lines = list(dict.fromkeys(_leaf(e) for e in errors))
    failed = {e.absolute_path[0] for e in errors if e.absolute_path}
    # a NaN passes every bound of a schema (each comparison with it is false): refuse
    # non-finite numbers wherever the schema checks, i.e. outside sections not in `studies`
    unchecked = set(registry()) - set(enabled_studies(cfg, schema_path))
    reported = {tuple(e.absolute_path) for e in errors}
    for path, value in _non_finite({k: v for k, v in cfg.items() if k not in unchecked}):
        if path not in reported:
                lines.append(f"config key {key_path(path)}: got {value!r}; allowed: a finite number (NaN and infinity are never valid).")
        failed.add(path[0])
    for study in enabled_studies(cfg, schema_path):
        if study in cfg and study not in failed:  # cross-key checks read a complete, schema-valid section
            lines += get(study).check_config(cfg[study])
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    return cfg


def _non_finite(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """(key path, value) of every NaN or infinite float in a nested config."""
    if isinstance(node, float) and not math.isfinite(node):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _non_finite(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _non_finite(value, (*path, i))


def _leaf(err: jsonschema.ValidationError) -> str:
    while err.context:
        err = min(err.context, key=lambda e: len(e.absolute_path))
    return format_error(err)


def load(path: str | Path) -> dict:
    """Read a YAML config file (`load_yaml`) and validate it."""
    raw = load_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of config keys; got {type(raw).__name__} {raw!r}.")
    return validate(raw)


def snakemake_config(config: Mapping[str, Any], files: Iterable[str | Path]) -> dict:
    """The config Snakemake composed, as ssmflow reads its files.

    Snakemake reads each config file itself (`configfile:` and `--configfile`, listed as
    `workflow.configfiles`) with PyYAML's YAML 1.1 loader, which keeps the last value of a
    duplicate key and reads `1e-3` as a string. Each of `files` is read again with
    `load_yaml` (so a duplicate key or a syntax error is refused, naming file and line),
    and where `config` holds a string that such a file reads as a YAML 1.2 number at the
    same key, the number replaces it.

    **Returns:** a deep copy of `config`, its numbers fixed.
    """
    out = copy.deepcopy(dict(config))
    for path in files:
        out = _numbers_from(out, load_yaml(path))
    return out


def _numbers_from(node: Any, doc: Any) -> Any:
    """`node` with each string that `doc` holds as a float at the same place, where the
    string is that float's YAML 1.2 spelling, replaced by the float."""
    if isinstance(node, dict) and isinstance(doc, dict):
        return {key: _numbers_from(value, doc[key]) if key in doc else value for key, value in node.items()}
    if isinstance(node, list) and isinstance(doc, list) and len(node) == len(doc):
        return [_numbers_from(a, b) for a, b in zip(node, doc, strict=True)]
    if isinstance(node, str) and isinstance(doc, float) and YAML12_EXPONENT_FLOAT.match(node) and float(node) == doc:
        return doc
    return node


def digest(obj: Any) -> str:
    """A short, stable digest of a JSON-serializable object (config provenance)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
