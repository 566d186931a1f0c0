"""Log records of the real runtime: two Twilio-protocol callers at once on loopback, the fake
Realtime server as the model. Every record a call's code or its Realtime connection emits carries
that call's session and call id, and no record carries a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxline.audio.tone import tone
from voxline.logs import configure_logging
from voxline.runtime.server import Runtime, RuntimeConfig
from voxline.runtime.session import Secrets
from voxline.testing import FakeRealtimeServer, ScriptedResponse
from voxline.testing.carrier_callers import TwilioTestCaller

KEY = "sk-proj-runtime-logs-7c6b5a493827"
TOKEN = "media-token-1f2e3d4c5b"
TWILIO_AUTH = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
SECRETS = (KEY, KEY[3:], TOKEN, TWILIO_AUTH)

# Logs from the scenario's own code at each stage of a call, with the caller's number in the text,
# so a test can see whose ids each line got: the alerting handler, a model event (delivered from
# the Realtime socket's reader) and the hang-up (delivered from the carrier socket's reader).
SCENARIO = """\
import logging

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

log = logging.getLogger("scenario")


async def on_call(event):
    call = event.call
    caller = event.callerid
    log.info("alerting %s", caller)
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.SessionCreated, lambda e: log.info("model session %s", caller)
    )
    VoxEngine.send_media_between(call, client)
    client.response_create({})
    call.add_event_listener(CallEvents.Disconnected, lambda e: log.info("hung up %s", caller))
    call.add_event_listener(CallEvents.Disconnected, lambda e: VoxEngine.terminate())


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
"""


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


async def two_calls(tmp_path: Path, log_format: str) -> str:
    """Two Twilio callers at once through the runtime, logged at DEBUG; what was logged."""
    out = io.StringIO()
    configure_logging(log_format=log_format, level="debug", stream=out)
    scenario = tmp_path / "logged.py"
    scenario.write_text(textwrap.dedent(SCENARIO))
    async with FakeRealtimeServer(api_keys={KEY}) as fake:
        config = RuntimeConfig.load(
            {
                "scenario": str(scenario),
                "sip": "off",
                "http": "127.0.0.1:0",
                "token": TOKEN,
                "twilio_auth_token": TWILIO_AUTH,
                "idle_session_s": 0.2,
            },
            env={},
        )
        runtime = Runtime(config, Secrets(env={"OPENAI_API_KEY": KEY}))
        runtime.realtime_base_url = fake.base_url
        await runtime.start()
        try:
            for _ in range(2):
                fake.script(ScriptedResponse(text="Hello there.", audio=tone(300, 400, 24000, 0.3)))
            url = f"ws://127.0.0.1:{runtime.http_port}/twilio?token={TOKEN}"
            callers = [
                TwilioTestCaller(url, b"\xff" * 4000, custom_parameters={"From": number}, seed=i)
                for i, number in enumerate(("+15550001", "+15550002"))
            ]
            await asyncio.wait_for(asyncio.gather(*(c.run() for c in callers)), 20)
            assert all(c.errors == [] for c in callers)
            assert all(c.received for c in callers)  # both calls reached the model and back
            async with asyncio.timeout(10):
                while runtime.sessions:
                    await asyncio.sleep(0.05)
        finally:
            await runtime.shutdown(grace_s=0)
    return out.getvalue()


async def test_json_lines_of_two_concurrent_calls_carry_their_own_ids_and_no_secret(
    tmp_path: Path, root: logging.Logger
) -> None:
    text = await two_calls(tmp_path, "json")
    for secret in SECRETS:
        assert secret not in text
    records = [json.loads(line) for line in text.splitlines() if line]
    ids = {}
    for number in ("+15550001", "+15550002"):
        mine = [r for r in records if r["logger"] == "scenario" and number in str(r["msg"])]
        assert [r["msg"].split(" +")[0] for r in mine] == ["alerting", "model session", "hung up"], mine
        pairs = {(r.get("session_id"), r.get("call_id")) for r in mine}
        assert len(pairs) == 1 and None not in next(iter(pairs)), mine
        ids[number] = next(iter(pairs))
    assert ids["+15550001"] != ids["+15550002"]
    # The voxline side: every record of a Realtime client carries the ids of one of the two calls,
    # and each client's records the ids of one call only.
    clients: dict[str, set[tuple[str | None, str | None]]] = {}
    for r in records:
        if r["logger"] == "voxline.openai.realtime":
            clients.setdefault(str(r["msg"]).split()[0], set()).add((r.get("session_id"), r.get("call_id")))
    assert len(clients) == 2
    assert sorted(next(iter(p)) for p in clients.values()) == sorted(ids.values())
    assert all(len(p) == 1 for p in clients.values()), clients
    # The Realtime transport's own debug lines (the handshake's headers, every frame), even those
    # sent from the carrier socket's reader with the caller's audio.
    handshake = [r for r in records if r["msg"] == "> Authorization: ***"]
    frames = [r for r in records if str(r["msg"]).startswith('> TEXT \'{"type":"input_audio_buffer.append"')]
    assert len(handshake) == 2 and frames
    assert {(r.get("session_id"), r.get("call_id")) for r in handshake + frames} == set(ids.values())


async def test_text_lines_show_the_ids_and_no_secret(tmp_path: Path, root: logging.Logger) -> None:
    text = await two_calls(tmp_path, "text")
    for secret in SECRETS:
        assert secret not in text
    brackets = {}
    for number in ("+15550001", "+15550002"):
        mine = [line for line in text.splitlines() if " INFO scenario [" in line and number in line]
        found = {re.search(r" \[(session-\d+ call-\d+)\]: ", line) for line in mine}
        assert len(mine) == 3 and None not in found, mine
        brackets[number] = {m.group(1) for m in found if m is not None}
        assert len(brackets[number]) == 1, mine
    assert brackets["+15550001"] != brackets["+15550002"]


OUTBOUND = """\
import logging

from voxline import AppEvents, CallEvents, VoxEngine
from voxline.context import adopt
from voxline.runtime.call import Call
from tests.runtime.test_call import MemoryLeg

log = logging.getLogger("scenario")
LEGS = []


def on_started(event):
    log.info("before dialling")
    leg = MemoryLeg()
    LEGS.append(leg)
    call = Call(leg, outbound=True)
    adopt(call)  # what VoxEngine.call_sip does with the call it dials
    log.info("dialled")
    call.add_event_listener(CallEvents.Connected, lambda e: log.info("connected"))
    call.add_event_listener(CallEvents.Connected, lambda e: 1 / 0)  # a handler with a bug


VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


def test_an_outbound_session_gets_the_id_of_the_call_it_dials(tmp_path: Path, root: logging.Logger) -> None:
    from voxline.runtime.session import Scenario, Session

    out = io.StringIO()
    configure_logging(log_format="json", level="info", stream=out)
    path = tmp_path / "dial.py"
    path.write_text(OUTBOUND)
    session = Session(Scenario(path))
    assert session.start()
    (leg,) = session.globals["LEGS"]
    leg.call.connected()  # the callee answers: delivered from the leg's I/O, outside the session
    session.terminate()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    got = {r["msg"]: (r.get("session_id"), r.get("call_id")) for r in records}
    call_id = session.call_id
    assert call_id is not None and call_id.startswith("call-")
    assert got == {
        "before dialling": (session.id, None),
        "dialled": (session.id, call_id),
        "connected": (session.id, call_id),
        # Logged by the call itself, outside any handler's context: the leg's events carry the ids.
        "listener for Call.Connected raised": (session.id, call_id),
    }
    assert "ZeroDivisionError" in records[-1]["exc_info"]
