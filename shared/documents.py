"""Request documents checked field by field for shape (JSON types, required and unknown fields).

Messages name the field and never repeat a value (a field may hold a secret).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A field spec is (types, required): types is a tuple of "string", "boolean", "integer", "number", "null",
# "object", "array" (whose contents the caller checks), or a dict of nested field specs for an object.
FieldSpec = tuple[Any, bool]


def check_document(document: Any, spec: Mapping[str, FieldSpec], prefix: str = "") -> list[dict[str, str]]:
    """Problems of shape: not an object, unknown fields, missing required fields, wrong JSON types.

    Messages name the field and never repeat a value (a field may hold a secret).
    """
    where = prefix.rstrip(".") or "the body"
    if not isinstance(document, dict):
        return [{"field": prefix.rstrip(".") or "(body)", "message": f"{where} must be a JSON object"}]
    problems = []
    for name in document:
        if name not in spec:
            known = ", ".join(spec)
            problems.append({"field": prefix + name, "message": f"is not a known field; the fields are {known}"})
    for name, (types, required) in spec.items():
        field = prefix + name
        if name not in document:
            if required:
                problems.append({"field": field, "message": "is required"})
            continue
        value = document[name]
        if isinstance(types, dict):
            problems += check_document(value, types, field + ".")
        elif not any(_is(value, kind) for kind in types):
            problems.append({"field": field, "message": f"must be {_describe(types)}"})
    return problems


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    raise ValueError(kind)


def _describe(types: tuple[str, ...]) -> str:
    words = {"string": "a string", "boolean": "true or false", "integer": "a whole number", "null": "null",
             "number": "a number", "object": "a JSON object", "array": "a JSON array"}
    return " or ".join(words[kind] for kind in types)
