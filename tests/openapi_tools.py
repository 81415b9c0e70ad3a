"""The parts of JSON Schema that openapi.yaml uses: resolving $ref, validating a value, and
generating values with Hypothesis. Enough for the fuzz test; not a general implementation."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import yaml
from hypothesis import strategies as st

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
         "null": type(None)}


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def resolve(spec: dict, node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _is_type(value, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[name])


def validate(spec: dict, schema, value, where: str = "$") -> list[str]:
    schema = resolve(spec, schema)
    problems: list[str] = []
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not validate(spec, s, value, where)]
        return [] if len(matching) == 1 else [f"{where}: matches {len(matching)} of oneOf"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} is not {schema['const']!r}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            return [f"{where}: {type(value).__name__} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10 ** 9):
            problems.append(f"{where}: length {len(value)} out of bounds")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                problems.append(f"{where}: {value!r} is not a uuid")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < schema.get("minimum", -10 ** 18):
        problems.append(f"{where}: {value} below minimum")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing {name}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                problems += validate(spec, properties[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected {name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10 ** 9):
            problems.append(f"{where}: {len(value)} items out of bounds")
        if "items" in schema:
            for index, item in enumerate(value):
                problems += validate(spec, schema["items"], item, f"{where}[{index}]")
    return problems


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def values(spec: dict, schema) -> st.SearchStrategy:
    """Values for a schema: mostly well-formed (and the spec's examples), sometimes not."""
    schema = resolve(spec, schema)
    if "oneOf" in schema:
        return st.one_of([values(spec, s) for s in schema["oneOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=12)
    types = schema.get("type", "object")
    types = types if isinstance(types, list) else [types]
    choices = []
    for name in types:
        if name == "string":
            if schema.get("format") == "uuid":
                choices.append(st.uuids().map(str))
            choices.append(st.text(max_size=min(schema.get("maxLength", 40), 40)))
        elif name == "integer":
            choices.append(st.integers(min_value=schema.get("minimum", -(10 ** 6)), max_value=10 ** 6))
        elif name == "boolean":
            choices.append(st.booleans())
        elif name == "null":
            choices.append(st.none())
        elif name == "array":
            if "items" in schema:
                choices.append(st.lists(values(spec, schema["items"]), min_size=schema.get("minItems", 0),
                                        max_size=min(schema.get("maxItems", 3), 6)))
            else:
                choices.append(st.lists(JSON, max_size=3))
        elif name == "object":
            properties = schema.get("properties", {})
            required = {k: values(spec, v) for k, v in properties.items() if k in schema.get("required", [])}
            optional = {k: values(spec, v) for k, v in properties.items() if k not in required}
            choices.append(st.fixed_dictionaries(required, optional=optional))
    strategy = st.one_of(choices) if choices else JSON
    if schema.get("examples"):
        strategy = st.sampled_from(schema["examples"]) | strategy
    return strategy
