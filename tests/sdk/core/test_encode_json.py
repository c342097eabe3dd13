"""`encode_json` writes exactly what ``json.dumps(..., ensure_ascii=False)`` writes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agentfm._base_client import encode_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(), st.text(), max_size=5))
def test_a_flat_dict_of_strings_encodes_as_json_dumps(value: dict[str, str]) -> None:
    assert encode_json(value) == json.dumps(value, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_any_json_value_encodes_as_json_dumps(value: object) -> None:
    assert encode_json(value) == json.dumps(value, ensure_ascii=False)


def test_a_task_body_with_control_and_non_ascii_characters() -> None:
    body = {"worker_id": "12D3KooW", "prompt": 'say "h\u00e9" \u2028\n\t\x00', "task_id": "t"}
    assert encode_json(body) == json.dumps(body, ensure_ascii=False)
