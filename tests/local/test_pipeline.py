"""The parts together, as the offline backend strings them: a caller on a mu-law phone line is cut
into turns by the VAD, each turn is recognised with the responder's vocabulary, the responder picks
the reply, and the reply is synthesised for the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voxline.audio import PCMU_8K
from voxline.audio.g711 import ulaw_decode
from voxline.local.asr import Recognizer
from voxline.local.responder import RulesResponder
from voxline.local.tts import Synthesizer
from voxline.local.vad import SpeechStarted, SpeechStopped, VadParams, VoiceActivityDetector

pytestmark = pytest.mark.usefixtures("pocketsphinx", "webrtcvad")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_rules.yaml"
CALLER = ["what are your opening hours", "check my order four two one nine", "thank you goodbye"]


def test_caller_turns_to_replies(speech: Callable[..., bytes], synthesizer: Synthesizer) -> None:
    rate = 8000
    gap = bytes(rate * 2)  # 1 s between turns
    line = gap + b"".join(ulaw_decode(speech(text, PCMU_8K, trim=True)) + gap for text in CALLER)

    voxy = RulesResponder.load(EXAMPLE)
    vocabulary = voxy.vocabulary
    recognizer = Recognizer.from_phrases(vocabulary.phrases, slots=vocabulary.slots, input_rate=rate)
    vad = VoiceActivityDetector(rate, VadParams(prefix_padding_ms=300, silence_duration_ms=500))

    conversation: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_audio", "transcript": voxy.greeting}],
        }
    ]
    heard: list[str] = []
    replies: list[str] = []
    start = 0
    frame = rate * 2 * 20 // 1000
    for i in range(0, len(line), frame):
        for event in vad.feed(line[i : i + frame]):
            if isinstance(event, SpeechStarted):
                start = event.audio_start_ms
            elif isinstance(event, SpeechStopped):
                turn = line[start * rate * 2 // 1000 : event.audio_end_ms * rate * 2 // 1000]
                text = recognizer.recognize(turn).text
                heard.append(text)
                conversation.append(
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_audio", "transcript": text}],
                    }
                )
                reply = voxy.reply(conversation)
                replies.append(reply.intent or reply.kind)
                conversation.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_audio", "transcript": reply.text}],
                    }
                )
                for n, call in enumerate(reply.function_calls):
                    call_id = f"call_{len(heard)}_{n}"
                    conversation.append(
                        {
                            "type": "function_call",
                            "call_id": call_id,
                            "name": call.name,
                            "arguments": call.arguments_json(),
                        }
                    )
                    conversation.append(
                        {
                            "type": "function_call_output",
                            "call_id": call_id,
                            "output": json.dumps({"status": "ready"}),
                        }
                    )
                    follow_up = voxy.reply(conversation)
                    replies.append(follow_up.kind)
                    assert follow_up.text == "Order 4 2 1 9 is ready."
                    # The follow-up is speech on the line like every reply.
                    assert len(synthesizer.synthesize_as(follow_up.text, PCMU_8K)) > rate

    assert heard == CALLER
    assert replies == ["opening_hours", "check_order", "follow_up", "goodbye"]
