"""Bad input, access control, limits and the voice webhook, over real loopback sockets.

Every bad connection runs next to a healthy Twilio stream on the same server, which must come
through byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voxline.carriers import CarrierConfig, CarrierEndpoints
from voxline.testing.carrier_callers import TwilioTestCaller

from .conftest import Server, ServerFactory
from .test_twilio_endpoint import prompt

CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
START = json.dumps(
    {"event": "start", "sequenceNumber": "1", "start": {"streamSid": "MZbad", "callSid": "CA1"}}
)
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "2",
        "media": {"track": "inbound", "payload": base64.b64encode(b"\xff" * 160).decode()},
    }
)
WS_START = json.dumps({"event": "start", "sequenceNumber": 0, "start": {"tag": "t"}})
WS_MEDIA = json.dumps({"event": "media", "sequenceNumber": 0, "media": {"tag": "t", "payload": "AAAA"}})


async def raw_session(
    url: str, messages: list[str | bytes], headers: dict[str, str] | None = None
) -> int | None:
    """Send raw messages, read until the server closes; the close code."""
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        try:
            for message in messages:
                await ws.send(message)
            while True:
                await asyncio.wait_for(ws.recv(), timeout=5)
        except ConnectionClosed:
            pass
        return ws.close_code


def signature(token: str, url: str, params: dict[str, str] | None = None) -> str:
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


async def healthy(server: Server, **kwargs: Any) -> None:
    audio = prompt(400, seed=99)
    url = server.ws_url("/twilio", **kwargs.pop("query", {}))
    caller = TwilioTestCaller(url, audio, done_when=lambda c: len(c.received) == len(audio), **kwargs)
    await caller.run()
    assert caller.errors == [] and bytes(caller.received) == audio and caller.close_code == 1000


@pytest.mark.parametrize(
    ("path", "messages", "code", "config"),
    [
        ("/twilio", [CONNECTED, "this is not JSON"], 1007, {}),
        ("/twilio", [CONNECTED, START, '{"event": "media", "media": "x"}'], 1007, {}),
        ("/twilio", [CONNECTED, MEDIA], 1002, {}),
        ("/twilio", [CONNECTED, START, START], 1002, {}),
        ("/twilio", [CONNECTED, START, json.dumps({"event": "media", "pad": "x" * 10_000})], 1009, {}),
        ("/twilio", [CONNECTED, START, b"\x00\x01"], 1003, {}),
        ("/twilio", [CONNECTED], 1008, {"start_timeout_s": 0.2}),
        ("/media", ["{not json"], 1007, {}),
        ("/media", [WS_MEDIA], 1002, {}),
        (
            "/media",
            [WS_START, json.dumps({"event": "start", "start": {"mediaFormat": {"encoding": "OPUS"}}})],
            1003,
            {},
        ),
        ("/media", [WS_START, "[" * 9000], 1009, {}),
    ],
    ids=[
        "twilio-non-json",
        "twilio-malformed",
        "twilio-media-before-start",
        "twilio-second-start",
        "twilio-oversize",
        "twilio-binary",
        "twilio-no-start",
        "media-non-json",
        "media-before-start",
        "media-opus",
        "media-oversize",
    ],
)
async def test_bad_input_closes_only_that_socket(
    make_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
    path: str,
    messages: list[str | bytes],
    code: int,
    config: dict[str, Any],
) -> None:
    server = await make_server(max_message_bytes=4096, **config)
    good = asyncio.create_task(healthy(server))
    assert await raw_session(server.ws_url(path), messages) == code
    await good
    assert server.endpoints.active_sockets == 0
    assert_no_tracebacks(caplog)


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


DEEP = "[" * 30000 + "]" * 30000


@pytest.mark.parametrize(
    ("path", "messages"),
    [
        ("/twilio", [CONNECTED, DEEP]),
        ("/twilio", [CONNECTED, START, '{"event": "media", "media": ' + DEEP + "}"]),
        ("/twilio", [CONNECTED, START, MEDIA.replace('"2"', '"' + "2" * 5000 + '"')]),
        ("/media", [DEEP]),
        ("/media", [json.dumps({"event": "start", "start": {"customParameters": DEEP}})]),
    ],
    ids=["twilio-deep", "twilio-deep-media", "twilio-5000-digits", "media-deep", "media-deep-parameters"],
)
async def test_deeply_nested_json_is_invalid_payload_without_a_traceback(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture, path: str, messages: list[str]
) -> None:
    """Issue 13.14: the parser's RecursionError used to escape as a traceback and a 1011."""
    server = await make_server()
    good = asyncio.create_task(healthy(server))
    assert await raw_session(server.ws_url(path), list(messages)) == 1007
    await good
    assert server.endpoints.stats["protocol_errors"] == 1
    assert_no_tracebacks(caplog)


async def test_a_stream_ended_by_an_oversize_message_reports_the_1009_sent(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_message_bytes=4096)
    assert await raw_session(server.ws_url("/twilio"), [CONNECTED, START, "x" * 5000]) == 1009
    (stream,) = server.streams
    await stream.wait_closed()
    assert stream.close_code == 1009  # aiohttp's own ws.close_code says 1006 by then


async def test_unknown_events_are_ignored_counted_and_logged_once(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server()
    unknown = json.dumps({"event": "transcription", "transcription": {"text": "hi"}})
    stop = json.dumps({"event": "stop", "stop": {}})
    caplog.set_level("INFO", logger="voxline.carriers")
    code = await raw_session(
        server.ws_url("/twilio"), [CONNECTED, START, unknown, unknown, unknown, MEDIA, stop]
    )
    assert code == 1000
    (stream,) = server.streams
    await stream.wait_closed()
    assert stream.stats["unknown_events"] == 3 and stream.stats["frames_in"] == 1
    assert server.endpoints.stats["ignored_events"] == 3
    assert sum("ignored 'transcription'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("path", ["/twilio", "/media"])
async def test_media_endpoints_refuse_before_upgrade_without_the_token(
    make_server: ServerFactory, path: str
) -> None:
    server = await make_server(token="s3cret")
    good = asyncio.create_task(healthy(server, query={"token": "s3cret"}))
    with pytest.raises(InvalidStatus) as missing:
        await raw_session(server.ws_url(path), [])
    assert missing.value.response.status_code == 401
    assert missing.value.response.headers["WWW-Authenticate"] == "Bearer"
    for headers, query in (({}, {"token": "wrong"}), ({"Authorization": "Bearer wrong"}, {})):
        with pytest.raises(InvalidStatus) as wrong:
            await raw_session(server.ws_url(path, **query), [], headers)
        assert wrong.value.response.status_code == 403
    # The right token, in the query or as a bearer header, is let in.
    assert await raw_session(server.ws_url(path, token="s3cret"), ["{"]) == 1007
    assert await raw_session(server.ws_url(path), ["{"], {"Authorization": "Bearer s3cret"}) == 1007
    await good
    assert server.endpoints.stats["refused_unauthenticated"] == 1
    assert server.endpoints.stats["refused_forbidden"] == 2
    assert server.endpoints.stats["sockets"] == 3  # the healthy caller and the two let in


async def test_twilio_stream_accepts_a_valid_signature_instead_of_the_token(
    make_server: ServerFactory,
) -> None:
    server = await make_server(token="s3cret", twilio_auth_token="authtok")
    url = server.ws_url("/twilio")
    good = asyncio.create_task(healthy(server, headers={"X-Twilio-Signature": signature("authtok", url)}))
    tampered = signature("authtok", url + "x")
    with pytest.raises(InvalidStatus) as refused:
        await raw_session(url, [], {"X-Twilio-Signature": tampered})
    assert refused.value.response.status_code == 403
    # The VoxEngine-format endpoint knows no Twilio signatures.
    with pytest.raises(InvalidStatus) as media:
        await raw_session(server.ws_url("/media"), [], {"X-Twilio-Signature": signature("authtok", url)})
    assert media.value.response.status_code == 401
    await good


async def test_media_endpoint_is_closed_when_only_a_twilio_auth_token_is_configured(
    make_server: ServerFactory,
) -> None:
    server = await make_server(twilio_auth_token="authtok")
    with pytest.raises(InvalidStatus) as refused:
        await raw_session(server.ws_url("/media"), [])
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as guessed:
        await raw_session(server.ws_url("/media", token="authtok"), [])
    assert guessed.value.response.status_code == 403


async def test_streams_over_the_limit_are_refused_with_503(make_server: ServerFactory) -> None:
    server = await make_server(max_streams=1)
    good = asyncio.create_task(healthy(server))
    while server.endpoints.active_sockets == 0:
        await asyncio.sleep(0.005)
    with pytest.raises(InvalidStatus) as busy:
        await raw_session(server.ws_url("/twilio"), [])
    assert busy.value.response.status_code == 503
    await good


async def test_admit_refuses_sockets_before_the_upgrade_with_503_and_retry_after(
    make_server: ServerFactory,
) -> None:
    """Issue 13.18: a full application used to upgrade the socket and then close it with 1013."""
    reason: list[str | None] = ["busy"]
    server = await make_server(admit=lambda: reason[0], token="s3cret")
    for path in ("/twilio", "/media"):
        with pytest.raises(InvalidStatus) as refused:
            await raw_session(server.ws_url(path, token="s3cret"), [])
        response = refused.value.response
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert b"busy" in response.body
    # Credentials are checked first: a stranger learns nothing about the load.
    with pytest.raises(InvalidStatus) as stranger:
        await raw_session(server.ws_url("/twilio"), [])
    assert stranger.value.response.status_code == 401
    reason[0] = "draining"
    with pytest.raises(InvalidStatus) as draining:
        await raw_session(server.ws_url("/twilio", token="s3cret"), [])
    assert draining.value.response.status_code == 503 and b"draining" in draining.value.response.body
    stats = server.endpoints.stats
    assert (stats["refused_busy"], stats["refused_draining"], stats["sockets"]) == (2, 1, 0)
    reason[0] = None
    await healthy(server, query={"token": "s3cret"})
    assert len(server.streams) == 1


async def test_a_stream_admitted_at_its_upgrade_is_closed_1013_if_full_at_its_start(
    make_server: ServerFactory,
) -> None:
    reason: list[str | None] = [None]
    server = await make_server(admit=lambda: reason[0])
    async with connect(server.ws_url("/twilio")) as ws:
        reason[0] = "busy"  # e.g. SIP calls took the last places meanwhile
        await ws.send(CONNECTED)
        await ws.send(START)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1013 and ws.close_reason == "not taking calls: busy"
    assert server.streams == []  # on_stream never ran
    assert server.endpoints.stats["refused_after_upgrade"] == 1


async def test_voice_webhook_answers_with_twiml_and_checks_the_signature(make_server: ServerFactory) -> None:
    server = await make_server(twilio_auth_token="authtok")
    url = server.base + "/twilio/voice"
    form = {"CallSid": "CA9", "From": "+15550100", "To": "+15550199", "AccountSid": "AC1"}
    async with aiohttp.ClientSession() as http:
        good = await http.post(
            url, data=form, headers={"X-Twilio-Signature": signature("authtok", url, form)}
        )
        assert good.status == 200 and good.content_type == "text/xml"
        stream = ET.fromstring(await good.text()).find("./Connect/Stream")
        assert stream is not None and stream.get("url") == server.ws_url("/twilio")
        assert {p.get("name"): p.get("value") for p in stream} == {"From": "+15550100", "To": "+15550199"}

        tampered = {**form, "From": "+15550666"}
        bad = await http.post(
            url, data=tampered, headers={"X-Twilio-Signature": signature("authtok", url, form)}
        )
        assert bad.status == 403
        unsigned = await http.post(url, data=form)
        assert unsigned.status == 403
    assert server.endpoints.stats["webhook_refused"] == 2


async def test_voice_webhook_behind_a_proxy_uses_the_public_url(make_server: ServerFactory) -> None:
    server = await make_server(
        twilio_auth_token="authtok",
        public_url="https://voice.example.com",
        twiml_parameters=lambda fields: {"caller": fields.get("From", "")},
    )
    form = {"From": "+15550100"}
    public = "https://voice.example.com/twilio/voice"
    async with aiohttp.ClientSession() as http:
        reply = await http.post(
            server.base + "/twilio/voice",
            data=form,
            headers={"X-Twilio-Signature": signature("authtok", public, form)},
        )
        assert reply.status == 200
        stream = ET.fromstring(await reply.text()).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://voice.example.com/twilio"
    assert [(p.get("name"), p.get("value")) for p in stream] == [("caller", "+15550100")]


async def test_voice_webhook_without_an_auth_token_does_not_check() -> None:
    endpoints = CarrierEndpoints(lambda stream: asyncio.sleep(0), CarrierConfig(stream_url="wss://h/twilio"))
    app = aiohttp.web.Application()
    endpoints.add_to(app)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            reply = await http.get(f"http://127.0.0.1:{port}/twilio/voice")
            assert reply.status == 200
            assert '<Stream url="wss://h/twilio"/>' in await reply.text()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"token": ""}, "token"),
        ({"twilio_path": "twilio"}, "twilio_path"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"max_streams": 0}, "max_streams"),
        ({"start_timeout_s": 0}, "start_timeout_s"),
        ({"max_tags_per_socket": 0}, "max_tags_per_socket"),
        ({"twilio_batch_ms": 50}, "twilio_batch_ms"),
        ({"twilio_batch_ms": 0}, "twilio_batch_ms"),
        ({"mark_interval_ms": -1}, "mark_interval_ms"),
        ({"public_url": "voice.example.com"}, "public_url"),
        ({"stream_url": "https://h/twilio"}, "stream_url"),
    ],
)
def test_bad_config_names_the_setting(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CarrierConfig(**kwargs)


def test_on_stream_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_stream"):
        CarrierEndpoints("not a function")  # type: ignore[arg-type]


UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def raw_http(server: Server, request: bytes, *, half_close: bool = False) -> int | None:
    """Send raw bytes to the HTTP listener; the response's status, None if there is none."""
    port = int(server.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        if half_close:
            writer.write_eof()
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(line.split()[1]) if line.startswith(b"HTTP/") else None


FORM = b"application/x-www-form-urlencoded"


def form_post(body: bytes, content_type: bytes = FORM, head: bytes = b"Host: x\r\n") -> bytes:
    return (
        b"POST /twilio/voice HTTP/1.1\r\n" + head + b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def ws_get(head: bytes) -> bytes:
    return b"GET /twilio HTTP/1.1\r\n" + head + UPGRADE + b"\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "counter"),
    [
        (ws_get(b"Host: x\r\nAuthorization: Bearer \xff\xfe\r\n"), 403, "refused_forbidden"),
        (ws_get(b"Host: x\r\nX-Twilio-Signature: \xff\r\n"), 403, "refused_forbidden"),
        (ws_get(b"Host: \xff\r\nX-Twilio-Signature: abc=\r\n"), 403, "refused_forbidden"),
        (ws_get(b"Host: [::1\r\nX-Twilio-Signature: abc=\r\n"), 403, "refused_forbidden"),
        (form_post(b"From=1", head=b"Host: x\r\nX-Twilio-Signature: \xff\r\n"), 403, "webhook_refused"),
        (form_post(b"From=1", head=b"Host: \xff\r\nX-Twilio-Signature: abc=\r\n"), 403, "webhook_refused"),
        (form_post(b"--zz\r\n", b"multipart/form-data; boundary=zz"), 415, "webhook_unsupported_type"),
        (form_post(b"a=b", FORM + b"; charset=bogus"), 400, "webhook_bad_body"),
        (form_post(b"From=\xff\xfe"), 400, "webhook_bad_body"),
    ],
    ids=[
        "bearer-not-utf8",
        "signature-not-utf8",
        "host-not-utf8",
        "host-bad-ipv6",
        "webhook-signature-not-utf8",
        "webhook-host-not-utf8",
        "webhook-multipart",
        "webhook-unknown-charset",
        "webhook-body-not-utf8",
    ],
)
async def test_undecodable_credentials_and_bodies_get_a_4xx_not_a_500(
    make_server: ServerFactory,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    status: int,
    counter: str | None,
) -> None:
    """Bytes that are not UTF-8 in a credential or the Host, and bodies that are not a Twilio form,
    used to raise (UnicodeEncodeError, ValueError, LookupError): a traceback and a 500."""
    server = await make_server(token="s3cret", twilio_auth_token="authtok")
    assert await raw_http(server, request_bytes) == status
    if counter is not None:
        assert server.endpoints.stats[counter] == 1
    assert_no_tracebacks(caplog)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Host: x\r\nAuthorization: Bearer s3cret\r\nAuthorization: Bearer other\r\n", 403),
        (b"Host: x\r\nAuthorization: Bearer other\r\nAuthorization: Bearer s3cret\r\n", 403),
        (b"Host: x\r\nX-Twilio-Signature: abc=\r\nX-Twilio-Signature: def=\r\n", 403),
        (b"Host: x\r\nHost: y\r\nAuthorization: Bearer s3cret\r\n", 400),
    ],
    ids=["bearer-right-first", "bearer-right-second", "signature", "host"],
)
async def test_a_repeated_credential_or_host_header_gets_a_4xx_on_both_listeners(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture, head: bytes, status: int
) -> None:
    """websockets' headers raised MultipleValuesError on a repeated header: no answer and a
    traceback on the fast path, while aiohttp took the first line. Now both answer alike."""
    server = await make_server(token="s3cret", twilio_auth_token="authtok")
    assert await raw_http(server, ws_get(head)) == status
    assert_no_tracebacks(caplog)
    await healthy(server, query={"token": "s3cret"})  # the listener is unharmed


async def test_a_webhook_body_cut_off_is_counted_without_a_traceback(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(twilio_auth_token="authtok")
    request = form_post(b"From=%2B1555")[:-4]  # the body is 4 bytes short; then the caller hangs up
    assert await raw_http(server, request, half_close=True) is None
    for _ in range(100):
        if server.endpoints.stats["webhook_bad_body"]:
            break
        await asyncio.sleep(0.01)
    assert server.endpoints.stats["webhook_bad_body"] == 1
    assert_no_tracebacks(caplog)
