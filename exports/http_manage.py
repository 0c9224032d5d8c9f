"""HTTP functions of the management API: connections, exports, and the OpenAPI document.

Each route is one function that accepts every method and dispatches on it (405 with an Allow
header for the others); each handler identifies the caller, calls one service, and answers JSON.
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import azure.functions as func

from exports import management
from exports.context import get_context
from shared.api import ALL_METHODS, dispatch, json_api, read_json
from shared.http import HttpError, base_url, json_response

bp = func.Blueprint()
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"


def _flag(req: func.HttpRequest, name: str) -> bool:
    value = req.params.get(name, "false").strip().lower()
    if value not in ("true", "false"):
        raise HttpError(400, "invalid_parameter", f"{name} must be true or false")
    return value == "true"


# --- connections ------------------------------------------------------------------------------------
@bp.function_name("connections")
@bp.route(route="connections", methods=ALL_METHODS)
@json_api
def connections(req: func.HttpRequest) -> func.HttpResponse:
    def list_them():
        ctx = get_context()
        return json_response({"connections": management.list_connections(ctx, management.identify_caller(ctx, req.headers))})

    def create():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        document = management.create_connection(ctx, caller, lambda: read_json(req))
        location = f"{base_url(req)}/api/connections/{document['id']}"
        return json_response(document, status=201, headers={"Location": location})

    return dispatch(req, {"GET": list_them, "POST": create})


@bp.function_name("connection")
@bp.route(route="connections/{connectionId}", methods=ALL_METHODS)
@json_api
def connection(req: func.HttpRequest) -> func.HttpResponse:
    connection_id = req.route_params["connectionId"]

    def get():
        ctx = get_context()
        return json_response(management.get_connection(ctx, management.identify_caller(ctx, req.headers), connection_id))

    def delete():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        force = _flag(req, "force")
        return json_response(management.delete_connection(ctx, caller, connection_id, force))

    return dispatch(req, {"GET": get, "DELETE": delete})


# --- exports ----------------------------------------------------------------------------------------
@bp.function_name("exports")
@bp.route(route="exports", methods=ALL_METHODS)
@json_api
def exports_collection(req: func.HttpRequest) -> func.HttpResponse:
    def list_them():
        ctx = get_context()
        return json_response({"exports": management.list_exports(ctx, management.identify_caller(ctx, req.headers))})

    def create():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        document = management.create_export(ctx, caller, lambda: read_json(req))
        location = f"{base_url(req)}/api/exports/{document['id']}"
        return json_response(document, status=201, headers={"Location": location})

    return dispatch(req, {"GET": list_them, "POST": create})


@bp.function_name("export")
@bp.route(route="exports/{exportId}", methods=ALL_METHODS)
@json_api
def export_item(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]

    def get():
        ctx = get_context()
        return json_response(management.get_export(ctx, management.identify_caller(ctx, req.headers), export_id))

    def put():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        return json_response(management.update_export(ctx, caller, export_id, lambda: read_json(req)))

    def delete():
        ctx = get_context()
        return json_response(management.delete_export(ctx, management.identify_caller(ctx, req.headers), export_id))

    return dispatch(req, {"GET": get, "PUT": put, "DELETE": delete})


# --- the OpenAPI document ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _openapi() -> dict:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=ALL_METHODS)
@json_api
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """The API's OpenAPI 3.1 document; needs the function key only (no role), like any API description."""

    def get():
        document = copy.deepcopy(_openapi())
        document["servers"] = [{"url": f"{base_url(req)}/api"}]
        return json_response(document)

    return dispatch(req, {"GET": get})
