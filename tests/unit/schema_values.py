"""Hypothesis strategies for values valid against the request schemas of exports/openapi.json.

Patterns are read as OpenAPI 3.1 means them, ECMA-262 regular expressions, and turned into Python
ones that match the same strings: in Python "$" also matches before a final newline, "." matches
"\\r", and "\\s" is another set of characters. Only the JSON Schema keywords the request schemas use
are supported; any other fails loudly rather than being ignored.
(hypothesis-jsonschema would do this, but its 0.23 release does not run with this Hypothesis.)
"""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "exports" / "openapi.json"
ANNOTATIONS = {"description", "examples", "default", "writeOnly", "readOnly", "title"}
SUPPORTED = ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "anyOf", "const", "not", "pattern",
                           "minLength", "maxLength", "minimum", "maximum", "items", "minItems", "maxItems"}
ARRAY_ITEMS_DRAWN = 3  # at most, whatever maxItems allows: fewer items are as valid, and draws stay quick
# ECMA-262 WhiteSpace and LineTerminator: what "\s" means there.
ECMA_SPACE = "\\t\\n\\v\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
ECMA_ANY = "[^\\n\\r\\u2028\\u2029]"  # "." without the s flag


def document() -> dict:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def request_schema(path: str, method: str) -> dict:
    """The operation's JSON request body schema, every $ref inlined."""
    doc = document()
    return _inline(doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"], doc)


def _inline(node, doc):
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(target, doc)
        return {key: _inline(value, doc) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, doc) for value in node]
    return node


def python_pattern(ecma: str) -> str:
    """The Python regular expression matching what the ECMA-262 pattern `ecma` matches."""
    out, i, in_class = [], 0, False
    while i < len(ecma):
        char = ecma[i]
        if char == "\\":
            escape = ecma[i:i + 2]
            if escape == "\\s":
                out.append(ECMA_SPACE if in_class else f"[{ECMA_SPACE}]")
            elif escape in ("\\S", "\\d", "\\D", "\\w", "\\W", "\\b", "\\B"):
                raise ValueError(f"{escape} in {ecma!r}: spell the characters out (its meaning differs in Python)")
            else:
                out.append(escape)
            i += 2
            continue
        if in_class:
            in_class = char != "]"
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char + ("^" if ecma[i + 1:i + 2] == "^" else ""))
            i += 1 if ecma[i + 1:i + 2] == "^" else 0
        elif char == "$":
            out.append("\\Z")
        elif char == ".":
            out.append(ECMA_ANY)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def values(schema: dict) -> st.SearchStrategy:
    """Values valid against `schema` (a request schema of the document, $refs inlined)."""
    unknown = set(schema) - SUPPORTED
    if unknown:
        raise ValueError(f"keywords {sorted(unknown)} are not supported here: teach tests/unit/schema_values.py them")
    if "anyOf" in schema:
        strategy = st.one_of([values(option) for option in schema["anyOf"]])
    elif "const" in schema:
        strategy = st.just(schema["const"])
    else:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        strategy = st.one_of([_of_type(kind, schema) for kind in types])
    if "not" in schema:
        refused = Draft202012Validator(schema["not"])
        strategy = strategy.filter(lambda value: not refused.is_valid(value))
    return strategy


def _of_type(kind: str, schema: dict) -> st.SearchStrategy:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False,
                         allow_infinity=False) | st.integers(min_value=schema.get("minimum"),
                                                             max_value=schema.get("maximum"))
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" not in schema:
            return st.text(min_size=low, max_size=high)
        return st.from_regex(python_pattern(schema["pattern"])).filter(
            lambda text: low <= len(text) and (high is None or len(text) <= high))
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            raise ValueError("only objects with additionalProperties: false are supported")
        properties = {name: values(sub) for name, sub in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries({k: v for k, v in properties.items() if k in required},
                                     optional={k: v for k, v in properties.items() if k not in required})
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(values(schema["items"]), min_size=low,
                        max_size=max(low, min(schema.get("maxItems", ARRAY_ITEMS_DRAWN), ARRAY_ITEMS_DRAWN)))
    raise ValueError(f"type {kind!r} is not supported here")


def documents_a_refusal(schema: dict, field: str) -> bool:
    """Whether the document says `field` (e.g. "mapping.email") may be refused beyond its schema: a description
    on the way to it names a 400 (a check against ActiveCampaign, the segment or the stored records)."""
    node, notes = schema, []
    for part in field.split("."):
        name, _, index = part.partition("[")  # "fields[2]": an item of the array "fields"
        node = _object_option(node).get("properties", {}).get(name)
        if node is None:
            return False
        notes.append(node.get("description", ""))
        if index:
            node = node.get("items", {})
            notes.append(node.get("description", ""))
    return any("400" in note for note in notes)


def _object_option(node: dict) -> dict:
    """The schema of an object, where `node` may offer it among anyOf options (the first that has properties)."""
    if "properties" in node or "anyOf" not in node:
        return node
    return next((option for option in node["anyOf"] if "properties" in option), node)
