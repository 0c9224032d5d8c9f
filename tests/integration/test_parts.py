"""The run's working files on Azurite: a segment blob's part (every bucket's lines in one blob, read back by
bucket with ranged reads) and the block writer of the other files."""
from __future__ import annotations

import random
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from exports.run.files import BlockWriter, BucketedPartWriter, PartIndex


class CountingBlob:
    """The real blob client, with its staged blocks and commits counted."""

    def __init__(self, blob):
        self._blob, self.staged, self.commits, self.uploads = blob, 0, 0, 0

    def upload_blob(self, data, **kwargs):
        self.uploads += 1
        return self._blob.upload_blob(data, **kwargs)

    def stage_block(self, **kwargs):
        self.staged += 1
        return self._blob.stage_block(**kwargs)

    def commit_block_list(self, blocks):
        self.commits += 1
        return self._blob.commit_block_list(blocks)


@pytest.fixture
def container(azurite):
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    created = service.create_container(f"parts-{uuid.uuid4().hex[:12]}")
    yield created
    created.delete_container()


def read_bucket(blob, index: PartIndex, bucket: int) -> bytes:
    return b"".join(blob.download_blob(offset=offset, length=length).readall() for offset, length in index.ranges(bucket))


def test_each_bucket_reads_back_exactly_its_lines_in_order_across_blocks(container):
    buckets, rng = 7, random.Random(5)
    written = {bucket: [] for bucket in range(buckets)}
    blob = CountingBlob(container.get_blob_client("part.jsonl"))
    writer = BucketedPartWriter(blob, buckets, flush_bytes=1000)  # a block every ~1,000 bytes: many blocks
    for row in range(600):
        bucket = rng.choice([0, 1, 2, 4, 6])  # buckets 3 and 5 get nothing
        line = f'{{"r":{row},"pad":"{"x" * rng.randrange(0, 40)}"}}\n'.encode()
        written[bucket].append(line)
        writer.write(bucket, line)
    index = writer.close()

    assert len(index.blocks) == blob.staged > 10 and blob.commits == 1
    for bucket in range(buckets):
        assert read_bucket(container.get_blob_client("part.jsonl"), index, bucket) == b"".join(written[bucket])
    assert list(index.ranges(3)) == [] and list(index.ranges(5)) == []
    assert PartIndex.from_json(index.to_json()) == index


def test_memory_is_bounded_by_the_flush_size_not_by_the_buckets(container):
    blob = CountingBlob(container.get_blob_client("part.jsonl"))
    writer = BucketedPartWriter(blob, 256, flush_bytes=4096)
    line = b"y" * 63 + b"\n"
    for row in range(2000):
        writer.write(row % 256, line)
        assert writer._buffered < 4096  # staged as soon as the buffers of all buckets reach the flush size
    writer.close()
    assert blob.staged == -(-2000 * 64 // 4096)


def test_writing_the_same_lines_again_gives_the_same_blob(container):
    """A redelivered split message writes its blob again: block ids are positional, so nothing is appended."""
    lines = [(n % 3, f"line {n}\n".encode()) for n in range(300)]
    indexes = []
    for _ in range(2):
        writer = BucketedPartWriter(container.get_blob_client("again.jsonl"), 3, flush_bytes=500)
        for bucket, line in lines:
            writer.write(bucket, line)
        indexes.append(writer.close())
    assert indexes[0] == indexes[1]
    data = container.get_blob_client("again.jsonl").download_blob().readall()
    assert len(data) == sum(len(line) for _, line in lines)


def test_a_segment_with_no_lines_is_an_empty_blob_with_no_ranges(container):
    index = BucketedPartWriter(container.get_blob_client("empty.jsonl"), 4).close()
    assert index.blocks == () and all(not list(index.ranges(b)) for b in range(4))
    assert container.get_blob_client("empty.jsonl").download_blob().readall() == b""


def test_a_file_smaller_than_a_block_is_one_request_and_a_bigger_one_is_staged(container):
    small = CountingBlob(container.get_blob_client("small.csv"))
    writer = BlockWriter(small, flush_bytes=100)
    writer.write(b"a,b\r\n" * 10)
    writer.close()
    assert (small.uploads, small.staged, small.commits) == (1, 0, 0)
    assert container.get_blob_client("small.csv").download_blob().readall() == b"a,b\r\n" * 10

    big = CountingBlob(container.get_blob_client("big.csv"))
    writer = BlockWriter(big, flush_bytes=100)
    for _ in range(25):
        writer.write(b"x" * 10)
    writer.close()
    assert (big.uploads, big.staged, big.commits) == (0, 3, 1)
    assert container.get_blob_client("big.csv").download_blob().readall() == b"x" * 250

    # Written again smaller (a redelivery that found less to write): the blob is replaced, not appended to.
    writer = BlockWriter(container.get_blob_client("big.csv"), flush_bytes=100)
    writer.write(b"y" * 5)
    writer.close()
    assert container.get_blob_client("big.csv").download_blob().readall() == b"y" * 5
