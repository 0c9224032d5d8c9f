"""The one table: domain error -> HTTP status and error code, and the decorator that applies it."""
from __future__ import annotations

import functools

import azure.functions as func

from exports import errors
from shared.api import json_api
from shared.http import HttpError

# Most specific first: the first class an error is an instance of decides its answer.
STATUS_AND_CODE: tuple[tuple[type[Exception], int, str], ...] = (
    (errors.Invalid, 400, "validation_failed"),
    (errors.NotSignedIn, 401, "unauthenticated"),
    (errors.Forbidden, 403, "forbidden"),
    (errors.ConnectionNotFound, 404, "connection_not_found"),
    (errors.ExportNotFound, 404, "export_not_found"),
    (errors.RunNotFound, 404, "run_not_found"),
    (errors.RejectsNotFound, 404, "rejects_not_found"),
    (errors.PreviewNotFound, 404, "preview_not_found"),
    (errors.NotFound, 404, "not_found"),
    (errors.RunInProgress, 409, "run_in_progress"),
    (errors.ExportDisabled, 409, "export_disabled"),
    (errors.ConnectionMissing, 409, "connection_missing"),
    (errors.ConnectionInUse, 409, "connection_in_use"),
    (errors.ConnectionUnusable, 409, "connection_unusable"),
    (errors.RunFinished, 409, "run_finished"),
    (errors.RejectsTooLarge, 409, "rejects_too_large"),
    (errors.PreviewTooLarge, 409, "preview_too_large"),
    (errors.Conflict, 409, "conflict"),
    (errors.KeyVaultUnavailable, 503, "key_vault_unavailable"),
    (errors.ActiveCampaignThrottled, 503, "activecampaign_throttled"),
    (errors.ActiveCampaignUnreachable, 502, "activecampaign_unreachable"),
    (errors.ActiveCampaignFailed, 502, "activecampaign_error"),
    (errors.Unavailable, 503, "unavailable"),
    (errors.ActiveCampaignError, 502, "activecampaign_error"),
)


def http_error(error: errors.ExportsError) -> HttpError:
    status, code = next(((status, code) for kind, status, code in STATUS_AND_CODE if isinstance(error, kind)),
                        (500, "internal_error"))
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, errors.ActiveCampaignThrottled) else None
    return HttpError(status, code, error.message, details=error.details, headers=headers)


def api(handler):
    """A JSON API function: domain errors become their answers (the table above), anything else a logged 500."""

    @json_api
    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except errors.ExportsError as error:
            raise http_error(error) from None

    return wrapper
