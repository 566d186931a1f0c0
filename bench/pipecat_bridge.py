"""The same workload through Pipecat: Twilio Media Streams in, OpenAI Realtime out (the fake server).

Runs in its own virtualenv (``bench/.venv-pipecat``, ``pipecat-ai[websocket,openai]``), never imported
by voxline. One process, one FastAPI app (uvicorn) with a WebSocket endpoint ``/ws`` per call:
``FastAPIWebsocketTransport`` + ``TwilioFrameSerializer`` (auto hang-up off: there is no Twilio
account to call) -> ``LLMContextAggregatorPair`` (user side with the external turn strategies that
Pipecat documents for a service with server VAD; without the aggregators Pipecat never sends Twilio a
``clear``) -> ``OpenAIRealtimeLLMService`` pointed at the fake server with ``base_url`` -> the
transport's output -> the assistant aggregator. The session's instructions carry the caller's name
(``bench-call:<From>``), as in voxline's bench scenario; server VAD as OpenAI's default.

    bench/.venv-pipecat/bin/python bench/pipecat_bridge.py --port 8765 \
        --realtime-url ws://127.0.0.1:PORT/v1/realtime?model=gpt-realtime
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies

app = FastAPI()
REALTIME_URL = os.environ.get("BENCH_REALTIME_URL", "")


async def first_messages(websocket: WebSocket) -> dict[str, Any]:
    """Twilio sends ``connected`` then ``start``; the start carries the stream and call ids."""
    while True:
        message = json.loads(await websocket.receive_text())
        if message.get("event") == "start":
            start: dict[str, Any] = message["start"]
            return start


@app.websocket("/ws")
async def twilio_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    start = await first_messages(websocket)
    caller = start.get("customParameters", {}).get("From", "")
    serializer = TwilioFrameSerializer(
        stream_sid=start["streamSid"],
        call_sid=start.get("callSid"),
        account_sid=start.get("accountSid"),
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    base_url, _, _ = REALTIME_URL.partition("?")
    llm = OpenAIRealtimeLLMService(
        api_key="sk-bench",
        base_url=base_url,
        settings=OpenAIRealtimeLLMService.Settings(
            model="gpt-realtime",
            system_instruction=f"bench-call:{caller}",
            session_properties=events.SessionProperties(
                audio=events.AudioConfiguration(
                    input=events.AudioInput(turn_detection=events.TurnDetection()),
                ),
            ),
        ),
    )
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(user_turn_strategies=ExternalUserTurnStrategies())
    )
    pipeline = Pipeline(
        [transport.input(), aggregators.user(), llm, transport.output(), aggregators.assistant()]
    )
    task = PipelineTask(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
        idle_timeout_secs=None,
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: Any, _client: Any) -> None:
        await task.cancel()

    await PipelineRunner(handle_sigint=False).run(task)


def main() -> None:
    global REALTIME_URL
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--realtime-url", required=True)
    args = parser.parse_args()
    REALTIME_URL = args.realtime_url
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets")


if __name__ == "__main__":
    main()
