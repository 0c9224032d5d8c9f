"""Queue messages: references to pieces of a run (never profile data), validated on the way in."""
from __future__ import annotations

import json


class BadMessage(ValueError):
    pass


def parse(body: bytes | str, *int_fields: str) -> dict:
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise BadMessage("not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("runId"), str):
        raise BadMessage("no runId")
    for name in int_fields:
        if not isinstance(message.get(name), int) or message[name] < 0:
            raise BadMessage(f"no {name} index")
    return message
