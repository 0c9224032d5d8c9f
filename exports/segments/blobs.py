"""Which blobs make up a segment: every blob under the export's container and prefix that ends
in one of SEGMENT_SUFFIXES (data platforms write a segment as partitioned files)."""
from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

SEGMENT_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz")
HEADER_PROBE_BYTES = 1024 * 1024  # any header row, or enough JSON lines to judge their keys by; never the whole blob


@dataclass(frozen=True)
class SegmentBlob:
    name: str
    etag: str
    size: int


def is_segment_blob(name: str) -> bool:
    return name.lower().endswith(SEGMENT_SUFFIXES)


def list_segment_blobs(container_client, prefix: str) -> list[SegmentBlob]:
    return sorted(
        (SegmentBlob(blob.name, blob.etag, blob.size)
         for blob in container_client.list_blobs(name_starts_with=prefix or None) if is_segment_blob(blob.name)),
        key=lambda blob: blob.name,
    )


def first_blob_probe(blob_service, container: str, prefix: str) -> tuple[str, bytes] | None:
    """The name and first bytes of the segment's first blob, or None while the segment has no blob."""
    container_client = blob_service.get_container_client(container)
    try:
        first = next((blob for blob in container_client.list_blobs(name_starts_with=prefix or None)
                      if is_segment_blob(blob.name)), None)  # listed in name order
    except ResourceNotFoundError:
        return None  # no container yet: nothing to check until the platform writes the segment
    if first is None:
        return None
    length = min(first.size or 0, HEADER_PROBE_BYTES)
    if not length:
        return first.name, b""
    return first.name, container_client.get_blob_client(first.name).download_blob(offset=0, length=length).readall()
