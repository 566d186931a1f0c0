"""RFC 4475 torture messages through the user agent core: the answer each gets is the one the RFC
expects of a UAS (or, where the RFC allows rejecting or being liberal, the choice noted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxline.sip import (
    IncomingCall,
    SipConfig,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    UserAgentCore,
    parse_message,
    parse_uri,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sip" / "rfc4475"
SOURCE = ("192.0.2.99", 5060)

# name: (RFC section, expected answer: a status, "call" for 100 Trying + IncomingCall, None for
# silence), what the RFC says.
EXPECTED: dict[str, tuple[str, int | str | None, str]] = {
    # 3.1.1 Valid messages: parsed, and answered as any such request.
    "wsinv": ("3.1.1.1", 481, "valid; an in-dialog INVITE (To tag) for a dialog we do not have"),
    "intmeth": ("3.1.1.2", 501, "valid; an unknown method, its case kept"),
    "esc01": ("3.1.1.3", "call", "valid INVITE; the video stream's a=rtpmap:31 LPC is not an error"),
    "escnull": ("3.1.1.4", 405, "valid REGISTER; we are no registrar"),
    "esc02": ("3.1.1.5", 501, "valid; RE%47IST%45R is an extension method, not REGISTER"),
    "lwsdisp": ("3.1.1.6", 200, "valid OPTIONS"),
    "longreq": ("3.1.1.7", "call", "valid INVITE with long values and 34 Vias"),
    "dblreq": ("3.1.1.8", 405, "the REGISTER only: the INVITE after its Content-Length is noise"),
    "semiuri": ("3.1.1.9", 200, "valid OPTIONS"),
    "transports": ("3.1.1.10", 200, "valid OPTIONS, unknown transports in Vias"),
    "mpart01": ("3.1.1.11", 405, "valid MESSAGE; not a method we take"),
    "unreason": ("3.1.1.12", None, "valid response; no transaction of ours: dropped"),
    "noreason": ("3.1.1.13", None, "valid response; no transaction of ours: dropped"),
    # 3.1.2 Invalid messages.
    "badinv01": ("3.1.2.1", 400, "extraneous separators: should respond 400"),
    "clerr": ("3.1.2.2", 400, "Content-Length larger than the datagram: should respond 400"),
    "ncl": ("3.1.2.3", 400, "negative Content-Length: should respond with an error"),
    "scalar02": ("3.1.2.4", 400, "CSeq above 2**32-1: should respond 400"),
    "scalarlg": ("3.1.2.5", None, "a response with overlarge scalars: discarded"),
    "quotbal": ("3.1.2.6", 400, "unterminated quoted string: should return 400"),
    "ltgtruri": ("3.1.2.7", 400, "<> around the Request-URI: reasonable to reject with 400"),
    "lwsruri": ("3.1.2.8", 400, "LWS in the Request-URI: should respond 400"),
    "lwsstart": ("3.1.2.9", 400, "multiple SP in the Request-Line: acceptable to reject (chosen)"),
    "trws": ("3.1.2.10", 200, "SP after the version: reject or ignore; ignored (chosen)"),
    "escruri": ("3.1.2.11", 400, "escaped headers in the Request-URI: acceptable to reject (chosen)"),
    "baddate": ("3.1.2.12", "call", "non-GMT Date: liberal when Date is unused (chosen)"),
    "regbadct": ("3.1.2.13", 405, "a REGISTER: no registrar here"),
    "badaspec": ("3.1.2.14", 200, "spaces in an addr-spec: liberal (chosen), must not break"),
    "baddn": ("3.1.2.15", 200, "unquoted non-token display names: liberal, quotes inferred (chosen)"),
    "badvers": ("3.1.2.16", 505, "SIP/7.0: should respond 505 Version Not Supported"),
    "mismatch01": ("3.1.2.17", 400, "CSeq method mismatch: will respond 400"),
    "mismatch02": ("3.1.2.18", 400, "unknown method and CSeq mismatch: 501 or 400 (400 chosen)"),
    "bigcode": ("3.1.2.19", None, "status code above 699: dropped"),
    # 3.2 Transaction layer.
    "badbranch": ("3.2.1", 200, "a branch that is only the magic cookie: RFC 2543 matching"),
    # 3.3 Application layer.
    "insuf": ("3.3.1", 400, "no Call-ID, From, To: ideally 400"),
    "unkscm": ("3.3.2", 416, "unknown Request-URI scheme: 416 Unsupported URI Scheme"),
    "novelsc": ("3.3.3", 416, "a scheme we never take in a Request-URI: 416"),
    "unksm2": ("3.3.4", 405, "unknown schemes in To/From/Contact: the parser must not fail"),
    "bext01": ("3.3.5", 420, "Require of unknown extensions: 420 listing them in Unsupported"),
    "invut": ("3.3.6", 415, "unknown body type: an endpoint answers 415"),
    "regaut01": ("3.3.7", 405, "endpoints that are no registrar: 405 is appropriate"),
    "multi01": ("3.3.8", 400, "several values in single-value fields: would respond 400"),
    "mcl01": ("3.3.9", 400, "several Content-Length values: respond with an error"),
    "bcast": ("3.3.10", None, "200 OK with a broadcast Via: an endpoint discards it"),
    "zeromf": ("3.3.11", 200, "Max-Forwards 0: an endpoint processes it as usual"),
    "cparam01": ("3.3.12", 405, "a REGISTER"),
    "cparam02": ("3.3.13", 405, "a REGISTER"),
    "regescrt": ("3.3.14", 405, "a REGISTER"),
    "sdp01": ("3.3.15", 406, "Accept without application/sdp: 406 (or 400)"),
    # 3.4 Backward compatibility.
    "inv2543": ("3.4.1", "call", "RFC 2543 syntax: accepted"),
}


def _message(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def _feed(name: str) -> tuple[UserAgentCore, list[tuple[int, str]], list[object]]:
    """The core's (status, reason) answers to one torture message, and its events."""
    core = UserAgentCore(SipConfig())
    core.receive(_message(name), SOURCE, 0.0)
    out = core.data_to_send()
    assert all(o.addr == SOURCE for o in out)  # answers go to the source, never to a Via's host
    # Not parse_message: a 400 echoes the broken headers it answers (RFC 3261 §8.2.6.2).
    lines = [o.data.split(b"\r\n", 1)[0].decode() for o in out]
    assert all(line.startswith("SIP/2.0 ") for line in lines)
    answers = [(int(line[8:11]), line[12:]) for line in lines]
    return core, answers, list(core.events_received())


def _answer(name: str) -> SipResponse:
    core = UserAgentCore(SipConfig())
    core.receive(_message(name), SOURCE, 0.0)
    (out,) = core.data_to_send()
    response = parse_message(out.data)
    assert isinstance(response, SipResponse)
    return response


def test_every_message_of_the_archive_has_an_expectation() -> None:
    assert sorted(p.stem for p in DATA.glob("*.dat")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_gets_the_rfc_answer(name: str) -> None:
    section, expected, why = EXPECTED[name]
    core, answers, events = _feed(name)
    got = [status for status, _ in answers]
    if expected == "call":
        assert got == [100], f"{section} {name} ({why}): {got}"
        assert len(events) == 1 and isinstance(events[0], IncomingCall)
    elif expected is None:
        assert got == [] and events == [], f"{section} {name} ({why}): {got}"
    else:
        assert got == [expected], f"{section} {name} ({why}): {answers}"
        assert events == []
    assert core.stats["received"] == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("quotbal", "unterminated quoted string"),
        ("escruri", "Request-URI with headers"),
        ("multi01", "more than one"),
        ("mcl01", "more than one Content-Length"),
        ("lwsruri", "malformed Request-Line"),
        ("badinv01", "bad Via"),
    ],
)
def test_rejections_name_the_actual_error(name: str, reason: str) -> None:
    # Several of these were once answered 400 for an unrelated reason (the unused stream's rtpmap).
    _, answers, _ = _feed(name)
    assert reason in answers[0][1]


def test_the_unused_streams_rtpmap_without_a_clock_rate_does_not_fail_the_offer() -> None:
    for name in ("esc01", "longreq", "baddate", "inv2543"):
        _, _, events = _feed(name)
        incoming = events[0]
        assert isinstance(incoming, IncomingCall) and incoming.media is not None
        assert incoming.media.codec.name == "PCMU", name


def test_valid_messages_are_read_as_the_rfc_means_them() -> None:
    intmeth = parse_message(_message("intmeth"))
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(intmeth, SipRequest) and intmeth.method == method and intmeth.cseq[1] == method
    assert intmeth.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert intmeth.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert _answer("intmeth").cseq == (139122385, method)  # case kept: the UAC can match it
    longreq = parse_message(_message("longreq"))
    assert len(longreq.vias) == 34 and longreq.vias[-1].params["received"] == "192.0.2.5"
    semiuri = parse_message(_message("semiuri"))
    assert isinstance(semiuri, SipRequest)
    uri = parse_uri(semiuri.uri)  # the ';' belongs to the user part: no URI parameters
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    baddn = parse_message(_message("baddn"))
    assert (baddn.from_.display, baddn.from_.tag, baddn.to.display) == (
        "Bell, Alexander",
        "43",
        "Watson, Thomas",
    )
    unksm2 = parse_message(_message("unksm2"))
    assert (str(unksm2.to.uri), str(unksm2.from_.uri)) == ("isbn:2983792873", "http://www.example.com")
    dblreq = parse_message(_message("dblreq"))
    assert isinstance(dblreq, SipRequest) and dblreq.method == "REGISTER" and dblreq.body == b""
    for name in ("bigcode", "scalarlg"):
        with pytest.raises(SipParseError):
            parse_message(_message(name))


def test_answers_carry_what_the_rfc_asks_for() -> None:
    # The UAS answers Require (not Proxy-Require, which is for proxies) with the features it lacks.
    unsupported = _answer("bext01").headers.get("Unsupported") or ""
    assert unsupported == "nothingSupportsThis, nothingSupportsThisEither"
    assert _answer("invut").headers.get("Accept") == "application/sdp"
    assert (_answer("sdp01").headers.get("Warning") or "").startswith("399 ")
    assert "INVITE" in (_answer("intmeth").headers.get("Allow") or "")


def test_multiple_content_lengths_over_tcp_are_a_framing_error() -> None:
    # RFC 4475 3.3.9: over TCP "the framing error is not recoverable, and the connection should be
    # closed" (after the 400, which the endpoint sends from error_head).
    framer = StreamFramer()
    assert framer.feed(_message("mcl01")) == []
    assert framer.error is not None and framer.error_status == 400 and framer.error_head is not None
    core = UserAgentCore(SipConfig())
    core.refuse_message(framer.error_head, SOURCE, 0.0, "tcp", framer.error_status, framer.error)
    (out,) = core.data_to_send()
    assert out.transport == "tcp" and out.data.startswith(
        b"SIP/2.0 400 Bad Request (more than one Content-Length"
    )
