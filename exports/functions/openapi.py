"""The API's OpenAPI 3.1 document (exports/openapi.json), served with the caller's own server address."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import azure.functions as func

from exports.functions.errors import api
from shared.api import ALL_METHODS, dispatch
from shared.http import base_url, json_response

bp = func.Blueprint()
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.json"


@functools.lru_cache(maxsize=1)
def _openapi() -> dict:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=ALL_METHODS)
@api
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """Needs the function key only (no role), like any API description."""

    def get():
        document = copy.deepcopy(_openapi())
        document["servers"] = [{"url": f"{base_url(req)}/api"}]
        return json_response(document)

    return dispatch(req, {"GET": get})
