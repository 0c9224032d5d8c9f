"""JSON responses and errors for HTTP functions."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func


class HttpError(Exception):
    """An error a caller can fix; rendered as a JSON body {"error": {"code", "message", "details"}}."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=dict(headers or {}),
    )


def error_response(error: HttpError) -> func.HttpResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return json_response({"error": body}, status=error.status, headers=error.headers)


def base_url(req: func.HttpRequest) -> str:
    """Scheme and host the caller used, so that Location and statusUrl work behind the platform's front end."""
    from urllib.parse import urlsplit

    parts = urlsplit(req.url)
    forwarded_host = req.headers.get("x-forwarded-host")
    forwarded_proto = req.headers.get("x-forwarded-proto")
    return f"{forwarded_proto or parts.scheme}://{forwarded_host or parts.netloc}"
