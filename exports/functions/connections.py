"""HTTP functions for connections: list and create, read and delete."""
from __future__ import annotations

import azure.functions as func

from exports.context import get_context
from exports.functions.errors import api
from exports.functions.http import caller_of, flag
from exports.services import connections as service
from shared.api import ALL_METHODS, dispatch, read_json
from shared.http import base_url, json_response

bp = func.Blueprint()


@bp.function_name("connections")
@bp.route(route="connections", methods=ALL_METHODS)
@api
def connections(req: func.HttpRequest) -> func.HttpResponse:
    def list_them():
        ctx = get_context()
        return json_response({"connections": service.list_connections(ctx, caller_of(ctx, req))})

    def create():
        ctx = get_context()
        document = service.create_connection(ctx, caller_of(ctx, req), lambda: read_json(req))
        return json_response(document, status=201, headers={"Location": f"{base_url(req)}/api/connections/{document['id']}"})

    return dispatch(req, {"GET": list_them, "POST": create})


@bp.function_name("connection")
@bp.route(route="connections/{connectionId}", methods=ALL_METHODS)
@api
def connection(req: func.HttpRequest) -> func.HttpResponse:
    connection_id = req.route_params["connectionId"]

    def get():
        ctx = get_context()
        return json_response(service.get_connection(ctx, caller_of(ctx, req), connection_id))

    def delete():
        ctx = get_context()
        caller = caller_of(ctx, req)
        return json_response(service.delete_connection(ctx, caller, connection_id, force=flag(req, "force")))

    return dispatch(req, {"GET": get, "DELETE": delete})
