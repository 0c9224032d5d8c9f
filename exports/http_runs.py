"""HTTP functions for runs: start one, list an export's runs, read a run's status, cancel a run.

Access follows the export's connection (exports/management.py): admins see every run, contributors
the runs of exports on connections open to them; a deleted export's runs stay readable by admins.
"""
from __future__ import annotations

import azure.functions as func

from exports import management
from exports.context import get_context
from exports.runs import FINAL_STATUSES, ActiveRunConflict
from shared.api import ALL_METHODS, dispatch, json_api
from shared.http import HttpError, base_url, json_response

bp = func.Blueprint()
MAX_LISTED_RUNS = management.MAX_LISTED_RUNS


def status_url(req: func.HttpRequest, run_id: str) -> str:
    return f"{base_url(req)}/api/runs/{run_id}"


@bp.function_name("export_runs")
@bp.route(route="exports/{exportId}/runs", methods=ALL_METHODS)
@json_api
def export_runs(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]

    def start():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        try:
            run_id = management.start_run(ctx, caller, export_id)
        except ActiveRunConflict as conflict:
            raise HttpError(409, "run_in_progress",
                            f"run {conflict.run_id} of this export is still queued or running; wait for it to finish "
                            "or cancel it",
                            details={"runId": conflict.run_id, "statusUrl": status_url(req, conflict.run_id)}) from None
        url = status_url(req, run_id)
        return json_response({"runId": run_id, "statusUrl": url}, status=202, headers={"Location": url})

    def list_them():
        raw_limit = req.params.get("limit", "20")
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LISTED_RUNS:
            raise HttpError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LISTED_RUNS}")
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        runs = management.list_runs(ctx, caller, export_id, int(raw_limit))
        return json_response({"exportId": export_id,
                              "runs": [{**run, "statusUrl": status_url(req, run["runId"])} for run in runs]})

    return dispatch(req, {"GET": list_them, "POST": start})


@bp.function_name("run")
@bp.route(route="runs/{runId}", methods=ALL_METHODS)
@json_api
def run_item(req: func.HttpRequest) -> func.HttpResponse:
    def get():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        return json_response(management.run_status(ctx, caller, req.route_params["runId"]))

    return dispatch(req, {"GET": get})


@bp.function_name("cancel_run")
@bp.route(route="runs/{runId}/cancel", methods=ALL_METHODS)
@json_api
def cancel_run(req: func.HttpRequest) -> func.HttpResponse:
    """202 while workers finish the batch they are sending; 200 once the run is cancelled."""

    def post():
        ctx = get_context()
        caller = management.identify_caller(ctx, req.headers)
        run_id = req.route_params["runId"]
        document = management.cancel_run(ctx, caller, run_id)
        url = status_url(req, run_id)
        status = 200 if document["status"] in FINAL_STATUSES else 202
        return json_response({**document, "statusUrl": url}, status=status, headers={"Location": url})

    return dispatch(req, {"POST": post})
