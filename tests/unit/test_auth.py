"""The caller's identity from X-MS-CLIENT-PRINCIPAL, the role settings and the sign-in switch."""
from __future__ import annotations

import base64
import json

import pytest

from exports.settings import Settings
from shared.auth import FUNCTION_KEY_CALLER, AuthError, identify, parse_client_principal
from shared.settings import SettingError
from tests.support.principals import encode_client_principal

ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def b64(document) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def easy_auth(claims, name_typ="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", role_typ=ROLE_URI):
    """The shape App Service Authentication writes for an Entra ID sign-in."""
    return b64({"auth_typ": "aad", "name_typ": name_typ, "role_typ": role_typ,
                "claims": [{"typ": typ, "val": val} for typ, val in claims]})


def who(value, **kwargs):
    settings = dict(require_sign_in=True, admin_role="Export.Admin", contributor_role="Export.Contributor") | kwargs
    return identify({"x-ms-client-principal": value} if value is not None else {}, **settings)


# --- roles ------------------------------------------------------------------------------------------
def test_roles_come_from_claims_of_role_typ_roles_or_the_long_role_type():
    principal = parse_client_principal(easy_auth([
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "ada@example.com"),
        (ROLE_URI, "A"), ("roles", "B"), ("groups", "C"), ("scp", "D"),
    ]))
    assert principal.name == "ada@example.com"
    assert principal.roles == {"A", "B"}  # groups and scopes are not roles
    assert principal.auth_type == "aad"
    custom = parse_client_principal(easy_auth([("name", "x"), ("myroles", "E"), ("roles", "F")], role_typ="myroles"))
    assert custom.roles == {"E", "F"}


def test_admin_and_contributor_follow_the_configured_role_names():
    admin = who(easy_auth([("name", "a"), ("roles", "Export.Admin")]))
    assert (admin.is_admin, admin.is_contributor) == (True, False)
    contributor = who(easy_auth([("name", "c"), ("roles", "Export.Contributor")]))
    assert (contributor.is_admin, contributor.is_contributor) == (False, True)
    nobody = who(easy_auth([("name", "n"), ("roles", "Reader")]))
    assert (nobody.is_admin, nobody.is_contributor) == (False, False)
    renamed = who(easy_auth([("name", "r"), ("roles", "CDP.Owner")]), admin_role="CDP.Owner")
    assert renamed.is_admin
    assert not who(easy_auth([("name", "r"), ("roles", "export.admin")])).is_admin, "role names match exactly"


@pytest.mark.parametrize("claims,expected", [
    ([("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "by-name-typ"), ("preferred_username", "p")], "by-name-typ"),
    ([("preferred_username", "pref@example.com"), ("oid", "0000")], "pref@example.com"),
    ([("http://schemas.microsoft.com/identity/claims/objectidentifier", "11111111-2222")], "11111111-2222"),
    ([("appid", "daemon-app-id"), ("sub", "s")], "daemon-app-id"),
])
def test_the_caller_is_named_by_name_typ_then_the_usual_claims(claims, expected):
    assert parse_client_principal(easy_auth(claims)).name == expected


def test_encode_client_principal_round_trips():
    principal = parse_client_principal(encode_client_principal("dev@example.com", ["Export.Admin", "Other"]))
    assert principal.name == "dev@example.com" and principal.roles == {"Export.Admin", "Other"}


# --- malformed headers: 401 with a message that says what is wrong ---------------------------------
@pytest.mark.parametrize("value,says", [
    ("not base64 at all!", "not base64"),
    (base64.b64encode(b"\xff\xfe binary").decode(), "does not decode to JSON"),
    (base64.b64encode(b"{not json").decode(), "does not decode to JSON"),
    (b64(["a", "list"]), "JSON object"),
    (b64({"auth_typ": "aad"}), "\"claims\""),
    (b64({"claims": "roles=admin"}), "\"claims\""),
    (b64({"claims": [{"typ": "roles"}]}), "\"claims\""),
    (b64({"claims": [{"typ": "roles", "val": 1}]}), "\"claims\""),
    (b64({"role_typ": 7, "claims": []}), "role_typ"),
    (b64({"claims": [{"typ": "roles", "val": "Export.Admin"}]}), "no claim that names the caller"),
    ("A" * 70_000, "longer than"),
])
def test_a_malformed_principal_is_refused_with_the_reason(value, says):
    with pytest.raises(AuthError) as raised:
        who(value)
    assert says in str(raised.value)
    assert "X-MS-CLIENT-PRINCIPAL" in str(raised.value)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_without_the_header_sign_in_is_required(value):
    with pytest.raises(AuthError, match="sign-in required"):
        who(value)


def test_without_user_sign_in_the_function_key_caller_is_admin_and_the_header_is_ignored():
    assert who(None, require_sign_in=False).name == FUNCTION_KEY_CALLER
    assert who(None, require_sign_in=False).is_admin
    # Nothing strips a client's header when the platform does no sign-in: it proves nothing.
    forged = who(encode_client_principal("someone-else@example.com", []), require_sign_in=False)
    assert forged.name == FUNCTION_KEY_CALLER and forged.is_admin
    assert who("garbage", require_sign_in=False).is_admin


# --- settings ---------------------------------------------------------------------------------------
def test_role_and_sign_in_settings_have_the_documented_defaults():
    settings = Settings.from_env({})
    assert (settings.admin_role, settings.contributor_role, settings.require_sign_in) == (
        "Export.Admin", "Export.Contributor", True)
    custom = Settings.from_env({"EXPORT_ADMIN_ROLE": "A", "EXPORT_CONTRIBUTOR_ROLE": "C", "EXPORT_REQUIRE_SIGN_IN": "False"})
    assert (custom.admin_role, custom.contributor_role, custom.require_sign_in) == ("A", "C", False)


def test_an_unclear_sign_in_setting_is_refused():
    with pytest.raises(SettingError, match="EXPORT_REQUIRE_SIGN_IN must be true or false"):
        Settings.from_env({"EXPORT_REQUIRE_SIGN_IN": "maybe"})
