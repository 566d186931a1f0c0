"""The player core with a scripted in-memory provider: turns, events, heard text, the sink contract,
and the half-cascade's truncation rules against a recording client."""

from __future__ import annotations

from typing import Any

import pytest

from voxline.audio import PCMU_8K
from voxline.audio.tone import silence
from voxline.eventtarget import Event, EventTarget
from voxline.media.clock import VirtualMediaClock
from voxline.media.loopback import LoopbackCall
from voxline.media.tts import SpeechSink, TextSpan, TTSPlayer, TTSPlayerEvents, heard_chars
from voxline.openai.events import RealtimeAPIEvents as Ev
from voxline.tts.cascade import HalfCascade


class Stream:
    def __init__(self, sink: SpeechSink) -> None:
        self.sink = sink
        self.texts: list[str] = []
        self.ended = False
        self.cancelled = False

    def send_text(self, text: str) -> None:
        self.texts.append(text)

    def end(self) -> None:
        self.ended = True

    def cancel(self) -> None:
        self.cancelled = True

    def speak(self, ms: int, spans: list[TextSpan] | None = None) -> None:
        if spans:
            self.sink.timings(spans)
        self.sink.audio(silence(ms, PCMU_8K))


class Provider:
    media_format = PCMU_8K

    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.closed = False

    def open_stream(self, sink: SpeechSink) -> Stream:
        self.streams.append(Stream(sink))
        return self.streams[-1]

    def close(self) -> None:
        self.closed = True


def setup() -> tuple[TTSPlayer, Provider, LoopbackCall, VirtualMediaClock, list[Event]]:
    clock = VirtualMediaClock()
    provider = Provider()
    player = TTSPlayer(provider, clock)
    call = LoopbackCall(clock, send_silence=False)
    call.answer()
    player.send_media_to(call)
    events: list[Event] = []
    for name in TTSPlayerEvents:
        player.add_event_listener(name, events.append)
    return player, provider, call, clock, events


def test_heard_chars_extends_to_the_end_of_the_word_in_progress() -> None:
    text = "Hello big world"
    spans = [TextSpan(0, 5, 0, 500), TextSpan(6, 9, 600, 900), TextSpan(10, 15, 1000, 1500)]
    assert heard_chars(text, spans, 0) == 0
    assert heard_chars(text, spans, 1) == 5
    assert heard_chars(text, spans, 650) == 9
    assert heard_chars(text, spans, 5000) == 15
    assert heard_chars(text, [TextSpan(6, 7, 600, 610)], 605) == 9  # a character span


def test_turns_events_and_the_first_text_at_creation() -> None:
    clock = VirtualMediaClock()
    provider = Provider()
    player = TTSPlayer(provider, clock, text="Hi ")
    assert provider.streams[0].texts == ["Hi "]
    first = player.turn_id
    assert player.append("there.") == first
    player.flush()
    assert provider.streams[0].ended and player.turn_id is None
    second = player.append("Next turn.")
    assert second != first and len(provider.streams) == 2
    with pytest.raises(TypeError, match="text must be a string"):
        player.append(None)  # type: ignore[arg-type]
    player.close()
    assert provider.closed and provider.streams[1].cancelled
    with pytest.raises(RuntimeError, match="closed"):
        player.append("again")


def test_finished_when_the_provider_is_done_and_the_audio_has_left() -> None:
    player, provider, _call, clock, events = setup()
    player.append("One two three.")
    player.flush()
    stream = provider.streams[0]
    stream.speak(200)
    assert [e.name for e in events] == [TTSPlayerEvents.PlaybackStarted]
    clock.advance(400)  # the buffer ran dry, but the provider has not finished: not finished yet
    assert [e.name for e in events] == [TTSPlayerEvents.PlaybackStarted]
    stream.speak(100)
    stream.sink.done()
    clock.advance(200)
    assert [e.name for e in events] == [TTSPlayerEvents.PlaybackStarted, TTSPlayerEvents.PlaybackFinished]
    assert events[-1].text == "One two three." and not player.playing and not player.generating


def test_a_blank_turn_finishes_without_audio() -> None:
    player, provider, _, _, events = setup()
    player.append(" ")
    player.flush()
    provider.streams[0].sink.done()
    assert [e.name for e in events] == [TTSPlayerEvents.PlaybackFinished]


def test_clear_silences_at_once_cancels_and_reports_the_heard_text() -> None:
    player, provider, call, clock, events = setup()
    player.append("Hello big world")
    stream = provider.streams[0]
    stream.speak(1500, [TextSpan(0, 5, 0, 500), TextSpan(6, 9, 600, 900), TextSpan(10, 15, 1000, 1500)])
    clock.advance(640)
    heard = player.clear_buffer()
    assert heard is not None
    assert (heard.heard, heard.heard_ms, heard.received_ms) == ("Hello big", 660, 1500)
    assert heard.interrupted and not heard.estimated and stream.cancelled
    assert events[-1].name == TTSPlayerEvents.Interrupted and events[-1].heard == heard
    cleared_at = clock.now_ms()
    stream.speak(500)  # late audio of the cancelled turn is dropped
    clock.advance(500)
    assert [r for r in call.received if r.time_ms > cleared_at] == []
    assert player.clear_buffer() is None  # nothing left to cut


def test_a_reporting_sink_is_the_judge_of_what_was_heard() -> None:
    clock = VirtualMediaClock()
    provider = Provider()
    player = TTSPlayer(provider, clock)
    call = LoopbackCall(clock, send_silence=False, acknowledge=True, playout_delay_ms=200)
    call.answer()
    player.send_media_to(call)
    player.append("Hello big world")
    provider.streams[0].speak(1500, [TextSpan(0, 5, 0, 500), TextSpan(6, 9, 600, 900)])
    clock.advance(640)
    heard = player.clear_buffer()
    assert heard is not None and heard.heard_ms <= 460 and heard.heard == "Hello"


class RecordingClient(EventTarget):
    closed = False

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def conversation_item_delete(self, parameters: dict[str, Any]) -> None:
        self.sent.append(("delete", parameters))

    def conversation_item_create(self, parameters: dict[str, Any]) -> None:
        self.sent.append(("create", parameters))

    def server(self, name: Ev, data: dict[str, Any]) -> None:
        self._dispatch(Event(name=name, client=self, data=data))


def test_the_cut_waits_for_the_interrupted_response_to_end() -> None:
    player, provider, _, clock, _ = setup()
    client = RecordingClient()
    cascade = HalfCascade(client, player)
    client.server(Ev.ResponseCreated, {"response": {"id": "resp_1"}})
    client.server(Ev.ResponseOutputItemAdded, {"response_id": "resp_1", "item": {"id": "item_a"}})
    client.server(Ev.ConversationItemAdded, {"previous_item_id": "item_user", "item": {"id": "item_a"}})
    for delta in ("Hello ", "big ", "world"):
        client.server(Ev.ResponseOutputTextDelta, {"item_id": "item_a", "content_index": 0, "delta": delta})
    stream = provider.streams[0]
    assert stream.texts == ["Hello ", "big ", "world"]
    stream.speak(1500, [TextSpan(0, 5, 0, 500), TextSpan(6, 9, 600, 900), TextSpan(10, 15, 1000, 1500)])
    clock.advance(200)
    client.server(Ev.InputAudioBufferSpeechStarted, {})
    assert client.sent == []  # the response is still active
    client.server(Ev.ResponseOutputTextDelta, {"item_id": "item_a", "content_index": 0, "delta": " more"})
    assert len(provider.streams) == 1 and stream.texts[-1] == "world"  # not spoken after the cut
    client.server(Ev.ResponseDone, {"response": {"id": "resp_1", "status": "cancelled"}})
    assert client.sent == [
        ("delete", {"item_id": "item_a"}),
        (
            "create",
            {
                "previous_item_id": "item_user",
                "item": {
                    "id": "item_a",
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello"}],
                },
            },
        ),
    ]
    assert [c.text for c in cascade.truncations] == ["Hello"]


def test_an_item_heard_in_full_is_left_alone() -> None:
    player, provider, _, clock, _ = setup()
    client = RecordingClient()
    HalfCascade(client, player)
    client.server(Ev.ResponseOutputTextDelta, {"item_id": "item_a", "content_index": 0, "delta": "Hi."})
    client.server(Ev.ResponseOutputTextDone, {"item_id": "item_a", "content_index": 0, "text": "Hi."})
    stream = provider.streams[0]
    assert stream.ended
    stream.speak(300, [TextSpan(0, 3, 0, 300)])
    stream.sink.done()
    clock.advance(1000)
    client.server(Ev.InputAudioBufferSpeechStarted, {})
    assert client.sent == []


def test_turns_play_in_order_even_when_a_later_one_renders_first() -> None:
    player, provider, call, clock, events = setup()
    player.append("First turn.")
    player.flush()
    player.append("Second.")
    player.flush()
    first, second = provider.streams
    second.speak(200)  # the provider finished the short second turn first
    second.sink.done()
    assert call.received == [] and player.generating
    first.speak(300)
    assert len(events) == 1 and player.received_ms(events[0].turn_id) == 300
    first.sink.done()
    clock.advance(1000)
    started = [e.turn_id for e in events if e.name == TTSPlayerEvents.PlaybackStarted]
    finished = [e.text for e in events if e.name == TTSPlayerEvents.PlaybackFinished]
    assert finished == ["First turn.", "Second."] and len(started) == 2
    # The first turn's 300 ms came out before any of the second's.
    sources = [r.frame.timestamp_ms for r in call.received]
    assert sources == sorted(sources) and len(call.received) == 25
    assert not player.generating and not player.playing
