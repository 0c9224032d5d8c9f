"""Live checks with ActiveCampaign before anything is saved: the API key, the list.

Both the API and the CLI go through these, so a person gets the same message either way.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from exports.activecampaign.fields import read_account_fields
from exports.errors import (
    ActiveCampaignError,
    ActiveCampaignFailed,
    ActiveCampaignThrottled,
    ActiveCampaignUnreachable,
    AddressNotPublic,
    ConnectionUnusable,
    Invalid,
    KeyRejected,
    KeyVaultUnavailable,
    MissingInAccount,
    Transient,
    Unavailable,
)
from exports.model import Connection, FieldSpec
from shared.secrets import SecretNotFound

if TYPE_CHECKING:
    from exports.context import AppContext

log = logging.getLogger(__name__)
_HOSTNAME_HINT = "enter the REST endpoint hostname from Settings > Developer, e.g. myaccount.api-us1.com"


def check_api_key(ctx: AppContext, hostname: str, api_key: str) -> None:
    """GET /api/3/users/me with the key; Invalid when ActiveCampaign refuses it, Unavailable when it cannot tell."""
    client = ctx.accounts.client_with_key(hostname, api_key)
    try:
        ctx.accounts.budget(hostname).before_request()
        user = client.users_me()
        if not isinstance(user, dict):
            raise KeyError("user")
    except KeyRejected:
        raise Invalid([{"field": "apiKey", "message": "ActiveCampaign rejected this API key (403): copy the key again "
                                                      f"from Settings > Developer of the account at {hostname}"}]) from None
    except MissingInAccount:
        raise Invalid([{"field": "hostname", "message": f"{hostname} has no ActiveCampaign API (GET /api/3/users/me "
                                                        f"answered 404): {_HOSTNAME_HINT}"}]) from None
    except AddressNotPublic as error:
        raise Invalid([{"field": "hostname", "message": f"{error}: {_HOSTNAME_HINT}"}]) from None
    except (KeyError, TypeError):
        raise Invalid([{"field": "hostname", "message": f"{hostname} does not answer like ActiveCampaign's API: "
                                                        f"{_HOSTNAME_HINT}"}]) from None
    except Exception as error:  # noqa: BLE001 - Transient, Fatal and anything requests lets through
        raise activecampaign_unavailable(error, hostname) from None
    finally:
        client.close()


def _client(ctx: AppContext, connection: Connection):
    try:
        return ctx.accounts.client(connection.hostname, connection.apiKeySecretName)
    except SecretNotFound:
        raise ConnectionUnusable(f"the API key of connection {connection.displayName!r} is missing from Key Vault: an "
                                 "admin must delete the connection and create it again") from None
    except AzureError as error:
        log.error("Key Vault could not be read for connection %s (%s)", connection.id, type(error).__name__)
        raise KeyVaultUnavailable("the connection's API key could not be read from Key Vault: try again in a moment") from None


def account_fields(ctx: AppContext, connection: Connection) -> list[FieldSpec]:
    """Every custom field of the connection's account (GET /api/3/fields, every page)."""
    client = _client(ctx, connection)
    try:
        return read_account_fields(client, ctx.accounts.budget(connection.hostname))
    except KeyRejected:
        ctx.accounts.key_rejected(connection.apiKeySecretName)
        raise Invalid([{"field": "connectionId", "message": f"ActiveCampaign refused the API key of connection "
                                                            f"{connection.displayName!r} (403) for its custom fields: "
                                                            "an admin must replace the connection"}]) from None
    except Exception as error:  # noqa: BLE001
        raise activecampaign_unavailable(error, connection.hostname) from None


def check_list(ctx: AppContext, connection: Connection, list_id: str) -> None:
    """GET /api/3/lists/{id} with the connection's key: Invalid naming listId when the account has no such list."""
    client = _client(ctx, connection)
    try:
        ctx.accounts.budget(connection.hostname).before_request()
        client.get_list(list_id)
    except MissingInAccount:
        raise Invalid([{"field": "listId", "message": f"list {list_id} does not exist in this ActiveCampaign account: use "
                                                      "the id of one of its lists (Lists, then the number in the list's "
                                                      "address)"}]) from None
    except AddressNotPublic as error:
        raise Invalid([{"field": "connectionId", "message": f"connection {connection.displayName!r} cannot be used: "
                                                            f"{error}; an admin must replace the connection"}]) from None
    except KeyRejected:
        ctx.accounts.key_rejected(connection.apiKeySecretName)
        raise Invalid([{"field": "connectionId", "message": f"ActiveCampaign refused the API key of connection "
                                                            f"{connection.displayName!r} (403) for list {list_id}: the key "
                                                            "was revoked or its user may not read lists; an admin must "
                                                            "replace the connection"}]) from None
    except Exception as error:  # noqa: BLE001
        raise activecampaign_unavailable(error, connection.hostname) from None


def activecampaign_unavailable(error: Exception, hostname: str) -> Unavailable:
    if isinstance(error, Transient) and error.throttled:
        retry = max(1, round(error.retry_after or 1))
        return ActiveCampaignThrottled(f"ActiveCampaign at {hostname} is throttling this account's requests; nothing "
                                       f"was saved: try again in {retry} s", retry_after=retry)
    if isinstance(error, Transient):
        return ActiveCampaignUnreachable(f"ActiveCampaign could not be reached at {hostname} ({error}); nothing was "
                                         "saved: check the hostname, or try again later")
    if isinstance(error, ActiveCampaignError):
        return ActiveCampaignFailed(f"ActiveCampaign at {hostname} answered with an error: {error}; nothing was saved")
    log.warning("unexpected error calling ActiveCampaign at %s: %s", hostname, type(error).__name__)
    return ActiveCampaignUnreachable(f"ActiveCampaign could not be reached at {hostname} ({type(error).__name__}); "
                                     "nothing was saved: try again later")
