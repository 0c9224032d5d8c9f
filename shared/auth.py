"""Who is calling: App Service Authentication's X-MS-CLIENT-PRINCIPAL header, or the function key alone.

When App Service Authentication (Easy Auth) signs a user in, the platform passes the validated
identity to the app as X-MS-CLIENT-PRINCIPAL: base64 of
    {"auth_typ": "aad", "name_typ": "...", "role_typ": "...", "claims": [{"typ": "...", "val": "..."}]}
and strips any such header a client sent. Roles are the claims whose type is role_typ, "roles"
or the long WS-Federation role type.

Without user sign-in nothing strips a client's header, so it proves nothing: with
require_sign_in False the header is ignored and the caller, who passed the host's function-key
check (auth level FUNCTION), is the admin "function-key".
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

PRINCIPAL_HEADER = "x-ms-client-principal"
ROLE_CLAIM_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
# Claims that name a person or an application, in order of preference after name_typ.
NAME_CLAIM_TYPES = (
    "preferred_username",
    "name",
    "email",
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "oid",
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "appid",
    "azp",
    "sub",
)
FUNCTION_KEY_CALLER = "function-key"
MAX_HEADER_CHARS = 64 * 1024
_HEADER_HELP = ("App Service Authentication sets X-MS-CLIENT-PRINCIPAL to base64-encoded JSON "
                "{\"auth_typ\", \"name_typ\", \"role_typ\", \"claims\": [{\"typ\", \"val\"}]}")


class AuthError(Exception):
    """The caller is not identified (401); the message says why."""


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    auth_type: str  # "aad", ... or "function-key"

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Caller:
    """The principal and what it may do under the configured role names."""

    principal: Principal
    is_admin: bool
    is_contributor: bool

    @property
    def name(self) -> str:
        return self.principal.name


def parse_client_principal(value: str) -> Principal:
    """The principal in an X-MS-CLIENT-PRINCIPAL header value; AuthError when it is not one."""
    if len(value) > MAX_HEADER_CHARS:
        raise AuthError(f"X-MS-CLIENT-PRINCIPAL is longer than {MAX_HEADER_CHARS} characters. {_HEADER_HELP}")
    text = value.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError(f"X-MS-CLIENT-PRINCIPAL is not base64. {_HEADER_HELP}") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError(f"X-MS-CLIENT-PRINCIPAL does not decode to JSON. {_HEADER_HELP}") from None
    if not isinstance(document, dict):
        raise AuthError(f"X-MS-CLIENT-PRINCIPAL must hold a JSON object. {_HEADER_HELP}")
    claims = document.get("claims")
    if not isinstance(claims, list) or not all(
            isinstance(c, dict) and isinstance(c.get("typ"), str) and isinstance(c.get("val"), str) for c in claims):
        raise AuthError(f"X-MS-CLIENT-PRINCIPAL needs \"claims\": a list of {{\"typ\", \"val\"}} strings. {_HEADER_HELP}")
    for key in ("auth_typ", "name_typ", "role_typ"):
        if document.get(key) is not None and not isinstance(document[key], str):
            raise AuthError(f"X-MS-CLIENT-PRINCIPAL: \"{key}\" must be a string. {_HEADER_HELP}")
    role_types = {t for t in (document.get("role_typ"), *ROLE_CLAIM_TYPES) if t}
    roles = frozenset(c["val"] for c in claims if c["typ"] in role_types)
    name = _name(claims, document.get("name_typ"))
    if not name:
        raise AuthError("X-MS-CLIENT-PRINCIPAL has no claim that names the caller "
                        f"(name_typ, {', '.join(NAME_CLAIM_TYPES[:3])}, oid, appid or sub)")
    return Principal(name=name, roles=roles, auth_type=document.get("auth_typ") or "unknown")


def _name(claims: list[dict], name_type: str | None) -> str | None:
    by_type: dict[str, str] = {}
    for claim in claims:
        if claim["val"].strip():
            by_type.setdefault(claim["typ"], claim["val"].strip())
    for claim_type in (name_type, *NAME_CLAIM_TYPES):
        if claim_type and claim_type in by_type:
            return by_type[claim_type][:256]
    return None


def identify(headers, *, require_sign_in: bool, admin_role: str, contributor_role: str) -> Caller:
    """The caller of a request that already passed the host's function-key check; AuthError for 401."""
    if not require_sign_in:
        principal = Principal(FUNCTION_KEY_CALLER, frozenset({admin_role}), "function-key")
    else:
        value = headers.get(PRINCIPAL_HEADER)
        if value is None or not value.strip():
            raise AuthError("sign-in required: the request has no X-MS-CLIENT-PRINCIPAL header. Call the API through "
                            "App Service Authentication with a signed-in user or application")
        principal = parse_client_principal(value)
    return Caller(principal, is_admin=principal.has(admin_role), is_contributor=principal.has(contributor_role))
