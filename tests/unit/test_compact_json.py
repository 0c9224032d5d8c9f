"""compact_json writes exactly what the standard library writes compactly, so existing digests stay valid."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import compact_json

# What a contact holds: text (any character a row may carry, but lone surrogates, which are never sent),
# integers of field ids, booleans, lists of tags and field objects.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | _text,
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=1500, deadline=None)
@given(_values)
def test_the_same_bytes_as_the_standard_library(value):
    assert compact_json.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert compact_json.dumps(value, sort_keys=True) == json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    assert compact_json.loads(compact_json.dumps(value)) == value


def test_control_characters_and_line_separators_are_written_as_the_standard_library_writes_them():
    value = {"first_name": "a\x00\x1f\x7f\u2028\u2029\"\\\n\t/é"}
    assert compact_json.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
