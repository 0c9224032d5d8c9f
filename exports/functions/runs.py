"""HTTP functions for runs: start one, list an export's runs, read a run's status, cancel a run."""
from __future__ import annotations

import azure.functions as func

from exports.context import get_context
from exports.errors import PreviewTooLarge, RejectsTooLarge, RunInProgress
from exports.functions.errors import api, http_error
from exports.functions.http import caller_of, status_url
from exports.model import RunStatus
from exports.services import runs as service
from shared.api import ALL_METHODS, dispatch, read_json
from shared.http import HttpError, json_response

bp = func.Blueprint()
# An HTTP answer of the Python worker is built in memory; past this the CLI (`python -m exports
# rejects` or `preview`) streams the report to a file instead.
MAX_REPORT_ANSWER_BYTES = 32 * 1024 * 1024


@bp.function_name("export_runs")
@bp.route(route="exports/{exportId}/runs", methods=ALL_METHODS)
@api
def export_runs(req: func.HttpRequest) -> func.HttpResponse:
    export_id = req.route_params["exportId"]

    def start():
        ctx = get_context()
        options = service.run_options(read_json(req) if (req.get_body() or b"").strip() else None)
        try:
            run_id = service.start_run(ctx, caller_of(ctx, req), export_id, options=options)
        except RunInProgress as conflict:
            error = http_error(conflict)
            error.details = {**conflict.details, "statusUrl": status_url(req, conflict.run_id)}
            raise error from None
        url = status_url(req, run_id)
        return json_response({"runId": run_id, "statusUrl": url}, status=202, headers={"Location": url})

    def list_them():
        raw_limit = req.params.get("limit", "20")
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= service.MAX_LISTED_RUNS:
            raise HttpError(400, "invalid_limit", f"limit must be a whole number from 1 to {service.MAX_LISTED_RUNS}")
        ctx = get_context()
        runs = service.list_runs(ctx, caller_of(ctx, req), export_id, int(raw_limit))
        return json_response({"exportId": export_id,
                              "runs": [{**run, "statusUrl": status_url(req, run["runId"])} for run in runs]})

    return dispatch(req, {"GET": list_them, "POST": start})


@bp.function_name("run")
@bp.route(route="runs/{runId}", methods=ALL_METHODS)
@api
def run_item(req: func.HttpRequest) -> func.HttpResponse:
    def get():
        ctx = get_context()
        return json_response(service.run_status(ctx, caller_of(ctx, req), req.route_params["runId"]))

    return dispatch(req, {"GET": get})


@bp.function_name("cancel_run")
@bp.route(route="runs/{runId}/cancel", methods=ALL_METHODS)
@api
def cancel_run(req: func.HttpRequest) -> func.HttpResponse:
    """202 while workers finish the batch they are sending; 200 once the run is cancelled."""

    def post():
        ctx = get_context()
        run_id = req.route_params["runId"]
        document = service.cancel_run(ctx, caller_of(ctx, req), run_id)
        url = status_url(req, run_id)
        status = 200 if RunStatus(document["status"]).final else 202
        return json_response({**document, "statusUrl": url}, status=status, headers={"Location": url})

    return dispatch(req, {"POST": post})


@bp.function_name("approve_run")
@bp.route(route="runs/{runId}/approve", methods=ALL_METHODS)
@api
def approve_run(req: func.HttpRequest) -> func.HttpResponse:
    """202: the held leaver actions are queued; the run finishes once they are sent."""

    def post():
        ctx = get_context()
        run_id = req.route_params["runId"]
        document = service.approve_run(ctx, caller_of(ctx, req), run_id)
        url = status_url(req, run_id)
        return json_response({**document, "statusUrl": url}, status=202, headers={"Location": url})

    return dispatch(req, {"POST": post})


@bp.function_name("run_rejects")
@bp.route(route="runs/{runId}/rejects", methods=ALL_METHODS)
@api
def run_rejects(req: func.HttpRequest) -> func.HttpResponse:
    """The run's rejects report as CSV (blob, row, email, reason), to open in a spreadsheet."""
    return dispatch(req, {"GET": lambda: _report_answer(req, service.rejects_report, RejectsTooLarge)})


@bp.function_name("run_preview")
@bp.route(route="runs/{runId}/preview", methods=ALL_METHODS)
@api
def run_preview(req: func.HttpRequest) -> func.HttpResponse:
    """A dry run's preview as CSV (email, action, first_name, last_name, phone)."""
    return dispatch(req, {"GET": lambda: _report_answer(req, service.preview_report, PreviewTooLarge)})


def _report_answer(req: func.HttpRequest, read_report, too_large) -> func.HttpResponse:
    ctx = get_context()
    report = read_report(ctx, caller_of(ctx, req), req.route_params["runId"])
    if report.size > MAX_REPORT_ANSWER_BYTES:
        raise too_large(
            f"the {report.kind} report of run {report.run_id} has {report.size} bytes, more than this API answers with "
            f"({MAX_REPORT_ANSWER_BYTES}); write it to a file with `python -m exports {report.kind} {report.run_id} -o "
            f"{report.kind}.csv` or download it from the storage account",
            details={"runId": report.run_id, "size": report.size})
    return func.HttpResponse(b"".join(report.chunks()), status_code=200, mimetype="text/csv", charset="utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{report.kind}-{report.run_id}.csv"'})
