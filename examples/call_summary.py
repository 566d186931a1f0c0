"""A voice agent that writes a call summary when the caller hangs up.

    voxline run examples/call_summary.py

One execution of this file per call session (DESIGN §1). The Realtime client talks to the
caller; both sides' transcripts are collected from its events. While the call runs, a Chat
Completions client routes each caller utterance to an intent (a small, fast model; the newest
utterance replaces a routing request still in flight). At hang-up the same client, with stored
context off, summarises the transcript; the summary is logged, then the session ends.

Secrets: ``OPENAI_API_KEY`` (``VoxEngine.get_secret_value``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

log = logging.getLogger("scenario.call_summary")

INSTRUCTIONS = "You are Voxy, the phone assistant of a small restaurant. Keep answers short."
INTENTS = ["booking", "opening_hours", "menu", "complaint", "other"]
ROUTER_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "intent",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"intent": {"type": "string", "enum": INTENTS}},
            "required": ["intent"],
            "additionalProperties": False,
        },
    },
}
SUMMARY_PROMPT = (
    "Summarise this phone call for the restaurant's staff in three short bullet points: who called, "
    "what they wanted, and what was agreed or is still open."
)

transcript: list[str] = []
intents: list[str] = []


async def on_call(event: Any) -> None:
    call = event.call
    call.answer()
    api_key = VoxEngine.get_secret_value("OPENAI_API_KEY")

    realtime = await OpenAI.create_realtime_api_client(api_key=api_key, model="gpt-realtime")
    chat = await OpenAI.create_chat_completions_api_client(api_key=api_key, statistics=True)

    realtime.session_update(
        {
            "session": {
                "type": "realtime",
                "instructions": INSTRUCTIONS,
                "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}},
            }
        }
    )
    VoxEngine.send_media_between(call, realtime)
    realtime.response_create({})
    realtime.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: realtime.clear_media_buffer()
    )

    def on_caller_said(e: Any) -> None:
        text = e.data.get("transcript", "").strip()
        if not text:
            return
        transcript.append(f"Caller: {text}")
        # Intent routing while the call goes on: parsed JSON arrives in ContentDone.
        chat.create_chat_completions(
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "developer", "content": "Classify the caller's request."},
                    {"role": "user", "content": text},
                ],
                "response_format": ROUTER_FORMAT,
            }
        )

    def on_agent_said(e: Any) -> None:
        text = e.data.get("transcript", "").strip()
        if text:
            transcript.append(f"Agent: {text}")

    def on_content_done(e: Any) -> None:
        parsed = e.data.get("parsed")
        if isinstance(parsed, dict) and parsed.get("intent") in INTENTS:
            intents.append(parsed["intent"])
            log.info("intent: %s", parsed["intent"])

    realtime.add_event_listener(
        OpenAI.RealtimeAPIEvents.ConversationItemInputAudioTranscriptionCompleted, on_caller_said
    )
    realtime.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseOutputAudioTranscriptDone, on_agent_said)
    chat.add_event_listener(OpenAI.ChatCompletionsAPIEvents.ContentDone, on_content_done)
    chat.add_event_listener(
        OpenAI.ChatCompletionsAPIEvents.ChatCompletionsAPIError,
        lambda e: log.warning("chat completions error: %s", e.data["message"]),
    )

    async def on_hang_up(e: Any) -> None:
        realtime.close()
        if transcript:
            completion = await chat.create_chat_completions(
                {
                    "model": "gpt-4o",
                    "messages": [
                        {"role": "developer", "content": SUMMARY_PROMPT},
                        {"role": "user", "content": "\n".join(transcript)},
                    ],
                },
                queue=True,  # let a routing request still in flight finish first
            )
            if completion is not None:
                summary = completion["choices"][0]["message"]["content"]
                log.info(
                    "call %s summary:\n%s\nintents: %s", call.id(), summary, json.dumps(sorted(set(intents)))
                )
        log.info("chat statistics: %s", chat.statistics())
        chat.close()
        await chat.wait_closed()
        VoxEngine.terminate()

    call.add_event_listener(CallEvents.Disconnected, on_hang_up)


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
