"""The run's working files in the export-runs container, and how they are written.

<run id>/parts/s<segment>.jsonl             the contacts of one segment blob, each block's lines in bucket order
<run id>/parts/s<segment>.index.json        where each bucket's lines are in that blob (PartIndex)
<run id>/parts/undelivered/c<chunk>-...     emails of a batch ActiveCampaign did not take (kept out of the sync state)
<run id>/parts/remainders/c<chunk>.jsonl    a chunk's contacts left to the remainder chunk (exports/run/remainder.py)
<run id>/rejects/...                        rejected rows, one part per segment blob, refused or failed batch
<run id>/rejects.csv                        every part joined once the run finishes
<run id>/preview/c<chunk>.csv               a dry run's actions, one part per chunk
<run id>/preview.csv                        joined once the dry run finishes

Files are written as block blobs without holding them in memory.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from azure.storage.blob import BlobBlock

FLUSH_BYTES = 64 * 1024  # per open file
# A splitter's buffer for all buckets of its blob (twice that while a block is staged). A million
# profiles in 10 blobs are about 11 MB of lines a blob: one block each, so a chunk reads one range of it.
PART_BLOCK_BYTES = 16 * 1024 * 1024
REJECTS_HEADER = ("blob", "row", "email", "reason")
PREVIEW_HEADER = ("email", "action", "first_name", "last_name", "phone", "tags", "fields")
PREVIEW_JSON_COLUMNS = ("tags", "fields")  # a list of names, and {field id: value}: as JSON, unambiguous in a cell
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def parts_prefix(run_id: str) -> str:
    return f"{run_id}/parts/"


def part_name(run_id: str, segment: int) -> str:
    return f"{parts_prefix(run_id)}s{segment:05d}.jsonl"


def part_index_name(run_id: str, segment: int) -> str:
    return f"{parts_prefix(run_id)}s{segment:05d}.index.json"


def remainders_prefix(run_id: str) -> str:
    return f"{parts_prefix(run_id)}remainders/"


def remainder_name(run_id: str, chunk: int) -> str:
    return f"{remainders_prefix(run_id)}c{chunk:05d}.jsonl"


def rejects_prefix(run_id: str) -> str:
    return f"{run_id}/rejects/"


def segment_rejects_name(run_id: str, segment: int) -> str:
    return f"{rejects_prefix(run_id)}seg-{segment:05d}.csv"


def batch_rejects_name(run_id: str, chunk: int, position: int) -> str:
    # Named by the batch's position, so a resent batch rewrites its own file.
    return f"{rejects_prefix(run_id)}chunk-{chunk:05d}-{position:07d}.csv"


def failed_rejects_name(run_id: str, chunk: int, position: int) -> str:
    """Contacts of the batch at `position` that ActiveCampaign reported failed when it processed the import."""
    return f"{rejects_prefix(run_id)}chunk-{chunk:05d}-{position:07d}-failed.csv"


def rejects_report_name(run_id: str) -> str:
    return f"{run_id}/rejects.csv"


def undelivered_prefix(run_id: str, chunk: int) -> str:
    return f"{parts_prefix(run_id)}undelivered/c{chunk:05d}-"


def undelivered_name(run_id: str, chunk: int, position: int, why: str) -> str:
    # Named by the batch and why (refused, failed, unconfirmed): a redelivery rewrites the same file.
    return f"{undelivered_prefix(run_id, chunk)}{position:07d}-{why}.txt"


def preview_prefix(run_id: str) -> str:
    return f"{run_id}/preview/"


def preview_part_name(run_id: str, chunk: int) -> str:
    return f"{preview_prefix(run_id)}c{chunk:05d}.csv"


def preview_report_name(run_id: str) -> str:
    return f"{run_id}/preview.csv"


class BlockWriter:
    """Stages a block whenever FLUSH_BYTES are buffered and commits them all on close (a file smaller than
    that is written in one request).

    Block ids are positional, so writing the same content again (a redelivered message) replaces
    the blob with identical content instead of appending to it.
    """

    def __init__(self, blob_client, flush_bytes: int = FLUSH_BYTES):
        self._blob = blob_client
        self._flush_bytes = flush_bytes
        self._buffer = bytearray()
        self._blocks: list[str] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._flush_bytes:
            self._stage()

    def _stage(self) -> None:
        if self._buffer:
            block_id = f"{len(self._blocks):08d}"
            self._blob.stage_block(block_id=block_id, data=bytes(self._buffer))
            self._blocks.append(block_id)
            self._buffer.clear()

    def close(self) -> None:
        if not self._blocks:  # all of it still buffered: one Put Blob instead of a staged block and a commit
            self._blob.upload_blob(bytes(self._buffer), overwrite=True)
            return
        self._stage()
        self._blob.commit_block_list([BlobBlock(block_id=block_id) for block_id in self._blocks])


@dataclass(frozen=True)
class PartIndex:
    """Where each bucket's lines are in a segment blob's part: for each block, the bytes of every bucket."""

    blocks: tuple[tuple[int, ...], ...]

    def ranges(self, bucket: int) -> Iterator[tuple[int, int]]:
        """(offset, length) of the bucket's lines in each block that has any."""
        start = 0
        for lengths in self.blocks:
            length = lengths[bucket]
            if length:
                yield start + sum(lengths[:bucket]), length
            start += sum(lengths)

    def to_json(self) -> bytes:
        return json.dumps({"blocks": self.blocks}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PartIndex:
        return cls(tuple(tuple(lengths) for lengths in json.loads(data)["blocks"]))


class BucketedPartWriter:
    """One blob for all of a segment blob's buckets, written in few requests.

    Lines are buffered per bucket; once `flush_bytes` are buffered in all, they are staged as one
    block, bucket after bucket, so a chunk reads its bucket with one ranged read per block. One
    part per bucket instead cost a staged block and a commit for each of up to 256 buckets, and
    memory is bounded by `flush_bytes` however many buckets there are. Block ids are positional, as
    in BlockWriter, so splitting the same blob again writes the same blob and index.
    """

    def __init__(self, blob_client, buckets: int, flush_bytes: int = PART_BLOCK_BYTES):
        self._blob = blob_client
        self._flush_bytes = flush_bytes
        self._buffers = [bytearray() for _ in range(buckets)]
        self._buffered = 0
        self._blocks: list[tuple[int, ...]] = []

    def write(self, bucket: int, line: bytes) -> None:
        self._buffers[bucket] += line
        self._buffered += len(line)
        if self._buffered >= self._flush_bytes:
            self._stage()

    def _stage(self) -> None:
        if self._buffered:
            self._blob.stage_block(block_id=f"{len(self._blocks):08d}", data=b"".join(self._buffers))
            self._blocks.append(tuple(len(buffer) for buffer in self._buffers))
            for buffer in self._buffers:
                buffer.clear()
            self._buffered = 0

    def close(self) -> PartIndex:
        self._stage()
        self._blob.commit_block_list([BlobBlock(block_id=f"{i:08d}") for i in range(len(self._blocks))])
        return PartIndex(tuple(self._blocks))


def _inert(value) -> str:
    """The cell as text a spreadsheet shows rather than runs: OWASP's CSV injection advice is a leading quote."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_line(values) -> bytes:
    """One line of a rejects file, which people open in spreadsheets and which holds rejected values as they came."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(_inert(value) for value in values)
    # A rejected value may hold a lone surrogate, which UTF-8 cannot encode: it is written as its \u escape.
    return out.getvalue().encode("utf-8", errors="backslashreplace")


def concatenate(container_client, target: str, sources: list[str], header: bytes = b"") -> None:
    """Write `header` then each source blob into `target`, streaming, one staged block per downloaded chunk."""
    writer = BlockWriter(container_client.get_blob_client(target), flush_bytes=4 * 1024 * 1024)
    writer.write(header)
    for name in sources:
        for chunk in container_client.get_blob_client(name).download_blob().chunks():
            writer.write(chunk)
    writer.close()


def run_prefix(run_id: str) -> str:
    return f"{run_id}/"

