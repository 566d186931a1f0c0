"""The embedded offline backend through voxline's own Realtime client, with real speech.

The caller is a :class:`LoopbackCall` on a virtual media clock speaking espeak-ng audio over a
G.711 line; the backend hears it with webrtcvad + pocketsphinx, answers from Voxy's rules and
speaks with espeak-ng. The protocol expectations are the fake server's client-side ones: a voice
turn's event order, a function call round trip, interruption + truncation, errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_module, require_tool
from voxline import OpenAI
from voxline.audio import PCM16_24K, PCMA_8K, PCMU_8K, AudioFormat
from voxline.eventtarget import Event
from voxline.local.responder import RulesError, load_responder
from voxline.local.server import (
    LOCAL_API_KEY,
    LocalRealtimeBackend,
    configure_runtime,
    default_rules_path,
    setup_error_message,
    start_local_backend,
)
from voxline.local.tts import Synthesizer
from voxline.media import send_media_between
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.runtime.session import Secrets

Ev = OpenAI.RealtimeAPIEvents
ROOT = Path(__file__).resolve().parents[2]
TRANSCRIBE = {"session": {"type": "realtime", "audio": {"input": {"transcription": {"model": "local"}}}}}


@pytest.fixture(scope="module")
def caller_voice() -> Synthesizer:
    require_tool("espeak-ng")
    for module in ("pocketsphinx", "webrtcvad", "yaml", "jsonschema"):
        require_module(module)
    return Synthesizer("en-us+m3", 155, output_rate=8000)


@pytest.fixture
async def backend(caller_voice: Synthesizer) -> AsyncIterator[LocalRealtimeBackend]:
    backend = await start_local_backend(pace=None)  # replies stream at once: tests need not wait
    try:
        yield backend
    finally:
        await backend.close()


class Recorded:
    """Every client event by name, in order, with a way to wait for one."""

    def __init__(self, client: OpenAI.RealtimeAPIClient, names: list[Ev]) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        for name in names:
            client.add_event_listener(name, self._on)

    def _on(self, event: Event) -> None:
        self.events.append((str(event.data.get("type")), dict(event.data)))
        self._changed.set()

    def types(self) -> list[str]:
        return [t for t, _ in self.events]

    async def wait(self, event_type: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        async def until() -> list[dict[str, Any]]:
            while True:
                found = [data for t, data in self.events if t == event_type]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(until(), timeout)


VOICE_TURN = [
    Ev.InputAudioBufferSpeechStarted,
    Ev.InputAudioBufferSpeechStopped,
    Ev.InputAudioBufferCommitted,
    Ev.ConversationItemAdded,
    Ev.ConversationItemDone,
    Ev.ConversationItemInputAudioTranscriptionCompleted,
    Ev.ConversationItemTruncated,
    Ev.ResponseCreated,
    Ev.ResponseOutputItemAdded,
    Ev.ResponseOutputAudioDone,
    Ev.ResponseOutputAudioTranscriptDone,
    Ev.ResponseOutputItemDone,
    Ev.ResponseDone,
    Ev.Error,
]


async def connect(
    backend: LocalRealtimeBackend, clock: VirtualMediaClock, media_format: AudioFormat = PCMU_8K
) -> tuple[OpenAI.RealtimeAPIClient, LoopbackCall, Recorded]:
    client = await OpenAI.create_realtime_api_client(
        api_key=LOCAL_API_KEY, base_url=backend.base_url, media_clock=clock
    )
    recorded = Recorded(client, VOICE_TURN)
    client.session_update(TRANSCRIBE)
    call = LoopbackCall(clock, media_format=media_format)  # a line that sends silence between words
    call.answer()
    send_media_between(call, client)
    connection = await backend.server.wait_for_session()
    await connection.wait_for_sent("session.updated", count=2)
    return client, call, recorded


async def speak(clock: VirtualMediaClock, call: LoopbackCall, voice: Synthesizer, text: str) -> None:
    """The caller says ``text`` then stays quiet for a second (virtual time, yielding to the sockets)."""
    pcm = voice.synthesize(text)
    call.play(pcm, 8000)
    for _ in range((len(pcm) // 16 + 1000) // 20):
        clock.advance(20)
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("media_format", "session_format", "bytes_per_ms"),
    [
        (PCMU_8K, {"type": "audio/pcmu"}, 8),
        (PCMA_8K, {"type": "audio/pcma"}, 8),
        (PCM16_24K, {"type": "audio/pcm", "rate": 24000}, 48),
    ],
)
async def test_voice_turn_events_in_openai_order_with_transcript_and_spoken_reply(
    backend: LocalRealtimeBackend,
    caller_voice: Synthesizer,
    media_format: AudioFormat,
    session_format: dict[str, Any],
    bytes_per_ms: int,
) -> None:
    clock = VirtualMediaClock()
    client, call, recorded = await connect(backend, clock, media_format)
    await speak(clock, call, caller_voice, "what are your opening hours")
    done = (await recorded.wait("response.done"))[0]
    await recorded.wait("conversation.item.input_audio_transcription.completed")
    types = recorded.types()
    turn = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [types.index(t) for t in turn]
    assert positions == sorted(positions), types
    transcript = (await recorded.wait("conversation.item.input_audio_transcription.completed"))[0]
    assert transcript["transcript"] == "what are your opening hours"
    started = (await recorded.wait("input_audio_buffer.speech_started"))[0]
    assert transcript["item_id"] == started["item_id"]
    said = (await recorded.wait("response.output_audio_transcript.done"))[0]["transcript"]
    assert said.startswith("We are open from nine in the morning to six in the evening")
    assert done["response"]["status"] == "completed"
    # The reply is speech in the session's format (the call's: G.711 or 24 kHz PCM), seconds of it.
    connection = backend.server.sessions[0]
    assert connection.session["audio"]["output"]["format"] == session_format
    item_id = done["response"]["output"][0]["id"]
    assert len(connection.item_audio(item_id)) > bytes_per_ms * 3000
    backend.server.assert_no_violations()
    client.close()


async def test_function_call_round_trip_and_follow_up(
    backend: LocalRealtimeBackend, caller_voice: Synthesizer
) -> None:
    clock = VirtualMediaClock()
    client, call, recorded = await connect(backend, clock)
    await speak(clock, call, caller_voice, "check my order 1 2 3 4")
    items = [
        e["item"]
        for e in await recorded.wait("response.output_item.done", count=2)
        if e["item"]["type"] == "function_call"
    ]
    assert [(i["name"], json.loads(i["arguments"])) for i in items] == [("check_order", {"order_id": "1234"})]
    spoken = (await recorded.wait("response.output_audio_transcript.done"))[0]["transcript"]
    assert spoken == "One moment, I am checking order 1 2 3 4."
    await recorded.wait("response.done")
    output = {"order_id": "1234", "status": "shipped", "delivery": "tomorrow"}
    client.conversation_item_create(
        {
            "item": {
                "type": "function_call_output",
                "call_id": items[0]["call_id"],
                "output": json.dumps(output),
            }
        }
    )
    client.response_create({})
    follow_up = (await recorded.wait("response.output_audio_transcript.done", count=2))[1]["transcript"]
    assert follow_up == "Order 1 2 3 4 is shipped."
    backend.server.assert_no_violations()
    client.close()


async def test_recognition_in_worker_processes_hears_the_same(caller_voice: Synthesizer) -> None:
    backend = await start_local_backend(pace=None, recognition="process")
    try:
        clock = VirtualMediaClock()
        client, call, recorded = await connect(backend, clock)
        await speak(clock, call, caller_voice, "check my order 1 2 3 4")
        heard = await recorded.wait("conversation.item.input_audio_transcription.completed")
        assert heard[0]["transcript"] == "check my order one two three four"
        items = [e["item"] for e in await recorded.wait("response.output_item.done", count=2)]
        assert (items[-1]["name"], json.loads(items[-1]["arguments"])) == (
            "check_order",
            {"order_id": "1234"},
        )
        await recorded.wait("response.done")
        # A worker that dies costs its turn only: the next turn gets a new worker.
        pids = [r.pid for r in backend.engine._pool._all]
        assert pids and all(pid is not None for pid in pids)
        for pid in pids:
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        await speak(clock, call, caller_voice, "goodbye")
        failed = await backend.server.wait_for_sent(
            "conversation.item.input_audio_transcription.failed", timeout=15
        )
        assert failed[0]["error"]["code"] == "audio_unintelligible"
        await speak(clock, call, caller_voice, "goodbye")
        heard = await recorded.wait(
            "conversation.item.input_audio_transcription.completed", count=2, timeout=30
        )
        assert heard[1]["transcript"] == "goodbye"
        client.close()
    finally:
        await backend.close()


async def test_speech_during_a_response_cancels_it_and_the_unheard_part_is_truncated(
    caller_voice: Synthesizer,
) -> None:
    # Streamed at half real time, the greeting is still in progress when the caller talks.
    backend = await start_local_backend(pace=0.5)
    try:
        clock = VirtualMediaClock()
        client, call, recorded = await connect(backend, clock)
        # Barge-in as the example scenario does it: stop playing at once (the client truncates).
        client.add_event_listener(Ev.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer())
        client.response_create({})
        await backend.server.wait_for_sent("response.output_audio.delta", count=3, timeout=15)
        for _ in range(25):  # half a second of the greeting plays
            clock.advance(20)
            await asyncio.sleep(0)
        heard_before = call.played_ms(client)
        await speak(clock, call, caller_voice, "hello")
        cancelled = (await recorded.wait("response.done"))[0]["response"]
        assert cancelled["status"] == "cancelled"
        assert cancelled["status_details"]["reason"] == "turn_detected"
        truncated = (await recorded.wait("conversation.item.truncated"))[0]
        greeting_id = cancelled["output"][0]["id"]
        assert truncated["item_id"] == greeting_id
        # Truncated to what the caller heard: the half second before speech, plus the ~0.3 s it
        # takes the detector to hear the caller (never the whole greeting).
        assert heard_before <= truncated["audio_end_ms"] <= heard_before + 600
        connection = backend.server.sessions[0]
        assert len(connection.item_audio(greeting_id)) == truncated["audio_end_ms"] * 8
        connection.set_pace(None)  # the answer may stream at full speed
        # The caller's turn then gets its own answer.
        answer = (await recorded.wait("response.done", count=2))[1]["response"]
        assert answer["status"] == "completed"
        assert answer["output"][0]["content"][0]["transcript"] == "Hello! How can I help you today?"
        backend.server.assert_no_violations()
        client.close()
    finally:
        await backend.close()


async def test_unsupported_features_get_openai_style_errors_and_the_session_goes_on(
    backend: LocalRealtimeBackend,
) -> None:
    clock = VirtualMediaClock()
    client, _call, recorded = await connect(backend, clock)
    mcp = {"type": "mcp", "server_label": "shop", "server_url": "https://example.invalid/mcp"}
    client.session_update({"session": {"type": "realtime", "tools": [mcp]}})
    error = (await recorded.wait("error"))[0]["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unsupported_feature"
    assert error["param"] == "session.tools[0].type"
    assert "embedded offline backend" in error["message"]
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    client.conversation_item_create({"item": {"type": "message", "role": "user", "content": [image]}})
    error = (await recorded.wait("error", count=2))[1]["error"]
    assert (error["code"], error["param"]) == ("unsupported_feature", "item.content[0].type")
    # A text turn still works: the rules answer typed text too.
    client.conversation_item_create(
        {"item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "goodbye"}]}}
    )
    client.response_create({})
    said = (await recorded.wait("response.output_audio_transcript.done"))[0]["transcript"]
    assert said == "Thank you for calling the Maple Street shop. Goodbye!"
    client.close()


async def test_a_bad_rules_file_is_named_with_its_line(tmp_path: Path, caller_voice: Synthesizer) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        textwrap.dedent(
            """\
            greeting: Hi
            fallback: Sorry?
            intents:
              - name: hours
                phrases: [when are you open]
                reply: From nine to five.
                colour: blue
            """
        )
    )
    with pytest.raises(RulesError) as caught:
        await start_local_backend(rules=rules)
    assert str(caught.value).startswith(f"{rules}:7:")
    assert "colour" in str(caught.value)
    # The CLI says the same and exits 2, before taking any call.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxline",
        "run",
        str(ROOT / "examples" / "inbound_agent.py"),
        "--backend",
        "local",
        "--rules",
        str(rules),
        "--sip",
        "127.0.0.1:0",
        "--http",
        "off",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2, (out, err)
    assert f"{rules}:7:" in err.decode()


async def test_a_responder_module_with_a_syntax_error_is_named_with_its_line(
    tmp_path: Path, caller_voice: Synthesizer
) -> None:
    responder = tmp_path / "agent.py"
    responder.write_text("PHRASES = ['hello']\n\ndef respond(conversation)\n    return 'Hi'\n")
    with pytest.raises(SyntaxError) as caught:
        await start_local_backend(rules=responder)
    assert setup_error_message(caught.value).startswith(f"{responder}:3: syntax error")
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxline",
        "demo",
        "--rules",
        str(responder),
        "--out",
        str(tmp_path / "out"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    out, err = await asyncio.wait_for(demo.communicate(), 30)
    assert demo.returncode == 1, (out, err)
    assert f"voxline demo: {responder}:3: syntax error" in out.decode()


async def test_the_runtime_uses_the_backend_only_without_a_key(caller_voice: Synthesizer) -> None:
    class FakeRuntime:
        def __init__(self, env: dict[str, str]) -> None:
            self.secrets = Secrets(env=env)
            self.realtime_base_url: str | None = None

    with_key = FakeRuntime({"OPENAI_API_KEY": "sk-real"})
    assert await configure_runtime(with_key) is None
    assert with_key.realtime_base_url is None
    assert with_key.secrets.get("OPENAI_API_KEY") == "sk-real"

    said: list[str] = []
    without = FakeRuntime({})
    backend = await configure_runtime(without, announce=said.append)
    assert backend is not None
    try:
        assert without.realtime_base_url == backend.base_url
        assert without.secrets.get("OPENAI_API_KEY") == LOCAL_API_KEY
        assert said == [f"no OPENAI_API_KEY: using the embedded offline backend at {backend.ws_url}"]
        assert backend.ws_url.startswith("ws://127.0.0.1:")
    finally:
        await backend.close()


async def test_a_runtime_backend_drops_its_protocol_records(caller_voice: Synthesizer) -> None:
    responder = await asyncio.to_thread(load_responder, default_rules_path())
    backend = await LocalRealtimeBackend(responder, keep_history=False).start(preload_rates=())
    try:
        clock = VirtualMediaClock()
        client, _call, _ = await connect(backend, clock)
        connection = backend.server.sessions[0]
        for _ in range(10):  # the line's silence is appended
            clock.advance(20)
            await asyncio.sleep(0)
        await connection.wait_for("input_audio_buffer.append")
        backend.trim_history()
        assert not connection.core.received and not backend.server.sent and not connection.input_audio
        assert backend.server.sessions == [connection]  # still open: kept
        client.close()
        await connection.wait_closed()
        backend.trim_history()
        assert backend.server.sessions == []
    finally:
        await backend.close()


def test_the_packaged_defaults_are_the_examples() -> None:
    assert default_rules_path().read_text() == (ROOT / "examples" / "agent_rules.yaml").read_text()
    packaged_scenario = default_rules_path().with_name("inbound_agent.py")
    assert packaged_scenario.read_text() == (ROOT / "examples" / "inbound_agent.py").read_text()
