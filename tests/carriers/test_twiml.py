"""TwiML for <Connect><Stream> and the X-Twilio-Signature algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET

import pytest

from voxline.carriers.twiml import compute_signature, connect_stream_twiml, validate_signature

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def reference_signature(token: str, url: str, params: dict[str, str]) -> str:
    """The algorithm as Twilio's security page states it, written out independently."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_connect_stream_twiml_shape_and_escaping() -> None:
    url = "wss://example.com/twilio?a=1&b=<2>"
    twiml = connect_stream_twiml(url, {"From": "+1 555", 'q"uote': "<&'>"})
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url=')
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    (connect,) = list(root)
    (stream,) = list(connect)
    assert (connect.tag, stream.tag) == ("Connect", "Stream")
    assert stream.get("url") == url
    assert [(p.tag, p.get("name"), p.get("value")) for p in stream] == [
        ("Parameter", "From", "+1 555"),
        ("Parameter", 'q"uote', "<&'>"),
    ]


def test_connect_stream_twiml_without_parameters_and_with_options() -> None:
    twiml = connect_stream_twiml("wss://h/s", name="agent", status_callback="https://h/cb")
    stream = ET.fromstring(twiml)[0][0]
    assert stream.attrib == {"url": "wss://h/s", "name": "agent", "statusCallback": "https://h/cb"}
    assert list(stream) == []


@pytest.mark.parametrize("url", ["https://example.com/twilio", "example.com", ""])
def test_connect_stream_twiml_refuses_non_websocket_urls(url: str) -> None:
    with pytest.raises(ValueError, match="url must be a wss://"):
        connect_stream_twiml(url)


def test_parameters_must_be_strings() -> None:
    with pytest.raises(ValueError, match="parameters must map str to str"):
        connect_stream_twiml("wss://h/s", {"n": 5})  # type: ignore[dict-item]


def test_signature_matches_an_independent_computation_and_twilios_published_example() -> None:
    expected = reference_signature(TOKEN, URL, PARAMS)
    assert compute_signature(TOKEN, URL, PARAMS) == expected
    # The example on Twilio's security page (same URL, parameters and token).
    assert expected == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    # Order of the given parameters does not matter.
    assert compute_signature(TOKEN, URL, list(reversed(list(PARAMS.items())))) == expected


def test_valid_signature_passes_and_tampering_fails() -> None:
    signature = reference_signature(TOKEN, URL, PARAMS)
    assert validate_signature(TOKEN, signature, URL, PARAMS)
    assert not validate_signature(TOKEN, signature, URL, {**PARAMS, "Digits": "1235"})
    assert not validate_signature(TOKEN, signature, URL + "&x=1", PARAMS)
    assert not validate_signature("54321", signature, URL, PARAMS)
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert not validate_signature(TOKEN, tampered, URL, PARAMS)
    assert not validate_signature(TOKEN, None, URL, PARAMS)
    assert not validate_signature(TOKEN, "", URL, PARAMS)


def test_url_only_signature_for_a_websocket_upgrade() -> None:
    url = "wss://voice.example.com/twilio"
    signature = base64.b64encode(hmac.new(b"tok", url.encode(), hashlib.sha1).digest()).decode()
    assert validate_signature("tok", signature, url)
    assert validate_signature("tok", signature, url, {})


def test_default_port_may_be_added_or_stripped_by_a_proxy() -> None:
    signed_with_port = reference_signature(TOKEN, "https://mycompany.com:443/voice", PARAMS)
    assert validate_signature(TOKEN, signed_with_port, "https://mycompany.com/voice", PARAMS)
    signed_without = reference_signature(TOKEN, "https://mycompany.com/voice", PARAMS)
    assert validate_signature(TOKEN, signed_without, "https://mycompany.com:443/voice", PARAMS)


def test_repeated_parameters_are_sorted_by_name_then_value() -> None:
    pairs = [("b", "2"), ("a", "9"), ("a", "1")]
    data = "https://h/x" + "a1" + "a9" + "b2"
    expected = base64.b64encode(hmac.new(b"t", data.encode(), hashlib.sha1).digest()).decode()
    assert compute_signature("t", "https://h/x", pairs) == expected
    assert compute_signature("t", "https://h/x", {"a": ["9", "1"], "b": "2"}) == expected
