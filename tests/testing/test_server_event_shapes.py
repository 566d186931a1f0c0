"""Every event the fake sends in a busy session matches OpenAI's ``RealtimeServerEvent*`` schemas.

Two documented differences are the live service's, not the fake's: live sends ``null`` for fields the
spec only allows to be absent (``response.usage``, ``status_details``, ``noise_reduction``, an audio
item's ``transcript`` ...), and ``conversation.item.retrieved`` still labels assistant audio content with
the legacy ``{"type": "audio", "format": "pcm16"}`` (a live capture in the spec's own examples).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voxline.audio.tone import tone
from voxline.testing import FakeRealtimeServer, FunctionCall, Say, ScriptedResponse

from .conftest import open_client

SPEC = Path(__file__).resolve().parents[3] / "shared" / "openai-spec" / "openapi.json"
URN = "urn:test:openapi"


def adapt(node: Any) -> Any:
    if isinstance(node, list):
        return [adapt(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {("anyOf" if k == "oneOf" else k): adapt(v) for k, v in node.items()}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#/"):
        out["$ref"] = URN + out["$ref"]
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [without_nulls(v) for v in node]
    return node


def server_validators() -> dict[str, Draft202012Validator]:
    if not SPEC.exists():
        pytest.skip(f"OpenAI spec not found at {SPEC}")
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    document = adapt({"components": spec["components"]})
    document["$id"] = URN
    registry: Registry[Any] = Registry().with_resource(
        URN, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    validators = {}
    for name, schema in spec["components"]["schemas"].items():
        if not name.startswith("RealtimeServerEvent") or name == "RealtimeServerEvent":
            continue
        type_schema = schema.get("properties", {}).get("type", {})
        for value in type_schema.get("enum", []) or [type_schema.get("const")]:
            if value and value not in validators:
                ref = {"$ref": f"{URN}#/components/schemas/{name}"}
                validators[value] = Draft202012Validator(ref, registry=registry)
    return validators


async def busy_session(server: FakeRealtimeServer) -> None:
    server.script(
        ScriptedResponse(text="Hello there", audio=tone(300.0, 400, 24000)),
        ScriptedResponse(outputs=[Say("Checking."), FunctionCall("lookup", '{"q": "x"}')]),
        ScriptedResponse(text="Text only"),
        ScriptedResponse(text="Long " * 20, stall_after_ms=200),
    )
    server.script_transcription("hi there")
    client, _ = await open_client(server)
    session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    await client.send("session.update", session=session)
    await client.append(bytes(48 * 200) + tone(440.0, 500, 24000) + bytes(48 * 300))
    await client.until("rate_limits.updated")
    await client.send("response.create")
    events = await client.until("rate_limits.updated")
    assistant = next(e["item"]["id"] for e in events if e["type"] == "response.output_item.added")
    await client.send(
        "conversation.item.create", item={"type": "function_call_output", "call_id": "c", "output": "1"}
    )
    await client.send("response.create", response={"output_modalities": ["text"]})
    await client.until("rate_limits.updated")
    await client.send("conversation.item.retrieve", item_id=assistant)
    await client.send("conversation.item.truncate", item_id=assistant, content_index=0, audio_end_ms=100)
    await client.send("conversation.item.delete", item_id=assistant)
    await client.send("response.create")
    await server.wait_for_sent("response.output_audio.delta", count=2)
    await client.send("response.cancel")
    await client.until("rate_limits.updated")
    await client.send("input_audio_buffer.clear")
    await client.send("response.cancel")
    await client.until("error")
    await client.ws.close()


async def test_sent_events_match_the_official_server_schemas(server: FakeRealtimeServer) -> None:
    validators = server_validators()
    await busy_session(server)
    seen = {e["type"] for e in server.sent}
    assert {
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.completed",
        "response.function_call_arguments.done",
        "response.output_text.done",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "error",
    } <= seen
    problems = []
    for event in server.sent:
        shaped = without_nulls(event)
        if event["type"] == "conversation.item.retrieved":
            for part in shaped["item"].get("content", []):
                if part.get("type") == "audio":
                    part["type"] = "output_audio"
                    part.pop("format")
        errors = sorted(validators[event["type"]].iter_errors(shaped), key=str)
        if errors:
            problems.append(f"{event['type']}: {errors[0].message[:300]}")
    assert problems == []
