"""Long calls on the fake with a session cap, on a virtual clock: planned recycle between turns,
``session_expired`` mid-turn, reconnect after a 1006 drop, and the reconnect limit
(docs/long-calls.md). The fake and the client count time on the same virtual media clock, so a
70-minute call takes a second or two."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from voxline import OpenAI
from voxline.audio.g711 import ulaw_encode
from voxline.audio.tone import tone
from voxline.eventtarget import Event
from voxline.media import send_media_between
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.testing import FakeRealtimeServer, FunctionCall, RealtimeConnection, ScriptedResponse

Ev = OpenAI.RealtimeAPIEvents
E = OpenAI.Events
KEY = "sk-long"
NO_VAD = {
    "session": {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {"input": {"turn_detection": None}},
    }
}
MINUTE_MS = 60_000


class Recorder:
    """Every event of the given names, in order, and a way to wait for the n-th of one."""

    def __init__(self, client: OpenAI.RealtimeAPIClient, *names: Any) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        for name in names:
            client.add_event_listener(name, self)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def names(self) -> list[str]:
        return [str(e.name).rsplit(".", 1)[-1] for e in self.events]

    def of(self, name: Any) -> list[Event]:
        return [e for e in self.events if e.name == name]

    async def count(self, name: Any, n: int, timeout: float = 5.0) -> list[Event]:
        async def wait() -> None:
            while len(self.of(name)) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return self.of(name)


@pytest.fixture
def clock() -> VirtualMediaClock:
    return VirtualMediaClock()


@pytest.fixture
async def server(clock: VirtualMediaClock) -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(
        api_keys={KEY}, max_session_s=3600, clock=lambda: clock.now_ms() / 1000
    ) as srv:
        yield srv


async def connect(
    server: FakeRealtimeServer, clock: VirtualMediaClock, **params: Any
) -> tuple[OpenAI.RealtimeAPIClient, LoopbackCall, RealtimeConnection]:
    client = await OpenAI.create_realtime_api_client(
        api_key=KEY, base_url=server.base_url, media_clock=clock, summary_model=None, **params
    )
    connection = await server.wait_for_session()
    client.session_update(NO_VAD)
    call = LoopbackCall(clock, send_silence=False)
    call.answer()
    send_media_between(call, client)
    await connection.wait_for_sent("session.updated", count=2)  # ours and the G.711 negotiation
    return client, call, connection


def voice(k: int) -> bytes:
    return tone(300 + 20 * k, 200, 8000)  # 200 ms: 10 whole frames, different for each turn


def texts(connection: RealtimeConnection) -> list[tuple[str, str]]:
    """(role or type, text) of each item the session holds."""
    out = []
    for item in connection.items:
        if item["type"] == "message":
            parts = item.get("content", [])
            text = " ".join(str(p.get("text") or p.get("transcript") or "") for p in parts)
            out.append((item["role"], text))
        else:
            out.append((item["type"], str(item.get("output") or item.get("name") or "")))
    return out


async def turn(
    client: OpenAI.RealtimeAPIClient,
    server: FakeRealtimeServer,
    call: LoopbackCall,
    clock: VirtualMediaClock,
    rec: Recorder,
    k: int,
) -> None:
    """The caller speaks (audio appended), the scenario sends the transcript as text, the model
    answers with audio that plays out."""
    call.play(voice(k))
    clock.advance(240)
    client.conversation_item_create(
        {
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"turn {k}"}],
            }
        }
    )
    server.script(ScriptedResponse(text=f"answer {k}", audio=tone(500, 100, 24000)))
    client.response_create({})
    await rec.count(Ev.ResponseDone, k + 1)
    clock.advance(200)  # the answer's 100 ms play out


async def test_a_70_minute_call_recycles_once_between_turns_and_loses_no_audio(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, call, first = await connect(
        server, clock, max_session_duration_s=3300, on_web_socket_close=closes.append
    )
    client_id = client.id()
    rec = Recorder(client, Ev.ResponseDone, Ev.SessionCreated, Ev.SessionUpdated, Ev.Error, E.SessionRecycled)
    turns = list(range(14))  # one turn every 5 minutes: 0, 5, ... 65 min
    for k in turns:
        clock.advance_to(k * 5 * MINUTE_MS)
        await turn(client, server, call, clock, rec, k)
    clock.advance_to(70 * MINUTE_MS)

    assert len(server.sessions) == 2
    second = server.sessions[1]
    recycled = rec.of(E.SessionRecycled)
    assert [e.data["reason"] for e in recycled] == ["max_session_duration"]
    # Recycled at 55 min, between turns: the 12th turn (k = 11) is the first in the new session.
    assert [e["type"] for e in first.received].count("response.create") == 11
    assert [e["type"] for e in second.received].count("response.create") == 3
    # No caller audio lost across the switch, byte for byte and in order.
    sent = b"".join(ulaw_encode(voice(k)) for k in turns)
    assert len(first.input_audio) + len(second.input_audio) == len(sent)
    assert first.input_audio + second.input_audio == sent
    assert second.input_audio.startswith(ulaw_encode(voice(11)))
    # The new session got the same configuration and the earlier turns as text.
    assert second.session["instructions"] == "Be brief."
    assert second.session["audio"]["input"]["turn_detection"] is None
    assert second.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    held = texts(second)
    for k in range(11):
        assert ("user", f"turn {k}") in held and ("assistant", f"answer {k}") in held
    assert (
        held.index(("user", "turn 10"))
        < held.index(("assistant", "answer 10"))
        < held.index(("user", "turn 11"))
    )
    # Listeners: one session.created, no replay answers, every response, nothing closed, same id.
    after = rec.names()[rec.events.index(recycled[0]) :]
    assert "SessionCreated" not in after and "SessionUpdated" not in after  # the replay's answers
    assert len(rec.of(Ev.ResponseDone)) == 14
    assert rec.of(Ev.Error) == []
    assert closes == [] and client.id() == client_id and not client.closed
    assert first.close_code == 1000  # the client closed the old session itself
    assert not any(e.get("error", {}).get("code") == "session_expired" for e in server.sent)
    server.assert_no_violations()
    client.close()
    await client.wait_closed()
    assert len(closes) == 1


async def test_session_expired_mid_turn_moves_to_a_new_session_at_once(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    client, call, first = await connect(server, clock, max_session_duration_s=3300)
    rec = Recorder(client, Ev.ResponseDone, Ev.Error, Ev.ResponseCreated, E.SessionRecycled)
    await turn(client, server, call, clock, rec, 0)
    clock.advance_to(54 * MINUTE_MS)
    # A long answer still streaming when the planned recycle comes due, and until the cap.
    server.script(
        ScriptedResponse(text="a very long answer", audio=tone(500, 3000, 24000), stall_after_ms=400)
    )
    client.response_create({})
    await rec.count(Ev.ResponseCreated, 2)
    await first.wait_for_sent("response.output_audio.delta")
    clock.advance_to(60 * MINUTE_MS)  # the recycle waited: the model is still speaking
    assert len(server.sessions) == 1
    call.play(voice(1))
    clock.advance(240)  # the caller's audio reaches the fake after its cap: session_expired, close 1001
    recycled = await rec.count(E.SessionRecycled, 1)
    assert recycled[0].data["reason"] == "session_expired"
    assert first.close_code == 1001
    assert any(e.get("error", {}).get("code") == "session_expired" for e in first.sent)
    assert rec.of(Ev.Error) == []  # handled: not the scenario's error
    second = server.sessions[1]
    await second.wait_for("conversation.item.create", count=3)
    held = texts(second)
    assert ("user", "turn 0") in held and ("assistant", "answer 0") in held
    # The answer cut by the expiry is carried with what had been said of it, marked.
    assert any(role == "assistant" and text.endswith("[cut off]") for role, text in held)
    call.play(voice(2))
    clock.advance(240)
    await second.wait_for("input_audio_buffer.append", count=10)
    assert second.input_audio.endswith(ulaw_encode(voice(2)))
    server.script(ScriptedResponse(text="still here", audio=tone(500, 100, 24000)))
    client.response_create({})
    await rec.count(Ev.ResponseDone, 2)  # the listeners go on with the new session
    server.assert_no_violations()
    client.close()


async def test_a_1006_drop_mid_response_reconnects_with_the_context(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, call, first = await connect(
        server, clock, reconnect={"max_attempts": 3, "backoff_s": 0.01}, on_web_socket_close=closes.append
    )
    rec = Recorder(
        client,
        Ev.ResponseDone,
        Ev.SessionCreated,
        Ev.Error,
        E.SessionRecycled,
        E.Reconnecting,
        E.Reconnected,
        E.ReconnectFailed,
        Ev.ResponseOutputAudioTranscriptDelta,
    )
    await turn(client, server, call, clock, rec, 0)
    said = len(rec.of(Ev.ResponseOutputAudioTranscriptDelta))
    server.script(
        ScriptedResponse(text="interrupted answer", audio=tone(500, 2000, 24000), stall_after_ms=400)
    )
    client.response_create({})
    await rec.count(Ev.ResponseOutputAudioTranscriptDelta, said + 1)  # the client has heard some of it
    first.drop()
    await rec.count(E.Reconnected, 1)
    shown = [n for n in rec.names() if "Transcript" not in n]
    assert shown[-3:] == ["Reconnecting", "SessionRecycled", "Reconnected"]
    attempt = rec.of(E.Reconnecting)[0].data
    assert attempt["attempt"] == 1 and attempt["code"] == 1006 and attempt["max_attempts"] == 3
    assert rec.of(E.SessionRecycled)[0].data["reason"] == "reconnect"
    assert rec.of(E.Reconnected)[0].data["attempts"] == 1
    second = server.sessions[1]
    await second.wait_for("conversation.item.create", count=3)
    held = texts(second)
    assert held[:2] == [("user", "turn 0"), ("assistant", "answer 0")]
    assert held[2][0] == "assistant" and held[2][1].endswith("[cut off]")
    assert second.session["instructions"] == "Be brief."
    # The call goes on: caller audio to the new session, answers to the same listeners.
    await turn(client, server, call, clock, rec, 1)
    assert second.input_audio == ulaw_encode(voice(1))
    assert rec.of(Ev.SessionCreated) == [] and rec.of(Ev.Error) == []
    assert closes == [] and not client.closed
    server.assert_no_violations()
    client.close()
    await client.wait_closed()
    assert len(closes) == 1 and closes[0]["code"] == 1000


async def test_reconnect_limit_reached_reports_the_close(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, _call, first = await connect(
        server, clock, reconnect={"max_attempts": 2, "backoff_s": 0.01}, on_web_socket_close=closes.append
    )
    rec = Recorder(client, E.Reconnecting, E.Reconnected, E.ReconnectFailed, E.SessionRecycled)
    server.refuse_handshake(503, "The server is overloaded.")
    first.drop()
    await client.wait_closed()
    assert rec.names() == ["Reconnecting", "Reconnecting", "ReconnectFailed"]
    assert [e.data["attempt"] for e in rec.of(E.Reconnecting)] == [1, 2]
    assert rec.of(E.ReconnectFailed)[0].data["attempts"] == 2
    assert "503" in rec.of(E.ReconnectFailed)[0].data["error"]
    assert len(closes) == 1 and closes[0]["code"] == 1006
    assert client.closed and len(server.sessions) == 1


async def test_without_a_policy_a_drop_is_reported_once_as_before(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, _call, first = await connect(server, clock, on_web_socket_close=closes.append)
    rec = Recorder(client, E.Reconnecting, E.SessionRecycled)
    first.drop()
    await client.wait_closed()
    assert len(closes) == 1 and closes[0]["code"] == 1006
    assert rec.events == [] and len(server.sessions) == 1


async def test_without_recycle_session_expired_is_the_scenarios_error_and_close(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, _call, first = await connect(server, clock, on_web_socket_close=closes.append)
    rec = Recorder(client, Ev.Error, E.SessionRecycled)
    first.expire()
    await client.wait_closed()
    assert [e.data["error"]["code"] for e in rec.of(Ev.Error)] == ["session_expired"]
    error = rec.of(Ev.Error)[0].data["error"]
    assert error["type"] == "invalid_request_error" and "maximum duration" in error["message"]
    assert rec.of(E.SessionRecycled) == []
    assert len(closes) == 1 and closes[0]["code"] == 1001


async def test_a_function_call_without_output_holds_the_recycle(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    client, _call, _first = await connect(server, clock, max_session_duration_s=60)
    rec = Recorder(client, Ev.ResponseDone, Ev.ConversationItemDone, E.SessionRecycled)
    server.script(ScriptedResponse(function_calls=[FunctionCall("lookup", '{"q": "x"}', call_id="call_1")]))
    client.response_create({})
    await rec.count(Ev.ResponseDone, 1)
    clock.advance_to(2 * MINUTE_MS)
    assert len(server.sessions) == 1  # an open function call: not now
    client.conversation_item_create(
        {"item": {"type": "function_call_output", "call_id": "call_1", "output": '{"answer": 42}'}}
    )
    done = await rec.count(Ev.ConversationItemDone, 2)  # the call's item, then its output's
    assert done[-1].data["item"]["type"] == "function_call_output"
    clock.advance(40)
    recycled = await rec.count(E.SessionRecycled, 1)
    assert recycled[0].data["items"] == 2
    second = server.sessions[1]
    await second.wait_for("conversation.item.create", count=2)
    assert [i["type"] for i in second.items] == ["function_call", "function_call_output"]
    assert second.items[0]["call_id"] == "call_1" and second.items[1]["output"] == '{"answer": 42}'
    server.assert_no_violations()
    client.close()


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"max_session_duration_s": 0}, ValueError, "max_session_duration_s"),
        ({"max_session_duration_s": 4000}, ValueError, "max_session_duration_s"),
        ({"max_session_duration_s": "55m"}, TypeError, "max_session_duration_s"),
        ({"reconnect": {"tries": 3}}, TypeError, "reconnect"),
        ({"reconnect": {"max_attempts": 0}}, ValueError, r"reconnect\.max_attempts"),
        ({"reconnect": {"backoff_s": -1}}, ValueError, r"reconnect\.backoff_s"),
        ({"reconnect": 3}, TypeError, "reconnect"),
        ({"carry_over_budget_chars": 0}, ValueError, "carry_over_budget_chars"),
        ({"summary_model": ""}, TypeError, "summary_model"),
    ],
)
async def test_bad_long_call_parameters_are_named(
    params: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await OpenAI.create_realtime_api_client(api_key=KEY, **params)


async def test_session_expired_without_a_new_session_reports_the_close(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, _call, first = await connect(
        server, clock, max_session_duration_s=3300, on_web_socket_close=closes.append
    )
    server.refuse_handshake(503, "The server is overloaded.")
    first.expire()
    await client.wait_closed()
    assert len(closes) == 1 and closes[0]["code"] == 1001
    assert len(server.sessions) == 1


async def test_session_expired_then_a_refused_handshake_goes_on_with_the_reconnect_policy(
    server: FakeRealtimeServer, clock: VirtualMediaClock
) -> None:
    closes: list[dict[str, Any]] = []
    client, call, first = await connect(
        server, clock, reconnect={"backoff_s": 0.01}, on_web_socket_close=closes.append
    )
    rec = Recorder(client, Ev.ResponseDone, Ev.Error, E.SessionRecycled, E.Reconnecting, E.Reconnected)
    await turn(client, server, call, clock, rec, 0)
    server.refuse_handshake(503, "The server is overloaded.", times=1)
    first.expire()
    await rec.count(E.Reconnected, 1)
    assert [n for n in rec.names() if n != "ResponseDone"] == [
        "Reconnecting",
        "SessionRecycled",
        "Reconnected",
    ]
    assert rec.of(E.Reconnecting)[0].data["code"] == 1001
    second = server.sessions[1]
    await second.wait_for("conversation.item.create", count=2)
    assert texts(second) == [("user", "turn 0"), ("assistant", "answer 0")]
    assert closes == []
    client.close()


class RuntimeSession:
    """The runtime's call session as a client sees it (voxline.context.SessionContext)."""

    realtime_base_url: str | None = None
    trace = False

    def adopt(self, resource: Any) -> None:
        pass

    def model_connect(self, error: str | None) -> None:
        pass


@pytest.mark.parametrize(("given", "recycled_at_min"), [({}, 55), ({"max_session_duration_s": None}, None)])
async def test_in_the_runtime_sessions_recycle_at_55_minutes_unless_the_scenario_says_otherwise(
    server: FakeRealtimeServer, clock: VirtualMediaClock, given: dict[str, Any], recycled_at_min: int | None
) -> None:
    from voxline.context import current_session

    token = current_session.set(RuntimeSession())
    try:
        client, _call, _first = await connect(server, clock, **given)
    finally:
        current_session.reset(token)
    rec = Recorder(client, E.SessionRecycled)
    clock.advance_to(55 * MINUTE_MS - 20)
    await asyncio.sleep(0.05)
    assert rec.events == []
    clock.advance(20)
    if recycled_at_min is None:
        await asyncio.sleep(0.05)
        assert rec.events == [] and len(server.sessions) == 1
    else:
        await rec.count(E.SessionRecycled, 1)
        assert len(server.sessions) == 2
    client.close()


async def test_over_the_budget_the_summary_model_folds_the_oldest_turns(
    server: FakeRealtimeServer, clock: VirtualMediaClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Chat Completions request of the summary (pointed at the fake Chat Completions server), its
    summary first in the new session, the newest turns as they were."""
    from voxline.openai import chat
    from voxline.testing.openai_http import ChatReply, FakeOpenAIHTTPServer

    async with FakeOpenAIHTTPServer(api_key=KEY) as chat_server:
        chat_server.script_chat(ChatReply(text="The caller asked numbered questions."))
        real = chat.create_chat_completions_api_client

        async def at_the_fake(**kwargs: Any) -> chat.ChatCompletionsAPIClient:
            return await real(**{**kwargs, "base_url": chat_server.base_url})

        monkeypatch.setattr(chat, "create_chat_completions_api_client", at_the_fake)
        client = await OpenAI.create_realtime_api_client(
            api_key=KEY,
            base_url=server.base_url,
            media_clock=clock,
            carry_over_budget_chars=400,
            max_session_duration_s=600,
        )
        first = await server.wait_for_session()
        client.session_update(NO_VAD)
        call = LoopbackCall(clock, send_silence=False)
        call.answer()
        send_media_between(call, client)
        rec = Recorder(client, Ev.ResponseDone, E.SessionRecycled)
        for k in range(8):
            await turn(client, server, call, clock, rec, k)
        async with asyncio.timeout(5):
            while not chat_server.requests:
                await asyncio.sleep(0.01)
        body = chat_server.requests[0].body
        assert body["model"] == "gpt-4o"
        assert "user: turn 0" in body["messages"][1]["content"]
        async with asyncio.timeout(5):
            while client.carry_over_summary is None:
                await asyncio.sleep(0.01)
        assert client.carry_over_summary == "The caller asked numbered questions."
        clock.advance_to(11 * MINUTE_MS)
        recycled = await rec.count(E.SessionRecycled, 1)
        assert recycled[0].data["summary"] is True
        second = server.sessions[1]
        await second.wait_for("conversation.item.create", count=recycled[0].data["items"])
        held = texts(second)
        assert held[0] == (
            "system",
            "Summary of the conversation so far:\nThe caller asked numbered questions.",
        )
        assert ("user", "turn 0") not in held and held[-1] == ("assistant", "answer 7")
        assert len(first.items) > len(second.items)
        server.assert_no_violations()
        client.close()
