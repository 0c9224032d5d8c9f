"""Where the API key may go, through the app: a hostname that resolves off the public internet is
refused when a connection is created (400 naming hostname), when an export is checked, and by a
chunk before it sends (the chunk fails naming the host).

The app is used as deployed here (no ACTIVECAMPAIGN_BASE_URL): names resolve from a table and a
tripwire stops any connect that is not loopback (tests/unit/name_resolution.py), so no packet leaves
the machine.
"""
from __future__ import annotations

import pytest

from exports.names import SEGMENTS_QUEUE
from tests.support.api_helpers import connection_body, create_connection, export_body, problems
from tests.support.apphost import ACCOUNT_HOST
from tests.support.profiles import make_segment
from tests.unit.name_resolution import resolving

PRIVATE_HOST = "private.example.com"


def as_deployed(app) -> None:
    """https://{hostname} for every connection, as on Azure; clients made before are dropped."""
    app.ctx.accounts.base_url_override = None
    app.ctx.accounts.close()


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1", "::1", "fd00::1"])
def test_a_connection_whose_hostname_resolves_off_the_public_internet_is_refused_naming_hostname(app, address):
    as_deployed(app)
    secrets_before = set(app.vault.secrets())
    with resolving({PRIVATE_HOST: [address]}) as network:
        response = app.request("POST", "/api/connections", connection_body(hostname=PRIVATE_HOST))

    found = problems(response)
    assert set(found) == {"hostname"}
    assert found["hostname"].startswith(f"{PRIVATE_HOST} resolves to ")
    assert "not a public internet address, so the API key is not sent there" in found["hostname"]
    assert "Settings > Developer" in found["hostname"] and address not in found["hostname"]
    assert network.lookups == [PRIVATE_HOST] and network.attempts == []
    assert list(app.ctx.config.list_connections()) == [] and set(app.vault.secrets()) == secrets_before
    assert app.simulator.stats()["requests"] == 0


def test_an_export_on_a_connection_whose_hostname_now_resolves_privately_is_refused_naming_the_connection(app):
    connection = create_connection(app)  # through the simulator (ACTIVECAMPAIGN_BASE_URL)
    as_deployed(app)
    with resolving({ACCOUNT_HOST: ["10.0.0.5"]}) as network:
        found = problems(app.request("POST", "/api/exports", export_body(connection["id"])))
    assert set(found) == {"connectionId"}
    assert f"{ACCOUNT_HOST} resolves to a private network address" in found["connectionId"]
    assert network.attempts == [] and list(app.ctx.config.list_exports()) == []


def test_a_chunk_fails_naming_the_host_and_sends_nothing_when_the_hostname_resolves_to_instance_metadata(app):
    files, _ = make_segment(rows=600, blobs=1, seed=18, bad=False)
    for name, data in files:
        app.upload("key-destination/" + name, data)
    export = app.export(prefix="key-destination/", mapping={"email": "email"})
    run_id = app.start(export.id).body["runId"]
    while app.host.step(queues=(SEGMENTS_QUEUE,)):
        pass  # split (and the account checked) through the simulator; every chunk is now queued
    bulk_before = app.simulator.stats()["bulk_requests"]

    as_deployed(app)  # the name answers differently now: the instance metadata service's address
    with resolving({ACCOUNT_HOST: ["169.254.169.254"]}) as network:
        status = app.drain(run_id, timeout=120)

    assert status["status"] == "failed" and status["sent"] == 0 and status["chunks"]["failed"] >= 1
    assert any(f"{ACCOUNT_HOST} resolves to a link-local address" in error and "not sent there" in error
               for error in status["errors"]), status["errors"]
    assert network.lookups and set(network.lookups) == {ACCOUNT_HOST} and network.attempts == []
    assert app.simulator.stats()["bulk_requests"] == bulk_before
