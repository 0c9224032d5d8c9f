"""HTTP functions for runs: start one, list an export's runs, read a run's status."""
from __future__ import annotations

import azure.functions as func

from exports import pipeline
from exports.config import NotFound
from exports.context import get_context
from exports.runs import ActiveRunConflict, RunNotFound
from shared.http import HttpError, base_url, handle_errors, json_response

bp = func.Blueprint()
MAX_LISTED_RUNS = 100


def status_url(req: func.HttpRequest, run_id: str) -> str:
    return f"{base_url(req)}/api/runs/{run_id}"


@bp.route(route="exports/{exportId}/runs", methods=["POST"])
@handle_errors
def start_export_run(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]
    ctx = get_context()
    try:
        run_id = pipeline.start_run(ctx, export_id, trigger="http")
    except NotFound as error:
        raise HttpError(404, "export_not_found", str(error)) from None
    except pipeline.ExportDisabled as error:
        raise HttpError(409, "export_disabled", str(error)) from None
    except ActiveRunConflict as conflict:
        raise HttpError(409, "run_in_progress",
                        f"run {conflict.run_id} of this export is still queued or running; wait for it to finish",
                        details={"runId": conflict.run_id, "statusUrl": status_url(req, conflict.run_id)}) from None
    url = status_url(req, run_id)
    return json_response({"runId": run_id, "statusUrl": url}, status=202, headers={"Location": url})


@bp.route(route="exports/{exportId}/runs", methods=["GET"])
@handle_errors
def list_export_runs(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]
    raw_limit = req.params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LISTED_RUNS:
        raise HttpError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LISTED_RUNS}")
    ctx = get_context()
    rows = ctx.runs.list_runs(export_id, limit=int(raw_limit))
    if not rows and ctx.config.find_export(export_id) is None:
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist and has no runs")
    runs = []
    for row in rows:
        try:
            runs.append({**pipeline.run_status(ctx, row["runId"]), "statusUrl": status_url(req, row["runId"])})
        except RunNotFound:
            continue  # an index row whose run was never written (a start that crashed)
    return json_response({"exportId": export_id, "runs": runs})


@bp.route(route="runs/{runId}", methods=["GET"])
@handle_errors
def get_run_status(req: func.HttpRequest) -> func.HttpResponse:
    run_id = req.route_params["runId"]
    try:
        return json_response(pipeline.run_status(get_context(), run_id))
    except RunNotFound as error:
        raise HttpError(404, "run_not_found", str(error)) from None
