"""Storage clients built from the same settings the Functions host uses for AzureWebJobsStorage.

Locally that is a connection string (Azurite); on Azure it is identity-based
(AzureWebJobsStorage__blobServiceUri etc. with a managed identity), so no key exists anywhere.
"""
from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.lean_session import LeanSession
from shared.settings import StorageSettings


@dataclass(frozen=True)
class StorageClients:
    blobs: BlobServiceClient
    queues: QueueServiceClient
    tables: TableServiceClient

    def queue(self, name: str):
        # The host reads queue messages as base64 (host.json messageEncoding), so every producer encodes.
        return self.queues.get_queue_client(
            name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
        )


def _transport_options() -> dict:
    """Without a proxy in the environment, the SDK's transport is told not to look for one (by default
    requests reads every proxy variable of the environment again on each call, which was a fifth
    of the CPU time of a Table operation) and sends through a LeanSession. With a proxy configured,
    the SDK's own transport is used as it comes."""
    if urllib.request.getproxies():
        return {}
    return {"transport": RequestsTransport(session=LeanSession(), use_env_settings=False)}


def storage_clients(settings: StorageSettings, credential_factory=None) -> StorageClients:
    if settings.connection_string:
        conn = settings.connection_string
        return StorageClients(
            blobs=BlobServiceClient.from_connection_string(conn, **_transport_options()),
            queues=QueueServiceClient.from_connection_string(conn, **_transport_options()),
            tables=TableServiceClient.from_connection_string(conn, **_transport_options()),
        )
    missing = {"blob", "queue", "table"} - set(settings.service_uris)
    if missing:
        names = ", ".join(f"AzureWebJobsStorage__{kind}ServiceUri" for kind in sorted(missing))
        raise ValueError(f"identity-based storage needs {names} (or set AzureWebJobsStorage to a connection string)")
    credential = (credential_factory or _default_credential)(settings.client_id)
    uris = settings.service_uris
    return StorageClients(
        blobs=BlobServiceClient(uris["blob"], credential=credential, **_transport_options()),
        queues=QueueServiceClient(uris["queue"], credential=credential, **_transport_options()),
        tables=TableServiceClient(endpoint=uris["table"], credential=credential, **_transport_options()),
    )


def _default_credential(client_id: str | None):
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


def unreachable_reason(settings: StorageSettings, timeout_seconds: float = 5.0) -> str | None:
    """Why storage does not answer now, in one line (None when it answers): a single try, no retries.

    The SDK's default retries take about 90 s before they give up; a person starting a local run
    should hear at once that the emulator is not running.
    """
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    options = {"retry_total": 0, "connection_timeout": timeout_seconds, "read_timeout": timeout_seconds}
    if settings.connection_string:
        client = BlobServiceClient.from_connection_string(settings.connection_string, **options)
    else:
        client = BlobServiceClient(settings.service_uris["blob"], credential=_default_credential(settings.client_id),
                                   **options)
    try:
        next(iter(client.list_containers(results_per_page=1)), None)
    except ServiceRequestError as error:
        return f"storage at {client.primary_endpoint} does not answer ({type(error).__name__})"
    except HttpResponseError:
        return None  # it answered, if only to refuse: the caller's own error will say more
    finally:
        client.close()
    return None


_DELETE_BATCH = 256  # the most one blob batch request may hold


def delete_blobs(container_client, prefix: str) -> int:
    """Delete every blob under `prefix`, in batches; how many were deleted."""
    deleted, batch = 0, []
    for blob in container_client.list_blobs(name_starts_with=prefix):
        batch.append(blob.name)
        if len(batch) == _DELETE_BATCH:
            container_client.delete_blobs(*batch)
            deleted, batch = deleted + len(batch), []
    if batch:
        container_client.delete_blobs(*batch)
        deleted += len(batch)
    return deleted
