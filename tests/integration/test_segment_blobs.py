"""Which blobs make up a segment, listed from a real container (Azurite)."""
from __future__ import annotations

import uuid

from azure.storage.blob import BlobServiceClient

from exports.segments.blobs import list_segment_blobs


def test_list_segment_blobs_returns_only_segment_files_under_the_prefix_sorted(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(f"seg-{uuid.uuid4().hex[:12]}")
    try:
        matching = ["seg/p2.csv", "seg/p1.csv.gz", "seg/sub/p0.jsonl", "seg/p3.jsonl.gz", "seg/a.csv"]
        others = ["seg/_SUCCESS", "seg/readme.txt", "seg/p.csv.tmp", "seg/p.gz", "seg/p.json", "seg/p.parquet",
                  "segx/p.csv", "other/seg/p.csv", "p.csv"]
        uploaded = {}
        for i, name in enumerate(matching + others):
            data = b"email\n" + b"x@example.com\n" * (i + 1)
            blob = container.get_blob_client(name)
            blob.upload_blob(data)
            # The listing gives the ETag bare, the blob's headers give it quoted: the same ETag either way.
            uploaded[name] = (blob.get_blob_properties().etag.strip('"'), len(data))

        blobs = list_segment_blobs(container, "seg/")

        assert [b.name for b in blobs] == sorted(matching)
        assert [(b.etag.strip('"'), b.size) for b in blobs] == [uploaded[name] for name in sorted(matching)]
        everything = [b.name for b in list_segment_blobs(container, "")]
        assert everything == sorted(matching + ["segx/p.csv", "other/seg/p.csv", "p.csv"])
    finally:
        container.delete_container()


