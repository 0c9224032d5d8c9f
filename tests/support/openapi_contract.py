"""Every response the suite produces, checked against exports/openapi.json.

TestApp.request calls check_response for each response, so a response that drifts from the
document fails the test that produced it, naming the route, the status and the schema error.
The document itself is checked once with openapi-spec-validator.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "exports" / "openapi.json"
_BASE = "urn:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ContractError(AssertionError):
    pass


@functools.lru_cache(maxsize=1)
def document() -> dict:
    from openapi_spec_validator import validate

    doc = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    validate(doc)
    return doc


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(_BASE, Resource.from_contents(document(), default_specification=DRAFT202012))


@functools.lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern, str]]:
    out = []
    for template in document()["paths"]:
        pattern = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{\w+\})", template))
        out.append((re.compile(pattern), template))
    return out


def match_path(path: str) -> str | None:
    """The document's path template for a request path like /api/exports/abc (None when undocumented)."""
    local = path.split("?", 1)[0].removeprefix("/api")
    for pattern, template in _templates():
        if pattern.fullmatch(local):
            return template
    return None


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(obj: dict, pointer: str) -> tuple[dict, str]:
    """Follow a response object's $ref (OpenAPI, not JSON Schema) to the object and its pointer."""
    while "$ref" in obj:
        pointer = obj["$ref"].removeprefix("#")
        obj = document()
        for part in pointer.strip("/").split("/"):
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj, pointer


def check_response(method: str, path: str, status: int, headers: dict, body) -> None:
    template = match_path(path)
    where = f"{method} {path} -> {status}"
    if template is None:
        raise ContractError(f"{where}: the path is not in exports/openapi.json")
    item = document()["paths"][template]
    operation = item.get(method.lower())
    if operation is None:
        # Undocumented methods of a documented route: the generic 405 with an Allow header.
        if status != 405:
            raise ContractError(f"{where}: {method} is not documented for {template}, so the answer must be 405")
        response, pointer = _resolve({"$ref": "#/components/responses/MethodNotAllowed"}, "")
    else:
        responses = operation["responses"]
        if str(status) not in responses:
            raise ContractError(f"{where}: status {status} is not documented for {method.upper()} {template} "
                                f"(documented: {', '.join(sorted(responses))})")
        response, pointer = _resolve(responses[str(status)], _pointer("paths", template, method.lower(), "responses", str(status)))
    lower = {k.lower(): v for k, v in headers.items()}
    for name, spec in response.get("headers", {}).items():
        if spec.get("required") and name.lower() not in lower:
            raise ContractError(f"{where}: header {name} is required by the document but missing")
    content = response.get("content")
    if not content:
        if body not in (None, b"", ""):
            raise ContractError(f"{where}: the document says no body, the response has one")
        return
    content_type = lower.get("content-type", "")
    if "text/csv" in content and content_type.startswith("text/csv"):
        if not isinstance(body, str):
            raise ContractError(f"{where}: the document says a CSV body, the response has {type(body).__name__}")
        return
    if not content_type.startswith("application/json"):
        raise ContractError(f"{where}: Content-Type {content_type!r}, the document says application/json")
    schema = {"$ref": f"{_BASE}#{pointer}/content/application~1json/schema"}
    validator = Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        at = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise ContractError(f"{where}: the body does not match {template} {method.upper()} {status} in exports/openapi.json "
                            f"at {at}: {first.message}" + (f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""))
