"""Connections: an ActiveCampaign account (REST endpoint hostname and API key) and who may use it.

The API key is checked with ActiveCampaign, then stored in Key Vault; the connection record holds
only the secret's name.
"""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from exports import access
from exports.errors import ConnectionInUse, Invalid, KeyVaultUnavailable
from exports.model import Connection, new_id
from exports.services import checks
from exports.services.runs import cancel_active_runs
from shared.auth import Caller
from shared.documents import check_document

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
# Both are used with fullmatch: "$" alone would also match before a final newline.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_API_KEY = re.compile(r"[\x21-\x7e]{1,500}")  # printable ASCII without spaces: it travels in a header

FIELDS = {
    "displayName": (("string",), True),
    "hostname": (("string",), True),
    "apiKey": (("string",), True),
    "allowContributors": (("boolean",), False),
    "privacyConsent": (("boolean",), True),
}


def secret_name_for(connection_id: str) -> str:
    # Key Vault names allow letters, digits and dashes; the id is hex, so the name is always valid.
    return f"activecampaign-{connection_id}"


def hostname_problem(hostname: object) -> str | None:
    """Why `hostname` is not a bare DNS name (None when it is fine)."""
    if not isinstance(hostname, str) or not hostname.strip():
        return "is required: the REST endpoint hostname from ActiveCampaign's Settings > Developer, e.g. myaccount.api-us1.com"
    value = hostname.strip()
    hint = "enter the hostname only, without https://, path or port, e.g. myaccount.api-us1.com"
    if "://" in value or "/" in value or ":" in value or "@" in value or "?" in value:
        return f"{value!r} is not a bare hostname: {hint}"
    try:
        ipaddress.ip_address(value.strip("[]"))
        return f"{value!r} is an IP address: {hint}"
    except ValueError:
        pass
    if not value.isascii():
        # Before lower(): it maps some non-ASCII letters to ASCII ones (the Kelvin sign to "k").
        return f"{value!r} is not a valid DNS name: {hint}"
    name = value.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{value!r} is not a public host: {hint}"
    labels = name.split(".")
    if labels[-1].isascii() and (labels[-1].isdigit() or labels[-1].startswith("0x")):
        # No top-level domain is numeric: "127.1" or "0x7f.0.0.1" are IP addresses in short forms.
        return f"{value!r} is an IP address: {hint}"
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return f"{value!r} is not a valid DNS name: {hint}"
    return None


def connection_problems(display_name: object, hostname: object, privacy_consent: object) -> list[dict[str, str]]:
    problems = []
    if not isinstance(display_name, str) or not display_name.strip():
        problems.append({"field": "displayName", "message": "is required: a name people will recognise"})
    elif len(display_name) > 200:
        problems.append({"field": "displayName", "message": "must be at most 200 characters"})
    problem = hostname_problem(hostname)
    if problem:
        problems.append({"field": "hostname", "message": problem})
    if privacy_consent is not True:
        problems.append({
            "field": "privacyConsent",
            "message": "must be true: exporting sends personal data (emails, names, phone numbers) to ActiveCampaign, "
                       "outside this platform's compliance boundary; an admin must record consent to that",
        })
    return problems


def api_key_problem(api_key: str) -> str | None:
    if not api_key:
        return "is required: the API key from ActiveCampaign's Settings > Developer"
    if not _API_KEY.fullmatch(api_key):
        return "is not an ActiveCampaign API key: copy it from Settings > Developer; it has no spaces and at most 500 characters"
    return None


# --- use cases ------------------------------------------------------------------------------------
def list_connections(ctx: AppContext, caller: Caller) -> list[dict]:
    access.require_role(ctx, caller)
    visible = [c for c in ctx.config.list_connections() if access.may_use(caller, c)]
    return [c.to_document() for c in sorted(visible, key=lambda c: (c.displayName.lower(), c.id))]


def get_connection(ctx: AppContext, caller: Caller, connection_id: str) -> dict:
    return access.connection_for(ctx, caller, connection_id).to_document()


def create_connection(ctx: AppContext, caller: Caller, read_body) -> dict:
    """Check the key with ActiveCampaign, store it in Key Vault, then record the connection.

    `read_body` returns the request document; it is called only once the caller may create connections.
    """
    access.require_admin(ctx, caller, "create connections")
    body = read_body()
    problems = check_document(body, FIELDS)
    if problems and not isinstance(body, dict):
        raise Invalid(problems)
    # Consent that is missing, false or not a boolean gets the one message that says why it is needed.
    problems = [p for p in problems if p["field"] != "privacyConsent"]
    taken = {p["field"] for p in problems}
    problems += [p for p in connection_problems(body.get("displayName"), body.get("hostname"), body.get("privacyConsent"))
                 if p["field"] not in taken]
    api_key = body.get("apiKey")
    if "apiKey" not in taken:
        api_key = api_key.strip()
        problem = api_key_problem(api_key)
        if problem:
            problems.append({"field": "apiKey", "message": problem})
    if problems:
        raise Invalid(problems)
    hostname = body["hostname"].strip().lower().rstrip(".")
    checks.check_api_key(ctx, hostname, api_key)

    connection_id = new_id()
    now = ctx.clock()
    connection = Connection(
        id=connection_id, displayName=body["displayName"].strip(), hostname=hostname,
        apiKeySecretName=secret_name_for(connection_id), allowContributors=body.get("allowContributors", False),
        privacyConsentBy=caller.name, privacyConsentAt=now, createdBy=caller.name, createdAt=now,
        updatedBy=caller.name, updatedAt=now, exportUser=caller.name)
    try:
        ctx.secrets.set(connection.apiKeySecretName, api_key)
    except AzureError as error:
        log.error("connection not created: the API key could not be stored in Key Vault (%s)", type(error).__name__)
        raise KeyVaultUnavailable("the API key could not be stored in Key Vault; nothing was saved: try again in a "
                                  "moment") from None
    try:
        ctx.config.add_connection(connection)
    except BaseException:
        _delete_secret_quietly(ctx, connection.apiKeySecretName)
        raise
    log.info("connection created: id=%s hostname=%s allowContributors=%s by=%s", connection.id, connection.hostname,
             connection.allowContributors, caller.name)
    return connection.to_document()


def delete_connection(ctx: AppContext, caller: Caller, connection_id: str, force: bool) -> dict:
    """Delete the connection and its key; with `force`, its exports are disabled and their runs cancelled first."""
    connection = access.connection_for(ctx, caller, connection_id)
    access.require_admin(ctx, caller, "delete connections")
    users = sorted((e for e in ctx.config.list_exports() if e.connectionId == connection.id),
                   key=lambda e: (e.displayName.lower(), e.id))
    if users and not force:
        names = ", ".join(f"{e.displayName!r} ({e.id})" for e in users)
        raise ConnectionInUse(
            f"connection {connection.displayName!r} is used by {len(users)} export(s): {names}. Delete those exports or "
            "move them to another connection first, or repeat with ?force=true to disable them and delete the "
            "connection anyway", details={"exports": [{"id": e.id, "displayName": e.displayName} for e in users]})
    disabled, cancelled = [], []
    for export in users:
        if export.enabled:
            ctx.config.replace_export(replace(export, enabled=False, updatedBy=caller.name, updatedAt=ctx.clock()))
            disabled.append(export.id)
        cancelled += cancel_active_runs(ctx, export.id, caller.name, "the connection was deleted")
    try:
        ctx.secrets.delete(connection.apiKeySecretName)
    except AzureError as error:
        log.error("connection %s not deleted: Key Vault secret %s could not be deleted (%s)", connection.id,
                  connection.apiKeySecretName, type(error).__name__)
        raise KeyVaultUnavailable(
            "the connection's API key could not be deleted from Key Vault, so the connection was kept"
            + (f" (its exports {', '.join(disabled)} are now disabled)" if disabled else "")
            + ": try again in a moment") from None
    ctx.config.delete_connection(connection.id)
    log.info("connection deleted: id=%s by=%s disabledExports=%s cancelledRuns=%s", connection.id, caller.name,
             ",".join(disabled) or "-", ",".join(cancelled) or "-")
    return {"connectionId": connection.id, "deleted": True, "disabledExports": disabled, "cancelledRuns": cancelled}


def _delete_secret_quietly(ctx: AppContext, secret_name: str) -> None:
    try:
        ctx.secrets.delete(secret_name)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        log.exception("could not delete Key Vault secret %s after a failed change", secret_name)
