"""parse_partial_json, what ``parsed`` / ``parsed_arguments`` hold while a chat stream runs.

It is the SDK helper's own call (``jiter.from_json(..., partial_mode=True)``), returning None where
that raises. Until issue 14 voxline had a hand-written parser; each case in CASES is what that parser
gave (and jiter gives): the switch changed no event on text that starts a JSON document.
"""

from __future__ import annotations

import math
from typing import Any

import jiter
import pytest

from voxline.openai.chat import parse_partial_json as reexported
from voxline.openai.chat_stream import parse_partial_json

CASES: list[tuple[str, Any]] = [
    ('{"city": "San Fr', {}),
    ('{"city": "San Francisco"', {"city": "San Francisco"}),
    ('{"city": "San Francisco", "st', {"city": "San Francisco"}),
    ('{"ci', {}),
    ('{"city"', {}),
    ('{"city":', {}),
    ('{"city": ', {}),
    ('"abc', None),
    ('"abc"', "abc"),
    ('["a", "b', ["a"]),
    ('{"q": "say \\"hi\\"", "r": "x', {"q": 'say "hi"'}),
    ('{"q": "a\\', {}),
    ('{"q": "a\\"', {}),
    ('{"q": "\\u00e9', {}),
    ('{"q": "\\u00e9"', {"q": "é"}),
    ('{"q": "\\ud83d\\ude00"}', {"q": "😀"}),
    ('{"q": "\\ud83d', {}),
    ('{"q": "tab\\tnl\\n/\\/"}', {"q": "tab\tnl\n//"}),
    ('{"\\u0063ity": 1}', {"city": 1}),
    ('{"t": 2', {"t": 2}),
    ('{"t": 21.', {}),
    ('{"t": 21.5', {"t": 21.5}),
    ('{"t": -', {}),
    ('{"t": -3', {"t": -3}),
    ('{"t": 1e', {}),
    ('{"t": 1e-', {}),
    ('{"t": 1e-2', {"t": 0.01}),
    ('{"t": 1.5E+', {}),
    ('{"t": 0', {"t": 0}),
    ('{"t": 12345678901234567890', {"t": 12345678901234567890}),
    ("[1, 2.5, -3e2", [1, 2.5, -300.0]),
    ('{"t": 1e400}', {"t": math.inf}),
    ("-0", 0),
    ("7", 7),
    ('{"ok": tr', {}),
    ('{"ok": true', {"ok": True}),
    ('{"ok": false, "n": nu', {"ok": False}),
    ('{"ok": null}', {"ok": None}),
    ("[true, fa", [True]),
    ("nul", None),
    ("null", None),
    ('{"a": {"b": [1, {"c": "d"', {"a": {"b": [1, {"c": "d"}]}}),
    ('{"a": {"b": [1, {"c": "d"}], "e"', {"a": {"b": [1, {"c": "d"}]}}),
    ("[[[", [[[]]]),
    ('[{"a": [{}', [{"a": [{}]}]),
    ('{"a": [], "b": {}}', {"a": [], "b": {}}),
    ("[1, [2, [3, 4], 5", [1, [2, [3, 4], 5]]),
    ('{"a": 1, "b": [true, {"c": null, "d": "e', {"a": 1, "b": [True, {"c": None}]}),
    ('  {"a" :  1 ,  ', {"a": 1}),
    ('\n{\n  "a": [\n    1,\n', {"a": [1]}),
    ("{ } ", {}),
    ("[ ]", []),
    ("", None),
    ("   ", None),
    ("hello", None),
    ('{"a" 1}', None),
    ("{1: 2}", None),
    ("{'a': 1}", None),
    ("[1,]", None),
    ('{"a": 1,}', None),
    ('{"a": .5}', None),
    ('{"a": "x\ny"}', None),
    ('{"a": "\\x"}', None),
    ('{"a": 1} and more', {"a": 1}),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(t) for t, _ in CASES])
def test_partial_json(text: str, expected: Any) -> None:
    # repr: 2 is not 2.0, and key order counts.
    assert repr(parse_partial_json(text)) == repr(expected)


def test_the_chat_module_still_exports_it() -> None:
    assert reexported is parse_partial_json


# Not the start of any JSON document, where the hand-written parser said None and the SDK's call
# does not raise: voxline now gives what the SDK's helper computes.
NOT_JSON = ['{"a": NaN}', '{"t": -Infinity', "NaN", '{"a": Na', '{"a": true!}', "[1 2]", '{"a": 0x10}']


@pytest.mark.parametrize("text", NOT_JSON)
def test_text_that_is_not_json_parses_as_the_sdk_helper_parses_it(text: str) -> None:
    assert repr(parse_partial_json(text)) == repr(jiter.from_json(text.encode(), partial_mode=True))


def test_non_finite_numbers_as_the_sdk_reads_them() -> None:
    assert math.isnan(parse_partial_json('{"a": NaN}')["a"])
    assert parse_partial_json('{"a": -Infinity}') == {"a": -math.inf}


def test_a_lone_surrogate_in_the_text_is_not_json() -> None:
    # A chunk's "\ud800" escape decodes to one. The SDK's bytes(text, "utf-8") raises
    # UnicodeEncodeError on it; voxline says None (the hand-written parser kept the surrogate).
    assert parse_partial_json('{"a": "\ud800"}') is None
