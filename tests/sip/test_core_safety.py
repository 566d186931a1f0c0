"""The core's defences on a virtual clock: refused media addresses, limits, keep-alives."""

from __future__ import annotations

import logging

import pytest

from voxline.sip import SipConfig

from .messages import OFFER_PCMU_PCMA, invite
from .test_core import Harness


def test_invite_whose_audio_goes_to_a_host_name_gets_488_with_warning_301() -> None:
    h = Harness()
    h.feed(invite(sdp=OFFER_PCMU_PCMA.replace("c=IN IP4 127.0.0.1", "c=IN IP4 media.example.com")))
    (resp,) = h.responses()
    assert resp.status == 488 and (resp.headers.get("Warning") or "").startswith("301 voxline")
    assert h.events == []


def test_keepalives_and_oversize_messages() -> None:
    h = Harness(max_message_bytes=2048)
    h.feed(b"\r\n\r\n")
    assert h.sent == [] and h.core.stats["keepalives"] == 1 and h.core.stats["malformed_dropped"] == 0
    h.feed(invite(extra="X-Pad: " + "p" * 3000 + "\r\n"))
    (resp,) = h.responses()
    assert resp.status == 513 and h.core.stats["over_limit"] == 1 and h.events == []
    with pytest.raises(ValueError, match="max_message_bytes"):
        SipConfig(max_message_bytes=100_000)


def test_log_records_of_bad_input_keep_no_exception_alive(caplog: pytest.LogCaptureFixture) -> None:
    # A kept record (a queue handler, a test's capture) holding the SipParseError kept its traceback
    # and the frames with up to 64 KB of input each: the fuzz run's collector pauses came from there.
    caplog.set_level(logging.INFO, logger="voxline.sip")
    h = Harness()
    h.feed(b"\xff\xfeINVITE garbage\r\n\r\n")
    h.feed(invite(sdp="v=0\r\nm=audio x RTP/AVP 0\r\n"))
    records = [r for r in caplog.records if r.name == "voxline.sip"]
    assert len(records) == 2
    assert all(not isinstance(arg, BaseException) for r in records for arg in (r.args or ()))
