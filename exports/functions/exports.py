"""HTTP functions for exports: list and create, read, replace and delete."""
from __future__ import annotations

import azure.functions as func

from exports.context import get_context
from exports.functions.errors import api
from exports.functions.http import caller_of
from exports.services import exports as service
from shared.api import ALL_METHODS, dispatch, read_json
from shared.http import base_url, json_response

bp = func.Blueprint()


@bp.function_name("exports")
@bp.route(route="exports", methods=ALL_METHODS)
@api
def exports_collection(req: func.HttpRequest) -> func.HttpResponse:
    def list_them():
        ctx = get_context()
        return json_response({"exports": service.list_exports(ctx, caller_of(ctx, req))})

    def create():
        ctx = get_context()
        document = service.create_export(ctx, caller_of(ctx, req), lambda: read_json(req))
        return json_response(document, status=201, headers={"Location": f"{base_url(req)}/api/exports/{document['id']}"})

    return dispatch(req, {"GET": list_them, "POST": create})


@bp.function_name("export")
@bp.route(route="exports/{exportId}", methods=ALL_METHODS)
@api
def export_item(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]

    def get():
        ctx = get_context()
        return json_response(service.get_export(ctx, caller_of(ctx, req), export_id))

    def put():
        ctx = get_context()
        return json_response(service.update_export(ctx, caller_of(ctx, req), export_id, lambda: read_json(req)))

    def delete():
        ctx = get_context()
        return json_response(service.delete_export(ctx, caller_of(ctx, req), export_id))

    return dispatch(req, {"GET": get, "PUT": put, "DELETE": delete})
