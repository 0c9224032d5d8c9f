"""API keys: read from Key Vault through the real SecretClient, cached, and never shown anywhere."""
from __future__ import annotations

import base64

from exports.names import QUEUES, RUNS_CONTAINER, TABLES
from shared.secrets import CachedSecrets, KeyVaultSecrets, LocalSecrets, SecretNotFound
from tests.support.apphost import API_KEY
from tests.support.keyvault import make_secret_client
from tests.support.profiles import make_segment


def test_the_cache_reads_key_vault_once_per_ttl(vault):
    vault.set("cache-test", "cached-value-123")
    now = [0.0]
    secrets = CachedSecrets(KeyVaultSecrets(make_secret_client(vault)), ttl_seconds=60, clock=lambda: now[0])

    assert [secrets.get("cache-test") for _ in range(5)] == ["cached-value-123"] * 5
    assert vault.get_count("cache-test") == 1
    now[0] = 61
    vault.set("cache-test", "rotated-value-456")
    assert secrets.get("cache-test") == "rotated-value-456"
    assert vault.get_count("cache-test") == 2


def test_forget_makes_the_next_read_go_to_key_vault(vault):
    vault.set("forget-test", "value-one-111")
    secrets = CachedSecrets(KeyVaultSecrets(make_secret_client(vault)), ttl_seconds=600)
    secrets.get("forget-test")
    vault.set("forget-test", "value-two-222")
    secrets.forget("forget-test")
    assert secrets.get("forget-test") == "value-two-222"


def test_a_missing_secret_is_named_without_any_value(vault):
    secrets = CachedSecrets(KeyVaultSecrets(make_secret_client(vault)), ttl_seconds=60)
    try:
        secrets.get("never-created")
    except SecretNotFound as error:
        assert "never-created" in str(error)
    else:
        raise AssertionError("a missing secret must raise SecretNotFound")


def test_set_and_delete_go_to_key_vault(vault):
    backend = KeyVaultSecrets(make_secret_client(vault))
    backend.set("roundtrip-test", "roundtrip-value-789")
    assert vault.secrets()["roundtrip-test"] == "roundtrip-value-789"
    backend.delete("roundtrip-test")
    backend.delete("roundtrip-test")  # idempotent
    assert "roundtrip-test" not in vault.secrets()


def test_local_secrets_use_the_environment_key_or_say_what_is_missing():
    assert LocalSecrets("local-key-abcdef").get("anything") == "local-key-abcdef"
    try:
        LocalSecrets(None).get("activecampaign-x")
    except SecretNotFound as error:
        assert "ACTIVECAMPAIGN_API_KEY" in str(error)
    else:
        raise AssertionError("expected SecretNotFound")


def test_the_api_key_appears_in_no_response_log_entity_message_or_run_file(app, log_lines, vault):
    files, _ = make_segment(rows=2000, blobs=2, seed=9)
    for name, data in files:
        app.upload("leak/" + name, data)
    good = app.export(prefix="leak/", mapping={"email": "email"})
    app.simulator.reject_emails = {"person5@example.com"}
    app.simulator.configure(requests_per_second=3)  # throttled answers and retries get logged too
    app.drain(app.start(good.id).body["runId"])
    # A run whose key ActiveCampaign rejects: error paths format messages from the failure.
    bad = app.export(prefix="leak/", mapping={"email": "email"})
    connection = app.ctx.config.get_connection(bad.connectionId)
    app.secret_backend.set(connection.apiKeySecretName, API_KEY + "-revoked")
    app.ctx.secrets.forget(connection.apiKeySecretName)
    app.drain(app.start(bad.id).body["runId"])
    app.request("GET", f"/api/exports/{good.id}/runs")

    assert log_lines, "the log capture must be working"
    haystacks = {"log": "\n".join(log_lines), "responses": repr([r.body for r in app.responses] + [r.headers for r in app.responses])}
    for table in TABLES:
        haystacks[f"table {table}"] = repr(list(app.ctx.storage.tables.get_table_client(table).list_entities()))
    for queue in QUEUES:
        messages = app.ctx.storage.queues.get_queue_client(queue).peek_messages(max_messages=32)
        haystacks[f"queue {queue}"] = repr([base64.b64decode(m.content) for m in messages])
    container = app.ctx.storage.blobs.get_container_client(RUNS_CONTAINER)
    haystacks["run files"] = repr([container.download_blob(b.name).readall() for b in container.list_blobs()])
    for where, text in haystacks.items():
        assert API_KEY not in text, f"the API key leaked into the {where}"
    assert API_KEY in vault.secrets().values() or any(API_KEY in v for v in vault.secrets().values())
