"""HTTP plumbing for JSON APIs on Functions: one function per route that dispatches on the method,
and bodies read with a size limit.

The host routes a request to a function by route template *and* method; a method no function
declares gets the host's bare 404. So each route is one function that accepts every method and
answers the ones it does not serve with 405 and an Allow header.

"Every method" means declaring no method list at all: the host then maps the route without a
method constraint, so TRACE and extension methods (PROPFIND, ...) reach the function too. A list
cannot say that: azure.functions.HttpMethod has no TRACE or CONNECT, and the host routes only the
methods listed. CONNECT never reaches any route: its target is host:port, not a path.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from shared.http import HttpError, error_response

log = logging.getLogger(__name__)

ALL_METHODS = None  # for route(methods=...): no method list, so the host routes every method here
MAX_BODY_BYTES = 64 * 1024


def json_api(handler):
    """HttpError becomes its JSON answer; anything else is logged and answered 500 in the same JSON shape."""

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest, *args, **kwargs) -> func.HttpResponse:
        try:
            return handler(req, *args, **kwargs)
        except HttpError as error:
            return error_response(error)
        except Exception:
            log.exception("%s %s failed", req.method, _path(req.url))
            return error_response(HttpError(500, "internal_error",
                                            "the request failed on the server; the error was logged: try again, and "
                                            "report it if it persists"))

    return wrapper


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path  # never the query string: it may hold the function key (?code=)


def dispatch(req: func.HttpRequest, handlers: Mapping[str, Callable[[], func.HttpResponse]]) -> func.HttpResponse:
    """Call the handler for the request's method, or raise 405 naming the methods the route serves."""
    method = (req.method or "").upper()
    handler = handlers.get(method)
    if handler is None:
        allowed = ", ".join(handlers)
        raise HttpError(405, "method_not_allowed", f"{method} is not allowed here; use {allowed}",
                        headers={"Allow": allowed})
    return handler()


def read_json(req: func.HttpRequest, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body parsed as JSON: 413 over `limit` bytes, 400 when empty or not JSON."""
    body = req.get_body() or b""
    if len(body) > limit:
        raise HttpError(413, "body_too_large", f"the request body has {len(body)} bytes; the limit is {limit} bytes")
    if not body.strip():
        raise HttpError(400, "invalid_json", "the request needs a JSON body (Content-Type: application/json)")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_json", "the request body is not UTF-8 text; send JSON") from None
    except json.JSONDecodeError as error:
        raise HttpError(400, "invalid_json",
                        f"the request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
