"""Storage clients built from the same settings the Functions host uses for AzureWebJobsStorage.

Locally that is a connection string (Azurite); on Azure it is identity-based
(AzureWebJobsStorage__blobServiceUri etc. with a managed identity), so no key exists anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

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


def storage_clients(settings: StorageSettings, credential_factory=None) -> StorageClients:
    if settings.connection_string:
        conn = settings.connection_string
        return StorageClients(
            blobs=BlobServiceClient.from_connection_string(conn),
            queues=QueueServiceClient.from_connection_string(conn),
            tables=TableServiceClient.from_connection_string(conn),
        )
    missing = {"blob", "queue", "table"} - set(settings.service_uris)
    if missing:
        names = ", ".join(f"AzureWebJobsStorage__{kind}ServiceUri" for kind in sorted(missing))
        raise ValueError(f"identity-based storage needs {names} (or set AzureWebJobsStorage to a connection string)")
    credential = (credential_factory or _default_credential)(settings.client_id)
    uris = settings.service_uris
    return StorageClients(
        blobs=BlobServiceClient(uris["blob"], credential=credential),
        queues=QueueServiceClient(uris["queue"], credential=credential),
        tables=TableServiceClient(endpoint=uris["table"], credential=credential),
    )


def _default_credential(client_id: str | None):
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()
