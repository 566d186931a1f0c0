"""OpenAI-hosted SIP calls through ``voxline run``: the signed webhook at the HTTP listener, the
scenario's accept/refer/hangup/reject at the REST fake, and its sideband Realtime client on the fake
Realtime server (all on loopback sockets; OpenAI's side is voxline.testing.FakeOpenAICalls)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeOpenAICalls, FakeRealtimeServer, ScriptedResponse

KEY = "sk-test-sip-key-1234"

# Accepts with a session config, attaches to the sideband, answers DTMF 0 with a transfer, hangs up
# on DTMF #; rejects callers whose number ends in 0000 with 486.
SCENARIO = """
from voxline import AppEvents, OpenAI, VoxEngine

Ev = OpenAI.RealtimeAPIEvents
SEEN = []

async def on_call(event):
    calls = OpenAI.create_realtime_calls_client(
        VoxEngine.get_secret_value("OPENAI_API_KEY"),
        VoxEngine.get_secret_value("CALLS_URL"),
        realtime_base_url=VoxEngine.get_secret_value("REALTIME_URL"),
    )
    call = event.call
    SEEN.append((event.call_id, event.callerid, event.destination))
    if event.callerid.endswith("0000"):
        await calls.reject(call, 486)
        return
    await calls.accept(call, {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "You are the front desk of Example Corp.",
        "audio": {"output": {"voice": "marin"}},
    })
    client = await calls.attach(call)

    async def on_dtmf(e):
        if e.data["event"] == "0":
            await calls.refer(call, "tel:+14155550123")
        elif e.data["event"] == "#":
            await calls.hangup(call)

    client.add_event_listener(Ev.InputAudioBufferDTMFEventReceived, on_dtmf)
    client.add_event_listener(Ev.SessionCreated, lambda e: client.response_create(
        {"response": {"instructions": "Greet the caller."}}))

VoxEngine.add_event_listener(AppEvents.OpenAICallIncoming, on_call)
"""


@pytest.fixture
async def openai() -> AsyncIterator[tuple[FakeOpenAICalls, FakeRealtimeServer]]:
    async with (
        FakeRealtimeServer(api_keys={KEY}) as realtime,
        FakeOpenAICalls(api_key=KEY, realtime=realtime) as calls,
    ):
        yield calls, realtime


@pytest.fixture
async def runtime(
    tmp_path: Path, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> AsyncIterator[Runtime]:
    calls, realtime = openai
    scenario = tmp_path / "openai_sip.py"
    scenario.write_text(textwrap.dedent(SCENARIO), encoding="utf-8")
    config = RuntimeConfig.load(
        {"scenario": str(scenario), "sip": "off", "http": "127.0.0.1:0", "idle_session_s": 0.1},
        env={"VOXLINE_OPENAI_WEBHOOK_SECRET": calls.secret},
    )
    secrets = Secrets(
        env={"OPENAI_API_KEY": KEY, "CALLS_URL": calls.base_url, "REALTIME_URL": realtime.base_url}
    )
    rt = Runtime(config, secrets)
    await rt.start()
    yield rt
    await rt.shutdown(grace_s=0)


def webhook_url(runtime: Runtime) -> str:
    return f"http://127.0.0.1:{runtime.http_port}/openai/webhook"


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_a_signed_call_is_accepted_attached_referred_and_hung_up(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, realtime = openai
    realtime.script(ScriptedResponse(text="Hello, Example Corp, how can I help?"))
    delivery = await calls.ring(webhook_url(runtime), call_id="rtc_a1")
    assert delivery.status == 200, delivery.text
    # The scenario accepted with its session config; the fake recorded the request.
    accept = (await calls.wait_for("accept"))[0]
    assert accept.status == 200 and accept.call_id == "rtc_a1"
    assert accept.headers["Authorization"] == f"Bearer {KEY}"
    assert accept.body == {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "You are the front desk of Example Corp.",
        "audio": {"output": {"voice": "marin"}},
    }
    # Its sideband client got the session (with the accepted config) and its command reached the fake.
    connection = await realtime.wait_for_session()
    assert connection.call_id == "rtc_a1"
    assert connection.sent[0]["session"]["instructions"] == "You are the front desk of Example Corp."
    create = (await connection.wait_for("response.create"))[0]
    assert create["response"] == {"instructions": "Greet the caller."}
    await connection.wait_for_sent("output_audio_buffer.stopped")
    # DTMF over the sideband drives the scenario: 0 transfers, # hangs up.
    connection.send_dtmf("0")
    refer = (await calls.wait_for("refer"))[0]
    assert (refer.status, refer.body) == (200, {"target_uri": "tel:+14155550123"})
    assert calls.calls["rtc_a1"].referred_to == ["tel:+14155550123"]
    connection.send_dtmf("#")
    hangup = (await calls.wait_for("hangup"))[0]
    assert hangup.status == 200 and hangup.body is None
    # The hang-up closes the sideband; the session winds down.
    await connection.wait_closed()
    await until(lambda: not runtime.sessions)
    realtime.assert_no_violations()
    assert runtime.openai_webhook is not None
    assert runtime.openai_webhook.stats["webhook_calls"] == 1


async def test_the_scenario_rejects_with_a_sip_status(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, _ = openai
    headers = [
        ("From", "<sip:+14155550000@carrier.example>;tag=9"),
        ("To", "<sip:+14155550199@sip.api.openai.com>"),
    ]
    delivery = await calls.ring(webhook_url(runtime), call_id="rtc_r1", sip_headers=headers)
    assert delivery.status == 200
    reject = (await calls.wait_for("reject"))[0]
    assert (reject.status, reject.body) == (200, {"status_code": 486})
    assert calls.calls["rtc_r1"].state == "rejected" and calls.calls["rtc_r1"].reject_status == 486
    await until(lambda: not runtime.sessions)
    assert not calls.accepted


async def test_a_bad_signature_is_refused_with_401_and_starts_nothing(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, _ = openai
    event = calls.incoming_call_event("rtc_bad")
    body = json.dumps(event).encode()
    forged = FakeOpenAICalls(secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=").signed(body)
    delivery = await calls.deliver(webhook_url(runtime), body, forged)
    assert delivery.status == 401
    unsigned = {"Content-Type": "application/json"}
    assert (await calls.deliver(webhook_url(runtime), body, unsigned)).status == 401
    tampered = calls.signed(body)
    assert (
        await calls.deliver(webhook_url(runtime), body.replace(b"rtc_bad", b"rtc_bax"), tampered)
    ).status == 401
    await asyncio.sleep(0.05)
    assert not runtime.sessions and not calls.requests
    assert runtime.openai_webhook is not None
    assert runtime.openai_webhook.stats["webhook_bad_signature"] == 2
    assert runtime.openai_webhook.stats["webhook_missing_header"] == 1


async def test_a_replayed_delivery_is_acknowledged_once_and_a_stale_one_refused(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, _ = openai
    first = await calls.ring(webhook_url(runtime), call_id="rtc_p1")
    assert first.status == 200
    await calls.wait_for("accept")
    replay = await calls.deliver(first.url, first.body, first.headers)
    assert replay.status == 200 and json.loads(replay.text) == {"status": "duplicate"}
    # A capture re-signed at an old time (beyond the 5-minute tolerance) is stale.
    event = calls.incoming_call_event("rtc_old")
    body = json.dumps(event).encode()
    stale = await calls.deliver(first.url, body, calls.signed(body, timestamp=int(time.time()) - 301))
    assert stale.status == 400 and "stale" in stale.text
    await asyncio.sleep(0.05)
    assert [r.call_id for r in calls.requests] == ["rtc_p1"]  # the replay started no second session


async def test_other_event_types_are_acknowledged_and_ignored(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, _ = openai
    body = json.dumps(
        {
            "object": "event",
            "id": "evt_1",
            "type": "response.completed",
            "created_at": 1,
            "data": {"id": "resp_1"},
        }
    ).encode()
    delivery = await calls.deliver(webhook_url(runtime), body, calls.signed(body))
    assert delivery.status == 200 and json.loads(delivery.text) == {"status": "ignored"}
    assert not runtime.sessions


async def test_the_webhook_is_off_without_a_secret(tmp_path: Path) -> None:
    scenario = tmp_path / "s.py"
    scenario.write_text("", encoding="utf-8")
    config = RuntimeConfig.load({"scenario": str(scenario), "sip": "off", "http": "127.0.0.1:0"}, env={})
    rt = Runtime(config, Secrets(env={}))
    await rt.start()
    try:
        async with FakeOpenAICalls() as calls:
            delivery = await calls.ring(f"http://127.0.0.1:{rt.http_port}/openai/webhook")
        assert delivery.status in (404, 405)
        assert rt.openai_webhook is None
    finally:
        await rt.shutdown(grace_s=0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"openai_webhook_secret": "not-a-secret!"}, "openai_webhook_secret"),
        ({"openai_webhook_secret": "whsec_QUJD", "http": "off", "sip": "127.0.0.1:0"}, "HTTP listener"),
        ({"openai_webhook_secret": "whsec_QUJD", "openai_webhook_path": "hook"}, "openai_webhook_path"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_them(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeConfig.load({"scenario": "x.py", "sip": "off", "http": "127.0.0.1:0", **settings}, env={})


async def test_the_callers_hang_up_closes_the_sideband_and_ends_the_session(
    runtime: Runtime, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, realtime = openai
    assert (await calls.ring(webhook_url(runtime), call_id="rtc_h1")).status == 200
    connection = await realtime.wait_for_session()
    await until(lambda: len(runtime.sessions) == 1)
    calls.caller_hangs_up("rtc_h1")
    await connection.wait_closed()
    assert connection.close_code == 1000
    await until(lambda: not runtime.sessions)
    assert not calls.hung_up  # nobody had to ask


async def test_a_call_the_scenario_never_answers_ends_its_session(
    tmp_path: Path, openai: tuple[FakeOpenAICalls, FakeRealtimeServer]
) -> None:
    calls, _ = openai
    scenario = tmp_path / "deaf.py"
    scenario.write_text("# listens for nothing\n", encoding="utf-8")
    config = RuntimeConfig.load(
        {"scenario": str(scenario), "sip": "off", "http": "127.0.0.1:0"},
        env={"VOXLINE_OPENAI_WEBHOOK_SECRET": calls.secret},
    )
    rt = Runtime(config, Secrets(env={}))
    rt.openai_answer_timeout_s = 0.2
    await rt.start()
    try:
        delivery = await calls.ring(f"http://127.0.0.1:{rt.http_port}/openai/webhook")
        assert delivery.status == 200
        await until(lambda: len(rt.sessions) == 1)
        await until(lambda: not rt.sessions)
    finally:
        await rt.shutdown(grace_s=0)
