"""What the queues carry: references to pieces of a run (never profile data), checked on the way in.

A queue message is at most 64 KB and delivered at least once; each names a run and a piece, and
the step that receives it reads everything else from Table storage.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass


class BadMessage(ValueError):
    """Not a message of this app; retrying cannot mend it."""


@dataclass(frozen=True)
class SegmentMessage:
    runId: str
    segment: int
    blob: str
    etag: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, body: bytes | str) -> SegmentMessage:
        message = _parse(body, "segment")
        return cls(message["runId"], message["segment"], str(message.get("blob", "")), str(message.get("etag", "")))


@dataclass(frozen=True)
class ChunkMessage:
    runId: str
    chunk: int
    leaving: bool = False  # the chunk's piece of the leaver pass

    def to_json(self) -> str:
        return json.dumps(asdict(self) if self.leaving else {"runId": self.runId, "chunk": self.chunk})

    @classmethod
    def parse(cls, body: bytes | str) -> ChunkMessage:
        message = _parse(body, "chunk")
        return cls(message["runId"], message["chunk"], message.get("leaving") is True)


def _parse(body: bytes | str, index_field: str) -> dict:
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise BadMessage("not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("runId"), str):
        raise BadMessage("no runId")
    index = message.get(index_field)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BadMessage(f"no {index_field} index")
    return message
