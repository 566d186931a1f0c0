"""Input audio: append/commit/clear, formats, server VAD timing from sample counts, transcription."""

from __future__ import annotations

import base64

from voxline.audio import PCM16_24K, PCMU_8K
from voxline.audio.g711 import ulaw_encode
from voxline.audio.resample import Resampler
from voxline.audio.tone import silence, tone
from voxline.testing import FakeRealtimeServer

from .conftest import RawClient, open_client, types

VAD_OFF = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


def utterance(lead_ms: int, speech_ms: int, tail_ms: int, rate: int = 24000) -> bytes:
    fmt = PCM16_24K if rate == 24000 else None
    assert fmt is not None
    return silence(lead_ms, fmt) + tone(440.0, speech_ms, rate) + silence(tail_ms, fmt)


async def vad_off(client: RawClient) -> None:
    await client.send("session.update", session=VAD_OFF)
    assert (await client.recv())["type"] == "session.updated"


async def test_manual_commit_makes_a_user_audio_item(server: FakeRealtimeServer, client: RawClient) -> None:
    await vad_off(client)
    audio = tone(440.0, 300, 24000)
    await client.append(audio)
    await client.send("input_audio_buffer.commit")
    events = [await client.recv() for _ in range(3)]
    assert types(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    item = events[1]["item"]
    assert events[0]["item_id"] == item["id"]
    assert item["role"] == "user"
    assert item["content"] == [{"type": "input_audio", "transcript": None}]
    connection = await server.wait_for_session()
    assert connection.input_audio == audio
    assert connection.item_audio(item["id"]) == audio
    server.assert_no_violations()


async def test_commit_needs_100ms(server: FakeRealtimeServer, client: RawClient) -> None:
    await vad_off(client)
    await client.send("input_audio_buffer.commit", event_id="c1")
    error = (await client.recv())["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["event_id"] == "c1"
    assert error["message"].endswith("Expected at least 100ms of audio, but buffer only has 0.00ms of audio.")
    await client.append(tone(440.0, 50, 24000))
    await client.send("input_audio_buffer.commit")
    assert "buffer only has 50.00ms of audio" in (await client.recv())["error"]["message"]


async def test_clear_empties_the_buffer(server: FakeRealtimeServer, client: RawClient) -> None:
    await vad_off(client)
    await client.append(tone(440.0, 300, 24000))
    await client.send("input_audio_buffer.clear")
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    await client.send("input_audio_buffer.commit")
    assert (await client.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
    # Everything appended stays visible to the test, cleared or not.
    assert len((await server.wait_for_session()).input_audio) == 300 * 48


async def test_server_vad_turn_with_timing_from_sample_counts(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.append(utterance(500, 800, 600))
    events = await client.until("response.created")
    assert types(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    started, stopped, committed = events[:3]
    # Speech begins at 500 ms; audio_start_ms includes the 300 ms prefix padding.
    assert started["audio_start_ms"] == 200
    # 200 ms of silence after the speech ends at 1300 ms.
    assert stopped["audio_end_ms"] == 1500
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == events[3]["item"]["id"]
    await client.until("response.done")
    connection = await server.wait_for_session()
    # The item holds the audio from audio_start_ms to audio_end_ms.
    assert len(connection.item_audio(started["item_id"])) == (1500 - 200) * 48
    server.assert_no_violations()


async def test_vad_settings_and_chunking_do_not_change_timing(server: FakeRealtimeServer) -> None:
    for chunk in (37, 960, 4801):  # odd sizes split samples across appends
        client, _ = await open_client(server)
        detection = {
            "type": "server_vad",
            "prefix_padding_ms": 100,
            "silence_duration_ms": 500,
            "create_response": False,
        }
        await client.send(
            "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
        )
        await client.recv()
        await client.append(utterance(400, 600, 700), chunk=chunk)
        events = await client.until("conversation.item.done")
        assert events[0]["audio_start_ms"] == 300
        assert events[1]["audio_end_ms"] == 1500
        await client.ws.close()


async def test_create_response_false_and_vad_off(server: FakeRealtimeServer, client: RawClient) -> None:
    detection = {"type": "server_vad", "create_response": False}
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
    )
    await client.recv()
    await client.append(utterance(100, 400, 400))
    await client.until("conversation.item.done")
    await vad_off(client)
    await client.append(utterance(100, 400, 400))
    await client.send("input_audio_buffer.clear")
    # With VAD off nothing happens until the client acts: the next event answers the clear.
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    connection = await server.wait_for_session()
    assert not any(e["type"] == "response.created" for e in connection.sent)


async def test_pcmu_input_is_decoded_for_vad_and_kept_as_received(
    server: FakeRealtimeServer, client: RawClient
) -> None:
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    )
    await client.recv()
    pcm8k = silence(300, PCMU_8K)
    resampler = Resampler(24000, 8000)
    speech = ulaw_encode(resampler.process(tone(440.0, 600, 24000)) + resampler.flush())
    audio = pcm8k + speech + pcm8k
    await client.append(audio, chunk=160)
    events = await client.until("conversation.item.done")
    assert events[0]["audio_start_ms"] == 0  # 300 ms lead minus 300 ms padding
    assert 1090 <= events[1]["audio_end_ms"] <= 1110
    connection = await server.wait_for_session()
    assert connection.input_audio == audio


async def test_input_transcription_when_enabled(server: FakeRealtimeServer, client: RawClient) -> None:
    server.script_transcription("Hey, can you hear me?")
    session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    await client.send("session.update", session=session)
    await client.recv()
    await client.append(utterance(100, 500, 300))
    events = await client.until("conversation.item.input_audio_transcription.completed")
    deltas = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = events[-1]
    item_id = events[0]["item_id"]
    assert "".join(d["delta"] for d in deltas) == "Hey, can you hear me?"
    assert all(d["item_id"] == item_id and d["content_index"] == 0 and d["obfuscation"] for d in deltas)
    assert completed["transcript"] == "Hey, can you hear me?"
    assert completed["usage"]["type"] == "tokens"
    await client.until("response.done")
    await client.send("conversation.item.retrieve", item_id=item_id)
    retrieved = await client.until("conversation.item.retrieved")
    content = retrieved[-1]["item"]["content"][0]
    assert content["transcript"] == "Hey, can you hear me?"
    assert base64.b64decode(content["audio"]) == (await server.wait_for_session()).item_audio(item_id)


async def test_transcription_session_transcribes_without_responding(server: FakeRealtimeServer) -> None:
    server.script_transcription("one two")
    client, _ = await open_client(server, "?intent=transcription")
    session = {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    await client.send("session.update", session=session)
    assert (await client.recv())["session"]["object"] == "realtime.transcription_session"
    await client.append(utterance(100, 400, 300))
    events = await client.until("conversation.item.input_audio_transcription.completed")
    assert events[-1]["transcript"] == "one two"
    await client.send("response.create")
    assert (await client.recv())["type"] == "error"
    connection = await server.wait_for_session()
    assert not any(e["type"] in ("response.created", "rate_limits.updated") for e in connection.sent)
    await client.ws.close()


async def test_idle_timeout_on_the_audio_clock(server: FakeRealtimeServer, client: RawClient) -> None:
    detection = {"type": "server_vad", "idle_timeout_ms": 5000}
    await client.send(
        "session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
    )
    await client.recv()
    await client.append(bytes(48 * 1000))  # no response yet: no idle timer
    await client.send("response.create")
    await client.until("rate_limits.updated")
    # The timer starts when the response ends (at 1000 ms of input audio): 4.99 s later, nothing yet.
    await client.append(bytes(48 * 4990))
    await client.send("input_audio_buffer.clear")
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    await client.append(bytes(48 * 100))
    events = await client.until("response.created")
    assert types(events) == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    triggered = events[0]
    assert (triggered["audio_start_ms"], triggered["audio_end_ms"]) == (5990, 6000)
    assert triggered["item_id"] == events[1]["item_id"]
