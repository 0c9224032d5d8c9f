"""The local parts that are real: the Key Vault fake (real SecretClient over TLS) and Azurite."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import stat
import uuid

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.keyvault.secrets import SecretClient

from tests.support.azurite import ACCOUNT_NAME, Azurite, AzuriteError, AzuriteNotFoundError, find_azurite
from tests.support.keyvault import CHALLENGE, FakeKeyVault, StaticTokenCredential, make_secret_client


# --------------------------------------------------------------------------- Key Vault fake
@pytest.fixture
def vault():
    with FakeKeyVault(page_size=2) as v:
        yield v


@pytest.fixture
def client(vault):
    c = make_secret_client(vault)
    yield c
    c.close()


def _unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_set_and_get_latest_and_by_version(vault, client):
    first = client.set_secret("ac-api-key", "value-one", content_type="text/plain", tags={"env": "test"})
    second = client.set_secret("ac-api-key", "value-two")

    assert first.value == "value-one"
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"env": "test"}
    assert first.properties.version != second.properties.version
    assert first.id == f"{vault.url}secrets/ac-api-key/{first.properties.version}"

    latest = client.get_secret("ac-api-key")
    assert latest.value == "value-two"
    assert latest.properties.version == second.properties.version
    assert latest.properties.enabled is True
    assert latest.properties.recovery_level == "Recoverable+Purgeable"
    assert client.get_secret("ac-api-key", first.properties.version).value == "value-one"

    assert vault.secrets() == {"ac-api-key": "value-two"}
    assert vault.get_count("ac-api-key") == 2
    assert vault.get_count("other") == 0


def test_seeded_secret_is_readable_and_counts_requests(vault, client):
    version = vault.set("seeded", "seed-value")
    before = vault.requests
    assert client.get_secret("seeded").properties.version == version
    assert vault.get_count("seeded") == 1
    assert vault.requests > before  # set() itself made no request, the get did


def test_first_request_gets_bearer_challenge_then_token_is_sent(vault):
    credential = StaticTokenCredential()
    c = make_secret_client(vault, credential)
    vault.set("x", "y")
    assert c.get_secret("x").value == "y"
    # The SDK probed without a token, got the challenge, then asked for the vault scope.
    assert vault.request_log[0][2] == 401
    assert credential.scopes_requested == [("https://vault.azure.net/.default",)]


def test_raw_http_challenge_and_error_shapes(vault):
    url = f"{vault.url}secrets/missing?api-version=7.5"
    anonymous = requests.get(url, verify=vault.ca_path, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == CHALLENGE
    assert CHALLENGE == ('Bearer authorization="https://login.microsoftonline.com/'
                         '00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"')

    ok = {"Authorization": "Bearer fake-kv-token"}
    missing = requests.get(url, headers=ok, verify=vault.ca_path, timeout=10)
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "SecretNotFound"
    assert error["message"].startswith("A secret with (name/id) missing was not found in this key vault")

    bad = requests.put(f"{vault.url}secrets/bad_name?api-version=7.5", json={"value": "v"}, headers=ok,
                       verify=vault.ca_path, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "BadParameter"

    too_long = requests.get(f"{vault.url}secrets/{'a' * 128}?api-version=7.5", headers=ok,
                            verify=vault.ca_path, timeout=10)
    assert too_long.status_code == 400

    no_version = requests.get(f"{vault.url}secrets/missing", headers=ok, verify=vault.ca_path, timeout=10)
    assert no_version.status_code == 400


def test_invalid_name_is_bad_parameter(client):
    with pytest.raises(HttpResponseError) as info:
        client.set_secret("not_valid!", "v")
    assert info.value.status_code == 400
    assert info.value.error.code == "BadParameter"


def test_get_missing_secret_raises_not_found(client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_secret("does-not-exist")
    assert info.value.status_code == 404
    assert info.value.error.code == "SecretNotFound"
    assert "(name/id) does-not-exist" in str(info.value)


def test_wrong_token_is_refused(vault):
    vault.set("guarded", "v")
    wrong = make_secret_client(vault, StaticTokenCredential("wrong"), retry_total=0)
    with pytest.raises(ClientAuthenticationError) as info:
        wrong.get_secret("guarded")
    assert info.value.status_code == 401
    with pytest.raises(HttpResponseError) as info:
        wrong.set_secret("guarded", "overwritten")
    assert info.value.status_code == 401
    assert vault.secrets() == {"guarded": "v"}
    assert vault.get_count("guarded") == 0  # refused before reaching the secret


def test_list_properties_of_secrets_pages_with_next_link(vault, client):
    names = sorted(f"page-{i}" for i in range(5))
    for name in names:
        client.set_secret(name, f"value-{name}")

    listed = [p.name for p in client.list_properties_of_secrets()]
    assert sorted(listed) == names
    assert len(listed) == len(set(listed))
    list_calls = [entry for entry in vault.request_log if entry[:2] == ("GET", "/secrets") and entry[2] == 200]
    assert len(list_calls) == 3  # 2 + 2 + 1 with page_size=2

    client.set_secret("page-0", "again")
    client.set_secret("page-0", "and again")
    versions = list(client.list_properties_of_secret_versions("page-0"))
    assert len(versions) == 3


def test_delete_poll_purge_and_soft_delete_conflict(client):
    client.set_secret("to-delete", "v1")
    poller = client.begin_delete_secret("to-delete")
    deleted = poller.result()
    poller.wait()
    assert poller.done()
    assert deleted.name == "to-delete"
    assert deleted.recovery_id.endswith("/deletedsecrets/to-delete")
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date > deleted.deleted_date

    with pytest.raises(ResourceNotFoundError):
        client.get_secret("to-delete")
    with pytest.raises(ResourceExistsError) as info:
        client.set_secret("to-delete", "v2")
    assert info.value.status_code == 409
    assert info.value.error.code == "Conflict"

    assert client.get_deleted_secret("to-delete").name == "to-delete"
    client.purge_deleted_secret("to-delete")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("to-delete")
    with pytest.raises(ResourceNotFoundError):
        client.purge_deleted_secret("to-delete")

    assert client.set_secret("to-delete", "v2").value == "v2"


def test_delete_poller_polls_until_deleted_secret_is_visible():
    with FakeKeyVault(delete_lag_polls=2) as vault:
        client = make_secret_client(vault)
        vault.set("slow", "v")
        poller = client.begin_delete_secret("slow", _polling_interval=0)
        poller.wait(timeout=30)
        assert poller.done()
        polls = [e for e in vault.request_log if e[:2] == ("GET", "/deletedsecrets/slow")]
        assert [status for *_, status in polls] == [404, 404, 200]
        assert vault.deleted() == ["slow"]
        client.purge_deleted_secret("slow")
        assert vault.deleted() == [] and vault.secrets() == {}


def test_fault_injection(vault):
    vault.set("k", "v")
    no_retry = make_secret_client(vault, retry_total=0)
    no_retry.get_secret("k")  # completes the challenge first
    vault.fail_next(1, 503)
    with pytest.raises(HttpResponseError) as info:
        no_retry.get_secret("k")
    assert info.value.status_code == 503
    assert no_retry.get_secret("k").value == "v"

    retrying = make_secret_client(vault, retry_backoff_factor=0)
    vault.fail_next(2, 429, retry_after=0)
    before = vault.get_count("k")
    assert retrying.get_secret("k").value == "v"
    assert vault.get_count("k") - before == 3


def test_tls_is_real(vault):
    vault.set("k", "v")
    untrusting = SecretClient(vault.url, StaticTokenCredential(), verify_challenge_resource=False, retry_total=0)
    with pytest.raises(ServiceRequestError) as info:
        untrusting.get_secret("k")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(vault.url, timeout=10)

    # The certificate is for 127.0.0.1 and localhost, signed by the test CA only.
    ctx = ssl.create_default_context(cafile=vault.ca_path)
    port = int(vault.url.rsplit(":", 1)[1].strip("/"))
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_secret_values_are_never_logged(vault, client, caplog, capfd):
    marker = f"very-secret-{uuid.uuid4().hex}"
    with caplog.at_level(logging.DEBUG):
        client.set_secret("logged", marker)
        client.get_secret("logged")
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("absent")
    out, err = capfd.readouterr()
    assert marker not in caplog.text and marker not in out and marker not in err
    assert all(marker not in repr(entry) for entry in vault.request_log)
    assert "fake-kv-token" not in repr(StaticTokenCredential())


def test_stop_closes_port_and_removes_ca():
    vault = FakeKeyVault()
    url = vault.start()
    ca_path = vault.ca_path
    port = int(url.rsplit(":", 1)[1].strip("/"))
    client = make_secret_client(vault)
    client.set_secret("a", "b")  # leaves a pooled keep-alive connection open
    vault.stop()
    assert not os.path.exists(ca_path)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# --------------------------------------------------------------------------- Azurite
@pytest.fixture(scope="module")
def azurite():
    with Azurite() as a:
        yield a


def test_azurite_uses_private_ports_and_connection_string(azurite):
    ports = {azurite.blob_port, azurite.queue_port, azurite.table_port}
    assert len(ports) == 3
    assert not ports & {10000, 10001, 10002}
    cs = azurite.connection_string
    assert f"AccountName={ACCOUNT_NAME}" in cs
    for port in ports:
        assert f"http://127.0.0.1:{port}/{ACCOUNT_NAME}" in cs
    assert os.path.isdir(azurite.location)


def test_azurite_blob_round_trip(azurite):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(_unique("c"))
    data = os.urandom(300_000)
    container.upload_blob("segments/seg.csv.gz", data)
    assert container.download_blob("segments/seg.csv.gz").readall() == data
    assert [b.name for b in container.list_blobs()] == ["segments/seg.csv.gz"]


def test_azurite_queue_round_trip(azurite):
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    name = _unique("q")
    service.create_queue(name)
    queue = service.get_queue_client(name, message_encode_policy=BinaryBase64EncodePolicy(),
                                     message_decode_policy=BinaryBase64DecodePolicy())
    queue.send_message(b'{"runId": "r1", "chunk": 3}')
    messages = list(queue.receive_messages(max_messages=5))
    assert [m.content for m in messages] == [b'{"runId": "r1", "chunk": 3}']
    queue.delete_message(messages[0])
    assert queue.get_queue_properties().approximate_message_count == 0


def test_azurite_table_round_trip(azurite):
    from azure.data.tables import TableServiceClient, UpdateMode

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table(_unique("t").replace("-", ""))
    table.upsert_entity({"PartitionKey": "run", "RowKey": "r1", "status": "queued", "chunks": 4})
    table.upsert_entity({"PartitionKey": "run", "RowKey": "r1", "status": "running"}, mode=UpdateMode.MERGE)
    entity = table.get_entity("run", "r1")
    assert entity["status"] == "running" and entity["chunks"] == 4


def test_azurite_stop_terminates_and_cleans_up():
    azurite = Azurite().start()
    process, workdir, port = azurite._process, azurite._workdir, azurite.blob_port
    location = azurite.location
    assert os.path.isdir(location)
    azurite.stop()
    assert process.poll() is not None
    assert not os.path.exists(workdir) and not os.path.exists(location)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(AzuriteError):
        _ = azurite.connection_string


def test_azurite_keeps_a_given_location(tmp_path):
    with Azurite(location=str(tmp_path / "data")) as azurite:
        assert azurite.location == str(tmp_path / "data")
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(azurite.connection_string).create_container("kept")
    assert (tmp_path / "data").is_dir() and any((tmp_path / "data").iterdir())


def test_missing_azurite_says_npm_ci(tmp_path, monkeypatch):
    with pytest.raises(AzuriteNotFoundError, match="npm ci"):
        Azurite(executable=str(tmp_path / "no-such-azurite"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteNotFoundError, match="npm ci"):
        find_azurite(repo_root=tmp_path)

    local = tmp_path / "node_modules" / ".bin" / "azurite"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n")
    local.chmod(local.stat().st_mode | stat.S_IXUSR)
    assert find_azurite(repo_root=tmp_path) == str(local)


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "azurite"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_azurite_early_exit_reports_its_stderr(tmp_path):
    fake = _script(tmp_path, 'echo "listen EADDRINUSE: boom" >&2\nexit 3\n')
    with pytest.raises(AzuriteError, match="(?s)exited with code 3.*EADDRINUSE: boom"):
        Azurite(executable=fake).start()


def test_azurite_start_timeout_kills_process(tmp_path, monkeypatch):
    import tests.support.azurite as azurite_module

    started = []
    real_popen = azurite_module.subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(azurite_module.subprocess, "Popen", recording_popen)
    fake = _script(tmp_path, 'echo "still starting" >&2\nexec sleep 60\n')
    azurite = Azurite(executable=fake, timeout=1)
    with pytest.raises(AzuriteError, match="(?s)within 1 s.*still starting"):
        azurite.start()
    assert len(started) == 1 and started[0].poll() is not None
    assert azurite._process is None and azurite._workdir is None
