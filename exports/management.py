"""The management services: connections, exports and runs, each checked against who is asking.

Who may do what (role names come from EXPORT_ADMIN_ROLE / EXPORT_CONTRIBUTOR_ROLE):
- admins manage connections and exports, and start, read and cancel any run;
- contributors see only the connections an admin opened to contributors (allowContributors),
  and create, change, run, cancel and delete exports on those; any other connection, and every
  export and run on it, does not exist for them (404, so not even its name shows);
- anyone else gets 403 everywhere.
The runs of a deleted export stay readable by admins only: with the export gone nothing says
which contributors it belonged to.

Services raise shared.http.HttpError: every refusal is an answer with a status a caller can act on.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from azure.core.exceptions import AzureError, ResourceNotFoundError

from exports import pipeline
from exports.activecampaign import ActiveCampaignClient, ActiveCampaignError, Fatal, KeyRejected, Transient
from exports.activecampaign import NotFound as AcNotFound
from exports.config import (
    Connection,
    Export,
    Mapping,
    NotFound,
    new_id,
    secret_name_for,
    validate_connection_fields,
    validate_export_fields,
)
from exports.context import AppContext
from exports.runs import ACTIVE_STATUSES, RunNotFound, RunView, status_document
from exports.segments import SegmentError, is_segment_blob, read_records
from shared.api import check_document, validation_error
from shared.auth import AuthError, Caller, identify
from shared.http import HttpError
from shared.logging import get_logger
from shared.secrets import SecretNotFound

log = get_logger(__name__)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_API_KEY = re.compile(r"^[\x21-\x7e]{1,500}$")  # printable ASCII without spaces: it travels in a header
HEADER_PROBE_BYTES = 1024 * 1024  # enough for any header row or first JSON line; never the whole blob
MAX_LISTED_RUNS = 100

CONNECTION_FIELDS = {
    "displayName": (("string",), True),
    "hostname": (("string",), True),
    "apiKey": (("string",), True),
    "allowContributors": (("boolean",), False),
    "privacyConsent": (("boolean",), True),
}
EXPORT_FIELDS = {
    "displayName": (("string",), True),
    "connectionId": (("string",), True),
    "listId": (("string", "integer"), True),
    "segment": ({"container": (("string",), True), "prefix": (("string",), False)}, True),
    "mapping": ({name: (("string", "null"), name == "email") for name in ("email", "firstName", "lastName", "phone")}, True),
    "enabled": (("boolean",), False),
}


# --- who is asking ----------------------------------------------------------------------------------
def identify_caller(ctx: AppContext, headers) -> Caller:
    settings = ctx.settings
    try:
        return identify(headers, require_sign_in=settings.require_sign_in, admin_role=settings.admin_role,
                        contributor_role=settings.contributor_role)
    except AuthError as error:
        raise HttpError(401, "unauthenticated", str(error)) from None


def _require_role(ctx: AppContext, caller: Caller) -> None:
    if not (caller.is_admin or caller.is_contributor):
        settings = ctx.settings
        raise HttpError(403, "forbidden", f"{caller.name} has neither the {settings.admin_role} nor the "
                                          f"{settings.contributor_role} role; ask an admin to assign one")


def _require_admin(ctx: AppContext, caller: Caller, action: str) -> None:
    _require_role(ctx, caller)
    if not caller.is_admin:
        raise HttpError(403, "forbidden", f"only admins (role {ctx.settings.admin_role}) may {action}")


def may_use(caller: Caller, connection: Connection | None) -> bool:
    if caller.is_admin:
        return True
    return caller.is_contributor and connection is not None and connection.allowContributors


def _find_connection(ctx: AppContext, connection_id: str) -> Connection | None:
    if not isinstance(connection_id, str) or not _ID.match(connection_id):
        return None
    try:
        return ctx.config.get_connection(connection_id)
    except NotFound:
        return None


def _find_export(ctx: AppContext, export_id: str) -> Export | None:
    if not _ID.match(export_id):
        return None
    return ctx.config.find_export(export_id)


def _connection_for(ctx: AppContext, caller: Caller, connection_id: str) -> Connection:
    """The connection if it exists and the caller may see it; otherwise 404, whichever it is."""
    _require_role(ctx, caller)
    connection = _find_connection(ctx, connection_id)
    if connection is None or not may_use(caller, connection):
        raise HttpError(404, "connection_not_found", f"connection {connection_id!r} does not exist")
    return connection


def _export_for(ctx: AppContext, caller: Caller, export_id: str) -> Export:
    """The export if it exists and the caller may use its connection; otherwise 404."""
    _require_role(ctx, caller)
    export = _find_export(ctx, export_id)
    if export is None or not may_use(caller, _find_connection(ctx, export.connectionId)):
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist")
    return export


# --- connections ------------------------------------------------------------------------------------
def connection_document(connection: Connection) -> dict:
    return connection.to_document()


def list_connections(ctx: AppContext, caller: Caller) -> list[dict]:
    _require_role(ctx, caller)
    visible = [c for c in ctx.config.list_connections() if may_use(caller, c)]
    return [connection_document(c) for c in sorted(visible, key=lambda c: (c.displayName.lower(), c.id))]


def get_connection(ctx: AppContext, caller: Caller, connection_id: str) -> dict:
    return connection_document(_connection_for(ctx, caller, connection_id))


def create_connection(ctx: AppContext, caller: Caller, read_body: Callable[[], object]) -> dict:
    """Check the key with ActiveCampaign, store it in Key Vault, then record the connection (201).

    `read_body` parses the request body; it is called only once the caller may create connections.
    """
    _require_admin(ctx, caller, "create connections")
    body = read_body()
    problems = check_document(body, CONNECTION_FIELDS)
    if problems and not isinstance(body, dict):
        raise validation_error(problems)
    # Consent that is missing, false or not a boolean gets the one message that says why it is needed.
    problems = [p for p in problems if p["field"] != "privacyConsent"]
    taken = {p["field"] for p in problems}
    problems += [p for p in validate_connection_fields(body.get("displayName"), body.get("hostname"),
                                                       body.get("privacyConsent"))
                 if p["field"] not in taken]
    api_key = body.get("apiKey")
    if "apiKey" not in taken:
        api_key = api_key.strip()
        if not api_key:
            problems.append({"field": "apiKey", "message": "is required: the API key from ActiveCampaign's Settings > Developer"})
        elif not _API_KEY.match(api_key):
            problems.append({"field": "apiKey", "message": "is not an ActiveCampaign API key: copy it from Settings > "
                                                           "Developer; it has no spaces and at most 500 characters"})
    if problems:
        raise validation_error(problems)
    hostname = body["hostname"].strip().lower().rstrip(".")
    _check_api_key(ctx, hostname, api_key)

    connection_id = new_id()
    secret_name = secret_name_for(connection_id)
    try:
        ctx.secrets.set(secret_name, api_key)
    except AzureError as error:
        log.error("connection not created: the API key could not be stored in Key Vault (%s)", type(error).__name__)
        raise HttpError(503, "key_vault_unavailable", "the API key could not be stored in Key Vault; nothing was saved: "
                                                      "try again in a moment") from None
    try:
        connection = ctx.config.create_connection(
            display_name=body["displayName"], hostname=hostname, allow_contributors=body.get("allowContributors", False),
            privacy_consent=body["privacyConsent"], actor=caller.name, connection_id=connection_id)
    except BaseException:
        _delete_secret_quietly(ctx, secret_name)
        raise
    log.info("connection created: id=%s hostname=%s allowContributors=%s by=%s", connection.id, connection.hostname,
             connection.allowContributors, caller.name)
    return connection_document(connection)


def _check_api_key(ctx: AppContext, hostname: str, api_key: str) -> None:
    """GET /api/3/users/me with the key before anything is saved; 400/502/503 when it does not work."""
    client = ActiveCampaignClient.for_hostname(hostname, api_key, ctx.settings.activecampaign_base_url,
                                               timeout=ctx.settings.request_timeout_seconds)
    try:
        ctx.budget(hostname).before_request()
        user = client.users_me()
        if not isinstance(user, dict):
            raise KeyError("user")
    except KeyRejected:
        raise validation_error([{"field": "apiKey", "message": "ActiveCampaign rejected this API key (403): copy the "
                                                               f"key again from Settings > Developer of the account at {hostname}"}]) from None
    except AcNotFound:
        raise validation_error([{"field": "hostname", "message": f"{hostname} has no ActiveCampaign API (GET /api/3/users/me "
                                                                 "answered 404): enter the REST endpoint hostname from "
                                                                 "Settings > Developer, e.g. myaccount.api-us1.com"}]) from None
    except (KeyError, TypeError):
        raise validation_error([{"field": "hostname", "message": f"{hostname} does not answer like ActiveCampaign's API: "
                                                                 "enter the REST endpoint hostname from Settings > Developer, "
                                                                 "e.g. myaccount.api-us1.com"}]) from None
    except Exception as error:  # noqa: BLE001 - Transient, Fatal and anything requests lets through
        raise _activecampaign_unavailable(error, hostname) from None
    finally:
        client.close()


def _activecampaign_unavailable(error: Exception, hostname: str) -> HttpError:
    if isinstance(error, Transient) and error.throttled:
        retry = max(1, round(error.retry_after or 1))
        return HttpError(503, "activecampaign_throttled", f"ActiveCampaign at {hostname} is throttling this account's "
                                                          f"requests; nothing was saved: try again in {retry} s",
                         headers={"Retry-After": str(retry)})
    if isinstance(error, Transient):
        return HttpError(502, "activecampaign_unreachable", f"ActiveCampaign could not be reached at {hostname} ({error}); "
                                                            "nothing was saved: check the hostname, or try again later")
    if isinstance(error, (Fatal, ActiveCampaignError)):
        return HttpError(502, "activecampaign_error", f"ActiveCampaign at {hostname} answered with an error: {error}; "
                                                      "nothing was saved")
    log.warning("unexpected error calling ActiveCampaign at %s: %s", hostname, type(error).__name__)
    return HttpError(502, "activecampaign_unreachable", f"ActiveCampaign could not be reached at {hostname} "
                                                        f"({type(error).__name__}); nothing was saved: try again later")


def _delete_secret_quietly(ctx: AppContext, secret_name: str) -> None:
    try:
        ctx.secrets.delete(secret_name)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        log.exception("could not delete Key Vault secret %s after a failed change", secret_name)


def delete_connection(ctx: AppContext, caller: Caller, connection_id: str, force: bool) -> dict:
    connection = _connection_for(ctx, caller, connection_id)
    _require_admin(ctx, caller, "delete connections")
    users = sorted((e for e in ctx.config.list_exports() if e.connectionId == connection.id),
                   key=lambda e: (e.displayName.lower(), e.id))
    if users and not force:
        names = ", ".join(f"{e.displayName!r} ({e.id})" for e in users)
        raise HttpError(409, "connection_in_use",
                        f"connection {connection.displayName!r} is used by {len(users)} export(s): {names}. Delete those "
                        "exports or move them to another connection first, or repeat with ?force=true to disable them "
                        "and delete the connection anyway",
                        details={"exports": [{"id": e.id, "displayName": e.displayName} for e in users]})
    disabled, cancelled = [], []
    for export in users:
        if export.enabled:
            ctx.config.set_export_enabled(export.id, False, caller.name)
            disabled.append(export.id)
        cancelled += _cancel_active_runs(ctx, export.id, caller.name, "the connection was deleted")
    try:
        ctx.secrets.delete(connection.apiKeySecretName)
    except AzureError as error:
        log.error("connection %s not deleted: Key Vault secret %s could not be deleted (%s)", connection.id,
                  connection.apiKeySecretName, type(error).__name__)
        raise HttpError(503, "key_vault_unavailable",
                        "the connection's API key could not be deleted from Key Vault, so the connection was kept"
                        + (f" (its exports {', '.join(disabled)} are now disabled)" if disabled else "")
                        + ": try again in a moment") from None
    ctx.config.delete_connection(connection.id)
    log.info("connection deleted: id=%s by=%s disabledExports=%s cancelledRuns=%s", connection.id, caller.name,
             ",".join(disabled) or "-", ",".join(cancelled) or "-")
    return {"connectionId": connection.id, "deleted": True, "disabledExports": disabled, "cancelledRuns": cancelled}


# --- exports ----------------------------------------------------------------------------------------
def export_document(export: Export) -> dict:
    return export.to_document()


def list_exports(ctx: AppContext, caller: Caller) -> list[dict]:
    _require_role(ctx, caller)
    usable = {c.id for c in ctx.config.list_connections() if may_use(caller, c)}
    exports = [e for e in ctx.config.list_exports() if caller.is_admin or e.connectionId in usable]
    return [export_document(e) for e in sorted(exports, key=lambda e: (e.displayName.lower(), e.id))]


def get_export(ctx: AppContext, caller: Caller, export_id: str) -> dict:
    return export_document(_export_for(ctx, caller, export_id))


def create_export(ctx: AppContext, caller: Caller, read_body: Callable[[], object]) -> dict:
    _require_role(ctx, caller)
    fields = _checked_export(ctx, caller, read_body(), current=None)
    export = ctx.config.create_export(actor=caller.name, **fields)
    log.info("export created: id=%s connection=%s list=%s by=%s", export.id, export.connectionId, export.listId, caller.name)
    return export_document(export)


def update_export(ctx: AppContext, caller: Caller, export_id: str, read_body: Callable[[], object]) -> dict:
    current = _export_for(ctx, caller, export_id)
    fields = _checked_export(ctx, caller, read_body(), current=current)
    try:
        export = ctx.config.update_export(export_id, actor=caller.name, **fields)
    except NotFound:
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist") from None
    log.info("export updated: id=%s connection=%s list=%s enabled=%s by=%s", export.id, export.connectionId,
             export.listId, export.enabled, caller.name)
    return export_document(export)


def delete_export(ctx: AppContext, caller: Caller, export_id: str) -> dict:
    """Delete the export: no new runs, and its queued or running runs are cancelled. Its runs stay readable."""
    export = _export_for(ctx, caller, export_id)
    cancelled = _cancel_active_runs(ctx, export.id, caller.name, "the export was deleted")
    try:
        ctx.config.delete_export(export.id)
    except NotFound:
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist") from None
    log.info("export deleted: id=%s by=%s cancelledRuns=%s", export.id, caller.name, ",".join(cancelled) or "-")
    return {"exportId": export.id, "deleted": True, "cancelledRuns": cancelled}


def _checked_export(ctx: AppContext, caller: Caller, body: object, current: Export | None) -> dict:
    """The keyword arguments of ConfigStore.create_export/update_export, or 400 listing every problem."""
    problems = check_document(body, EXPORT_FIELDS)
    if problems and not isinstance(body, dict):
        raise validation_error(problems)
    taken = {p["field"] for p in problems}
    segment = body.get("segment") if isinstance(body.get("segment"), dict) else {}
    mapping = body.get("mapping") if isinstance(body.get("mapping"), dict) else {}
    mapping = {name: value for name, value in mapping.items() if value is not None}
    fields = dict(display_name=body.get("displayName"), connection_id=body.get("connectionId"),
                  list_id=body.get("listId"), container=segment.get("container"), prefix=segment.get("prefix", ""),
                  mapping=mapping, enabled=body.get("enabled", True))
    static = validate_export_fields(fields["display_name"], fields["list_id"], fields["container"], fields["prefix"],
                                    mapping)
    problems += [p for p in static if p["field"] not in taken and not _under_taken(p["field"], taken)]
    connection = None
    if "connectionId" not in taken:
        connection = _find_connection(ctx, fields["connection_id"])
        if connection is None or not may_use(caller, connection):
            problems.append({"field": "connectionId", "message": f"connection {fields['connection_id']!r} does not exist"
                                                                 + ("" if caller.is_admin else " or is not open to contributors")})
            connection = None
    if problems:
        raise validation_error(problems)
    fields["list_id"] = str(fields["list_id"]).strip()

    same_list = current is not None and (current.connectionId, current.listId) == (connection.id, fields["list_id"])
    if not same_list:
        _check_list(ctx, connection, fields["list_id"])
    columns = Mapping(**{k: v.strip() for k, v in mapping.items()}).columns()
    same_source = current is not None and (current.segmentContainer, current.segmentPrefix, current.mapping.columns()) == (
        fields["container"], fields["prefix"], columns)
    if not same_source:
        problems = _check_columns(ctx, fields["container"], fields["prefix"], columns)
        if problems:
            raise validation_error(problems)
    return fields


def _under_taken(field: str, taken: set[str]) -> bool:
    return any(field.startswith(t + ".") for t in taken)


def _check_list(ctx: AppContext, connection: Connection, list_id: str) -> None:
    """GET /api/3/lists/{id} with the connection's key: 400 naming listId when the account has no such list."""
    try:
        client = ctx.activecampaign(connection.hostname, connection.apiKeySecretName)
    except SecretNotFound:
        raise HttpError(409, "connection_unusable",
                        f"the API key of connection {connection.displayName!r} is missing from Key Vault: an admin must "
                        "delete the connection and create it again") from None
    except AzureError as error:
        log.error("Key Vault could not be read for connection %s (%s)", connection.id, type(error).__name__)
        raise HttpError(503, "key_vault_unavailable", "the connection's API key could not be read from Key Vault: "
                                                      "try again in a moment") from None
    try:
        ctx.budget(connection.hostname).before_request()
        client.get_list(list_id)
    except AcNotFound:
        raise validation_error([{"field": "listId", "message": f"list {list_id} does not exist in this ActiveCampaign "
                                                               "account: use the id of one of its lists (Lists, then the "
                                                               "number in the list's address)"}]) from None
    except KeyRejected:
        ctx.secrets.forget(connection.apiKeySecretName)
        raise validation_error([{"field": "connectionId", "message": f"ActiveCampaign refused the API key of connection "
                                                                     f"{connection.displayName!r} (403) for list {list_id}: "
                                                                     "the key was revoked or its user may not read "
                                                                     "lists; an admin must replace the connection"}]) from None
    except Exception as error:  # noqa: BLE001
        raise _activecampaign_unavailable(error, connection.hostname) from None


def _check_columns(ctx: AppContext, container: str, prefix: str, columns: dict[str, str]) -> list[dict[str, str]]:
    """When the segment has a blob already, every mapped column must be in the first blob's header."""
    blob = _first_segment_blob(ctx, container, prefix)
    if blob is None:
        return []
    length = min(blob.size or 0, HEADER_PROBE_BYTES)
    probe = b""
    if length:
        downloader = ctx.storage.blobs.get_blob_client(container, blob.name).download_blob(offset=0, length=length)
        probe = downloader.readall()
    problems = []
    for field, column in columns.items():
        try:
            for record in read_records(blob.name, [probe], {field: column}):
                if record.error is None:
                    break  # the header (or the first JSON object) has the column
        except SegmentError as error:
            if " not found; the columns available are " in str(error):
                problems.append({"field": f"mapping.{field}", "message": f"segment blob {error}"})
            # Anything else (an empty or unreadable blob) is the run's to report: the mapping is not the problem.
    return problems


def _first_segment_blob(ctx: AppContext, container: str, prefix: str):
    client = ctx.storage.blobs.get_container_client(container)
    try:
        for blob in client.list_blobs(name_starts_with=prefix or None):
            if is_segment_blob(blob.name):
                return blob  # listed in name order: the segment's first blob
    except ResourceNotFoundError:
        return None  # no container yet: nothing to check until the platform writes the segment
    return None


# --- runs -------------------------------------------------------------------------------------------
def start_run(ctx: AppContext, caller: Caller, export_id: str) -> str:
    export = _export_for(ctx, caller, export_id)
    if not export.enabled:
        raise HttpError(409, "export_disabled", f"export {export_id} is disabled; enable it (PUT with \"enabled\": true) "
                                                "to run it")
    if _find_connection(ctx, export.connectionId) is None:
        raise HttpError(409, "connection_missing", f"export {export_id} uses connection {export.connectionId}, which was "
                                                   "deleted: point the export at another connection")
    try:
        return pipeline.start_run(ctx, export_id, trigger="http")
    except NotFound as error:  # deleted in between
        raise HttpError(404, "export_not_found", str(error)) from None
    except pipeline.ExportDisabled as error:
        raise HttpError(409, "export_disabled", str(error)) from None


def _may_read_run(ctx: AppContext, caller: Caller, run: dict, lookup=None) -> bool:
    """Admins read every run; contributors the runs of live exports whose connection, and the run's, are open."""
    if caller.is_admin:
        return True
    find_export, find_connection = lookup or (ctx.config.find_export, lambda cid: _find_connection(ctx, cid))
    export = find_export(run["exportId"])
    if export is None:
        return False  # a deleted export's runs: admins only
    return may_use(caller, find_connection(export.connectionId)) and may_use(caller, find_connection(run["connectionId"]))


def _run_for(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    _require_role(ctx, caller)
    try:
        run = ctx.runs.get_run(run_id) if _ID.match(run_id) else None
    except RunNotFound:
        run = None
    if run is None or not _may_read_run(ctx, caller, run):
        raise HttpError(404, "run_not_found", f"run {run_id!r} does not exist")
    return run


def run_document(view: RunView) -> dict:
    doc = status_document(view)
    run = view.run
    if run.get("cancelRequested"):
        doc["cancellation"] = {"requestedBy": run.get("cancelRequestedBy"), "requestedAt": run.get("cancelRequestedAt"),
                               "reason": run.get("cancelReason")}
    return doc


def run_status(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    _run_for(ctx, caller, run_id)
    try:
        return run_document(ctx.runs.view(run_id))
    except RunNotFound:
        raise HttpError(404, "run_not_found", f"run {run_id!r} does not exist") from None


def list_runs(ctx: AppContext, caller: Caller, export_id: str, limit: int) -> list[dict]:
    _require_role(ctx, caller)
    export = _find_export(ctx, export_id)
    if export is None:
        if not caller.is_admin or not _ID.match(export_id):
            raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist")
    elif not may_use(caller, _find_connection(ctx, export.connectionId)):
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist")
    rows = ctx.runs.list_runs(export_id, limit=limit)
    if not rows and export is None:
        raise HttpError(404, "export_not_found", f"export {export_id!r} does not exist and has no runs")
    connections: dict[str, Connection | None] = {}

    def find_connection(connection_id: str) -> Connection | None:
        if connection_id not in connections:
            connections[connection_id] = _find_connection(ctx, connection_id)
        return connections[connection_id]

    lookup = ({export_id: export}.get, find_connection)
    runs = []
    for row in rows:
        try:
            view = ctx.runs.view(row["runId"])
        except RunNotFound:
            continue  # an index row whose run was never written (a start that crashed)
        if _may_read_run(ctx, caller, view.run, lookup):
            runs.append(run_document(view))
    return runs


def cancel_run(ctx: AppContext, caller: Caller, run_id: str) -> dict:
    _run_for(ctx, caller, run_id)
    try:
        view = pipeline.cancel_run(ctx, run_id, caller.name, reason=f"cancelled by {caller.name}")
    except pipeline.RunFinished as finished:
        raise HttpError(409, "run_finished", str(finished), details={"runId": run_id, "status": finished.status}) from None
    except RunNotFound:
        raise HttpError(404, "run_not_found", f"run {run_id!r} does not exist") from None
    return run_document(view)


def _cancel_active_runs(ctx: AppContext, export_id: str, actor: str, reason: str) -> list[str]:
    cancelled = []
    for row in ctx.runs.list_runs(export_id, limit=10):
        if row.get("status") not in ACTIVE_STATUSES:
            continue
        try:
            pipeline.cancel_run(ctx, row["runId"], actor, reason=reason)
            cancelled.append(row["runId"])
        except (pipeline.RunFinished, RunNotFound):
            pass
    return cancelled

