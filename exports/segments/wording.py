"""Names and texts from a segment quoted in messages people read, cut short so that no message
grows with the input (a header can have a million columns, a column name a megabyte)."""
from __future__ import annotations

from collections.abc import Sequence

NAME_CHARACTERS = 40
NAMES_SHOWN = 10


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def quoted(name: str) -> str:
    """The name in quotes, control characters escaped (repr), cut to about NAME_CHARACTERS."""
    return repr(cut(name, NAME_CHARACTERS))


def some_names(names: Sequence[str]) -> str:
    """The first NAMES_SHOWN names quoted, and how many there are when that is not all of them."""
    shown = ", ".join(quoted(name) for name in names[:NAMES_SHOWN]) or "none"
    if len(names) > NAMES_SHOWN:
        shown += f" and {len(names) - NAMES_SHOWN:,} more ({len(names):,} in all)"
    return shown
