"""What a WebRTC call's page is shown: a runtime observer (like the terminal demo's) that publishes
the call's progress and its Realtime client's events to the call's ``EventFeed``.

Only what the page displays goes out: event names, transcripts, function calls, truncations and
error codes/messages; never session settings, headers or keys.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..eventtarget import Event
from ..openai.events import RealtimeAPIEvents as Ev
from ..openai.realtime import RealtimeAPIClient
from ..webrtc.feed import EventFeed
from .call import Call
from .events import CallEvents
from .legs import WebRtcLeg
from .session import Session

__all__ = ["WebRtcWatch"]


def _text(value: Any, limit: int = 2000) -> str:
    return str(value or "")[:limit]


class WebRtcWatch:
    """``runtime.observers.append(WebRtcWatch())``: each session with a WebRTC call feeds its page."""

    def __init__(self) -> None:
        self._feeds: weakref.WeakKeyDictionary[Session, EventFeed] = weakref.WeakKeyDictionary()

    def __call__(self, session: Session, resource: Any) -> None:
        if isinstance(resource, Call):
            leg = resource.leg
            if isinstance(leg, WebRtcLeg) and session not in self._feeds:
                feed = leg.peer.feed
                self._feeds[session] = feed
                self._watch_call(resource, feed)
        elif isinstance(resource, RealtimeAPIClient):
            known = self._feeds.get(session)
            if known is not None:
                self._watch_client(resource, known)

    def _watch_call(self, call: Call, feed: EventFeed) -> None:
        call.add_event_listener(CallEvents.Connected, lambda e: feed.publish("call.connected"))
        call.add_event_listener(
            CallEvents.ToneReceived, lambda e: feed.publish("dtmf", digit=_text(e.extra.get("tone"), 1))
        )

    def _watch_client(self, client: RealtimeAPIClient, feed: EventFeed) -> None:
        def on(name: Ev, handler: Callable[[dict[str, Any]], None]) -> None:
            def listener(event: Event) -> None:
                handler(event.data if isinstance(event.data, dict) else {})

            client.add_event_listener(name, listener)

        def function_call(d: dict[str, Any]) -> None:
            item = d.get("item") or {}
            if item.get("type") == "function_call":
                feed.publish(
                    "function_call", name=_text(item.get("name"), 100), arguments=_text(item.get("arguments"))
                )

        def error(d: dict[str, Any]) -> None:
            err = d.get("error") or {}
            feed.publish("error", code=_text(err.get("code"), 100), message=_text(err.get("message"), 500))

        on(Ev.SessionCreated, lambda d: feed.publish("session.created"))
        on(Ev.InputAudioBufferSpeechStarted, lambda d: feed.publish("speech.started"))
        on(Ev.InputAudioBufferSpeechStopped, lambda d: feed.publish("speech.stopped"))
        on(
            Ev.ConversationItemInputAudioTranscriptionCompleted,
            lambda d: feed.publish(
                "transcript.caller", item_id=_text(d.get("item_id"), 100), text=_text(d.get("transcript"))
            ),
        )
        on(Ev.ResponseCreated, lambda d: feed.publish("response.created"))
        on(
            Ev.ResponseOutputAudioTranscriptDelta,
            lambda d: feed.publish(
                "transcript.agent.delta", item_id=_text(d.get("item_id"), 100), delta=_text(d.get("delta"))
            ),
        )
        on(
            Ev.ResponseOutputAudioTranscriptDone,
            lambda d: feed.publish(
                "transcript.agent", item_id=_text(d.get("item_id"), 100), text=_text(d.get("transcript"))
            ),
        )
        on(
            Ev.ConversationItemTruncated,
            lambda d: feed.publish(
                "truncated", item_id=_text(d.get("item_id"), 100), audio_end_ms=d.get("audio_end_ms")
            ),
        )
        on(
            Ev.ResponseDone,
            lambda d: feed.publish(
                "response.done", status=_text((d.get("response") or {}).get("status"), 50)
            ),
        )
        on(Ev.ResponseOutputItemDone, function_call)
        on(Ev.Error, error)
