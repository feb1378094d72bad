from __future__ import annotations

from typing import Any

import pytest

from backend_stub.components._support import _CANONICAL, _plain, canonical_json


class Text(str):
    pass


@pytest.mark.parametrize(("value", "plain"), [
    ({"a": 1, "b": "x", "c": None, "d": True, "e": {"f": [1, "g", None, {"h": False}]}}, True),
    ([], True),
    ({}, True),
    ("text", True),
    (None, True),
    ({"a": 1.5}, False),
    ({"a": {"b": [1, 2.0]}}, False),
    ([1, [2, [3.0]]], False),
    ({1: "non-text key"}, False),
    ({"a": Text("a str subclass")}, False),
    ({"a": (1, 2)}, False),
    (2**70, True),
])
def test_plain_values_are_those_orjson_writes_as_the_standard_encoder(value: Any,
                                                                      plain: bool) -> None:
    assert _plain(value) is plain
    # Plain or not, the canonical form is the standard library's, byte for byte.
    assert canonical_json(value) == _CANONICAL.encode(value)
