"""What every HTTP function of the app reads from a request: the caller, flags, and where a run's status is."""
from __future__ import annotations

import azure.functions as func

from exports.context import AppContext
from exports.errors import NotSignedIn
from shared.auth import AuthError, Caller, identify
from shared.http import HttpError, base_url


def caller_of(ctx: AppContext, req: func.HttpRequest) -> Caller:
    settings = ctx.settings
    try:
        return identify(req.headers, require_sign_in=settings.require_sign_in, admin_role=settings.admin_role,
                        contributor_role=settings.contributor_role)
    except AuthError as error:
        raise NotSignedIn(str(error)) from None


def flag(req: func.HttpRequest, name: str) -> bool:
    value = req.params.get(name, "false").strip().lower()
    if value not in ("true", "false"):
        raise HttpError(400, "invalid_parameter", f"{name} must be true or false")
    return value == "true"


def status_url(req: func.HttpRequest, run_id: str) -> str:
    return f"{base_url(req)}/api/runs/{run_id}"
