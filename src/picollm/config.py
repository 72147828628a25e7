"""Reading and checking ``params.yaml``, the only configuration of a picollm run.

One JSON Schema (``picollm/schema/params.schema.yaml``, inside the package; the Snakemake layout's
``workflow/schemas/params.schema.yaml`` links to it) describes every key: type, range, default,
description. The Snakefile and every ``picollm`` stage call ``load_params`` before doing any work,
so a bad value fails fast with a message naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from picollm.errors import ConfigError

SCHEMA_RESOURCE = "schema/params.schema.yaml"

__all__ = [
    "ConfigError",
    "load_params",
    "validate_params",
    "prune",
    "lookup",
    "schema",
    "schema_problems",
]


@cache
def schema() -> dict[str, Any]:
    """The params JSON Schema, as a dict."""
    text = (resources.files("picollm") / SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with the safe loader, naming the file and line on a syntax error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; pass --params with the path of params.yaml"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem}); fix it there") from None


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read, validate and complete (with schema defaults) the params file at ``path``."""
    raw = read_yaml(Path(path))
    if raw is None:
        raw = {}
    return validate_params(raw, source=str(path))


def validate_params(params: Mapping[str, Any], source: str = "params") -> dict[str, Any]:
    """Validate ``params`` against the schema and return a copy with defaults filled in.

    The schema (types, ranges, names), then, if it holds, the rules that tie keys together.
    (``picollm.training.runs.check_training_runs`` goes further: it builds every model and
    sweep variant.) Raises ConfigError listing every problem, each with its dotted key.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections, got {type(params).__name__}"
        )
    completed = copy.deepcopy(dict(params))
    _fill_defaults(completed, schema())
    problems = schema_problems(completed) or _cross_checks(completed)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n{listing}")
    return completed


def prune(params: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The params tree cut down to the dotted ``keys`` (``"training"``, ``"models.lstm"``).

    A stage sees only the keys it declares, so it cannot depend on a value that would not
    trigger its rerun.
    """
    pruned: dict[str, Any] = {}
    for key in keys:
        *parents, leaf = key.split(".")
        node = pruned
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(lookup(params, key))
    return pruned


def lookup(params: Mapping[str, Any], dotted_key: str) -> Any:
    """The value at a dotted key; ConfigError naming the key if it is absent."""
    node: Any = params
    seen: list[str] = []
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(seen) or "the top level"
            have = ", ".join(map(str, node)) if isinstance(node, Mapping) else "no keys"
            raise ConfigError(
                f"params: no key {dotted_key!r} (under {where}: {have}); add it to the params "
                "file or choose one of those"
            )
        node = node[part]
        seen.append(part)
    return node


def model_config(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The architecture entry of model ``name`` with ``block_size`` taken from the data section
    unless the entry sets its own."""
    models = params["models"]
    if name not in models:
        raise ConfigError(f"params: no model named {name!r} under models; have {sorted(models)}")
    entry = {k: v for k, v in models[name].items() if k != "training"}
    entry.setdefault("block_size", params["data"]["block_size"])
    return entry


def training_config(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The shared ``training`` section with model ``name``'s own overrides applied."""
    merged = dict(params["training"])
    merged.update(params["models"][name].get("training", {}))
    return merged


def schema_problems(params: Mapping[str, Any]) -> list[str]:
    """One line per schema violation of ``params`` (read strictly: see ``_StrictValidator``)."""
    errors = sorted(
        _StrictValidator(schema()).iter_errors(params), key=lambda e: list(e.absolute_path)
    )
    return _explain(errors)


# -- internals -------------------------------------------------------------------------------


def _whole_string_pattern(validator, pattern, instance, _schema):
    """The ``pattern`` keyword with ``$`` read as the end of the string, as in the ECMA regexes
    JSON Schema specifies (Python's ``$`` also matches before a final newline, which let a
    model named ``"lstm\\n"`` through)."""
    if validator.is_type(instance, "string") and not re.search(_ecma_end(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _ecma_end(pattern: str) -> str:
    """``pattern`` with each unescaped ``$`` made Python's ``\\Z`` (the very end)."""
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    validators={"pattern": _whole_string_pattern},
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
"""Draft 2020-12 read strictly: ``integer`` is an int (``16.0`` is not one, so a count never
reaches the code as a float) and a ``pattern`` must match up to the very end of the string."""


def _cross_checks(params: Mapping[str, Any]) -> list[str]:
    """Rules that tie keys together, which the schema cannot express."""
    from picollm.studies import swept_values

    problems = []
    sweep = params["sweep"]
    if sweep["values"] and sweep["model"] not in params["models"]:
        problems.append(
            f"sweep.model = {sweep['model']!r}: must name an entry under models "
            f"({sorted(params['models'])}) when sweep.values is not empty"
        )
    base = params["models"].get(sweep["model"] or "", {})
    if base.get("type") == "transformer":
        attention = base.get("attention", "softmax")
        rope_runs = "rope" in swept_values(sweep, "position")
        gated_runs = set(swept_values(sweep, "attention")) - {"softmax"}
        if base.get("position") == "rope" and gated_runs:
            problems.append(
                f"sweep attention {sorted(gated_runs)}: RoPE only applies to softmax "
                f"attention, and models.{sweep['model']}.position is rope: give that model "
                "position learned, sinusoidal or nope"
            )
        if attention != "softmax" and rope_runs:
            problems.append(
                f"sweep position rope: rope only applies to softmax attention, and "
                f"models.{sweep['model']}.attention is {attention!r}"
            )
    return problems + _interpretability_checks(params)


def _interpretability_checks(params: Mapping[str, Any]) -> list[str]:
    """The studied model must be a Transformer with softmax attention (the maps are its
    attention weights), and the SAE's layer one of its blocks."""
    study = params["interpretability"]
    if study["model"] is None:
        return []
    entry = params["models"].get(study["model"])
    if entry is None:
        return [
            f"interpretability.model = {study['model']!r}: must name an entry under models "
            f"({sorted(params['models'])}), or be null for no study"
        ]
    if entry.get("type") != "transformer" or entry.get("attention", "softmax") != "softmax":
        return [
            f"interpretability.model = {study['model']!r}: must be a transformer with softmax "
            "attention (the attention maps are its attention weights)"
        ]
    n_blocks = entry["n_blocks"]  # filled from the schema's default when absent
    if not -n_blocks <= study["layer"] < n_blocks:
        return [
            f"interpretability.layer = {study['layer']}: models.{study['model']} has {n_blocks} "
            f"blocks, so the layer must be in [{-n_blocks}, {n_blocks - 1}]"
        ]
    return []


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/name``) to the schema it points at."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _fill_defaults(instance: Any, node: Mapping[str, Any]) -> None:
    """Insert schema defaults for missing keys, descending through properties, maps of
    sub-schemas and ``if``/``then`` branches whose condition holds. Branches under ``allOf``
    without ``if`` are not descended: that is how per-model training overrides stay sparse."""
    node = _resolve(node)
    if not isinstance(instance, dict):
        return
    properties = node.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in properties:
                _fill_defaults(value, extra)
    for branch in node.get("allOf", []):
        condition = branch.get("if")
        if condition is not None and jsonschema.Draft202012Validator(condition).is_valid(instance):
            _fill_defaults(instance, branch.get("then", {}))


def _explain(errors: list[jsonschema.ValidationError]) -> list[str]:
    """One readable line per schema violation, leaf-most first, without duplicates."""
    lines: list[str] = []
    for error in errors:
        for leaf in _leaves(error):
            line = _describe(leaf)
            if line not in lines:
                lines.append(line)
    return lines


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    if error.validator in ("allOf", "anyOf", "oneOf", "$ref") and error.context:
        return [leaf for sub in error.context for leaf in _leaves(sub)]
    return [error]


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    value = error.instance
    kind, expected = error.validator, error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        where = f"under {key}" if error.absolute_path else "at the top level"
        return f"unknown key(s) {unknown} {where}; allowed: {allowed}"
    if kind == "required":
        return f"{key}: missing required key(s) {sorted(set(expected) - set(value))}"
    if kind == "enum":
        return f"{key} = {value!r}: must be one of {expected}"
    if kind == "const":
        return f"{key} = {value!r}: must be {expected!r}"
    if kind == "type":
        if "integer" in expected and isinstance(value, float) and value.is_integer():
            return f"{key} = {value!r}: must be a whole number, written without a decimal point"
        return f"{key} = {value!r}: must be of type {expected}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }
        return f"{key} = {value!r}: must be {relation[kind]} {expected}"
    if kind == "pattern":
        return f"{key}: {value!r} must match the pattern {expected}"
    described = error.schema.get("description")
    hint = f" ({described})" if described else ""
    return f"{key} = {value!r}: {error.message}{hint}"
