"""Queue messages: references only, and anything else refused with a reason."""
from __future__ import annotations

import json

import pytest

from exports.run.messages import BadMessage, ChunkMessage, SegmentMessage


def test_messages_round_trip_and_carry_references_only():
    segment = SegmentMessage("r1", 2, "seg/part-2.csv", '"0x8D"')
    assert SegmentMessage.parse(segment.to_json()) == segment
    assert set(json.loads(segment.to_json())) == {"runId", "segment", "blob", "etag"}
    chunk = ChunkMessage("r1", 7)
    assert ChunkMessage.parse(chunk.to_json().encode()) == chunk
    assert set(json.loads(chunk.to_json())) == {"runId", "chunk"}


@pytest.mark.parametrize("body, says", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "no runId"),
    (b'{"chunk": 1}', "no runId"),
    (b'{"runId": 5, "chunk": 1}', "no runId"),
    (b'{"runId": "r1"}', "no chunk index"),
    (b'{"runId": "r1", "chunk": -1}', "no chunk index"),
    (b'{"runId": "r1", "chunk": "1"}', "no chunk index"),
    (b'{"runId": "r1", "chunk": true}', "no chunk index"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_malformed_message_is_refused_with_the_reason(body, says):
    with pytest.raises(BadMessage, match=says):
        ChunkMessage.parse(body)
