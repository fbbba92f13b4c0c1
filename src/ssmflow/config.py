"""Loading and validating the ssmflow config against `workflow/schemas/config.schema.yaml`.

Validation runs before any job: at Snakefile parse time and in every CLI command. A
bad config raises `ConfigError` naming the key, the bad value and what is allowed.
Schema `default`s fill in keys the config leaves out.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
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
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from props(validator, properties, instance, schema)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


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
            return f"one of {val}"
        case "type":
            return f"a value of type {val}"
        case "minimum":
            return f"a number >= {val}"
        case "exclusiveMinimum":
            return f"a number > {val}"
        case "maximum":
            return f"a number <= {val}"
        case "exclusiveMaximum":
            return f"a number < {val}"
        case "additionalProperties":
            return f"only the keys {sorted(err.schema.get('properties', {}))}"
        case "minItems" | "maxItems":
            return f"a list with {'at least' if v == 'minItems' else 'at most'} {val} items"
        case "uniqueItems":
            return "a list without repeated values"
        case "pattern":
            return f"a string matching {val!r}"
        case "required":
            return f"the keys {val} to be present"
    return err.message


def format_error(err: jsonschema.ValidationError) -> str:
    """One readable line per schema violation."""
    where = key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return f"config key {where}: unknown key(s) {extra}; allowed: {_allowed(err)}."
    if err.validator == "propertyNames":
        return f"config key {where}: bad name {err.instance!r}; allowed: {err.message}."
    if err.validator == "required":
        return f"config key {where}: {err.message}; required: {_allowed(err)}."
    return f"config key {where}: got {err.instance!r}; allowed: {_allowed(err)}."


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def validate(config: Mapping[str, Any], schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate `config`, fill in defaults and run each study's own checks.

    **Returns:** a completed deep copy of `config`.
    **Raises:** `ConfigError` listing every problem.
    """
    cfg = copy.deepcopy(dict(config))
    schema = load_schema(schema_path)
    cls = _with_defaults(jsonschema.Draft202012Validator)
    errors = sorted(cls(schema).iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    # `allOf` wrappers report the same problem twice; keep the first of each message
    lines = list(dict.fromkeys(_leaf(e) for e in errors))
    if not lines:
        from ssmflow.study import get

        lines = [msg for study in cfg.get("studies", []) if study in cfg for msg in get(study).check_config(cfg[study])]
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    return cfg


def _leaf(err: jsonschema.ValidationError) -> str:
    while err.context:
        err = min(err.context, key=lambda e: len(e.absolute_path))
    return format_error(err)


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    return validate(raw)


def digest(obj: Any) -> str:
    """A short, stable digest of a JSON-serializable object (config provenance)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
