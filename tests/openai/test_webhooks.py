"""The Standard Webhooks verification of OpenAI's webhooks (sans-I/O: the time is an argument)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from voxline.openai.webhooks import WebhookVerificationError, WebhookVerifier, decode_secret, sign

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = json.dumps({"type": "realtime.call.incoming", "data": {"call_id": "rtc_1"}}).encode()
NOW = 1_767_000_000


def test_sign_is_hmac_sha256_of_id_timestamp_body_with_the_decoded_secret() -> None:
    headers = sign(SECRET, "wh_1", NOW, BODY)
    expected = hmac.new(KEY, b"wh_1." + str(NOW).encode() + b"." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "wh_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": "v1," + base64.b64encode(expected).decode(),
    }


def test_a_signed_delivery_passes_once_and_its_replay_is_refused() -> None:
    verifier = WebhookVerifier(SECRET)
    headers = sign(SECRET, "wh_1", NOW, BODY)
    assert verifier.verify(headers, BODY, NOW + 3)["data"]["call_id"] == "rtc_1"
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(headers, BODY, NOW + 4)
    assert info.value.reason == "replayed"
    # Past the window the same delivery fails on its timestamp (its id is forgotten then).
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(headers, BODY, NOW + 301)
    assert info.value.reason == "stale"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda h, b: ({**h, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, b),
            "bad_signature",
        ),
        (lambda h, b: (h, b + b" "), "bad_signature"),  # the body changed
        (lambda h, b: ({**h, "webhook-id": "wh_other"}, b), "bad_signature"),
        (
            lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
            "bad_signature",
        ),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing_header"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "bad_timestamp"),
    ],
)
def test_tampered_deliveries_are_refused_with_a_reason(change: object, reason: str) -> None:
    headers, body = change(sign(SECRET, "wh_1", NOW, BODY), BODY)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(SECRET).verify(headers, body, NOW)
    assert info.value.reason == reason


def test_timestamps_outside_the_tolerance_either_way_are_stale() -> None:
    verifier = WebhookVerifier(SECRET, tolerance_s=60)
    for sent in (NOW - 61, NOW + 61):
        with pytest.raises(WebhookVerificationError) as info:
            verifier.verify(sign(SECRET, f"wh_{sent}", sent, BODY), BODY, NOW)
        assert info.value.reason == "stale"
    assert verifier.verify(sign(SECRET, "wh_ok", NOW - 60, BODY), BODY, NOW)


def test_any_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    old = "whsec_" + base64.b64encode(b"an-older-secret-key-of-32-bytes!").decode()
    headers = sign(SECRET, "wh_1", NOW, BODY)
    rotated = sign(old, "wh_1", NOW, BODY)["webhook-signature"] + " " + headers["webhook-signature"]
    assert WebhookVerifier(SECRET).verify({**headers, "webhook-signature": rotated}, BODY, NOW)


def test_header_names_are_case_insensitive_and_a_non_json_body_is_refused() -> None:
    headers = {k.title(): v for k, v in sign(SECRET, "wh_1", NOW, b"not json").items()}
    with pytest.raises(WebhookVerificationError) as info:
        WebhookVerifier(SECRET).verify(headers, b"not json", NOW)
    assert info.value.reason == "bad_body"


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", 5])
def test_bad_secrets_raise_naming_the_parameter(secret: object) -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        decode_secret(secret)  # type: ignore[arg-type]
