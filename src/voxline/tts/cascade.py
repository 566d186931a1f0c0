"""Cascades on one :class:`~voxline.media.tts.TTSPlayer`: the Realtime model in text mode
(half-cascade) and Chat Completions / Responses streams (full cascade).

:class:`HalfCascade` is the reference's half-cascade guide as one object: the model's
``response.output_text.delta`` text is appended to the player, ``response.output_text.done`` flushes
the turn, and a barge-in (``input_audio_buffer.speech_started``, or :meth:`HalfCascade.interrupt`)
clears the player and makes the interrupted assistant item hold only what the caller heard.

Text items cannot be truncated (``conversation.item.truncate`` is for output audio only: the server
answers ``unsupported_content_type``), so the item is deleted and created again, with the same id,
at the same place (``previous_item_id``), holding the heard text (``output_text``); an item the
caller heard none of is deleted. This happens once the interrupted response is over
(``response.done``): the server would still write to an item of an active response.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from voxline.eventtarget import Event
from voxline.media.tts import HeardText, TTSPlayer
from voxline.openai.events import ChatCompletionsAPIEvents, RealtimeAPIEvents, ResponsesAPIEvents

__all__ = ["FullCascade", "HalfCascade", "TextTruncation", "feed_player", "speak_text_stream"]

log = logging.getLogger("voxline.tts.cascade")


class RealtimeClient(Protocol):
    """What the half-cascade needs of :class:`voxline.openai.realtime.RealtimeAPIClient`."""

    @property
    def closed(self) -> bool: ...
    def add_event_listener(self, event: Any, callback: Callable[[Event], Any]) -> None: ...
    def conversation_item_delete(self, parameters: dict[str, Any]) -> None: ...
    def conversation_item_create(self, parameters: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class TextTruncation:
    """One interrupted assistant item and what it was cut to (``text``: the heard text)."""

    item_id: str
    previous_item_id: str | None
    text: str
    heard: HeardText


class HalfCascade:
    """Wire a text-mode Realtime ``client`` to ``player`` (which sends to the call).

    ``truncate`` (default True): cut interrupted items to the heard text. ``truncations`` lists what
    was done, in order.
    """

    def __init__(self, client: RealtimeClient, player: TTSPlayer, *, truncate: bool = True) -> None:
        self.client = client
        self.player = player
        self.truncate = truncate
        self.truncations: list[TextTruncation] = []
        self._turn_items: dict[str, tuple[str, int]] = {}  # player turn -> (item_id, content_index)
        self._item_turn: dict[tuple[str, int], str] = {}
        self._previous: dict[str, str | None] = {}  # item_id -> previous_item_id, from the server
        self._item_response: dict[str, str] = {}
        self._active: set[str] = set()  # responses not done yet
        self._pending: list[TextTruncation] = []
        on = client.add_event_listener
        on(RealtimeAPIEvents.ResponseOutputTextDelta, self._on_delta)
        on(RealtimeAPIEvents.ResponseOutputTextDone, self._on_text_done)
        on(RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda _event: self.interrupt())
        on(RealtimeAPIEvents.ConversationItemAdded, self._on_item_added)
        on(RealtimeAPIEvents.ResponseCreated, self._on_response_created)
        on(RealtimeAPIEvents.ResponseOutputItemAdded, self._on_output_item)
        on(RealtimeAPIEvents.ResponseDone, self._on_response_done)

    # -- from the model -----------------------------------------------------------------------------

    def _on_delta(self, event: Event) -> None:
        data = event.data or {}
        delta, item_id = data.get("delta"), data.get("item_id")
        if not isinstance(delta, str) or not isinstance(item_id, str):
            return
        key = (item_id, int(data.get("content_index") or 0))
        turn = self._item_turn.get(key)
        if turn is not None and turn != self.player.turn_id:
            return  # an item the caller interrupted: the rest of its text is not spoken
        turn_id = self.player.append(delta)
        if turn is None:
            self._item_turn[key] = turn_id
            self._turn_items[turn_id] = key

    def _on_text_done(self, event: Event) -> None:
        data = event.data or {}
        item_id = data.get("item_id")
        turn = (
            self._item_turn.get((item_id, int(data.get("content_index") or 0)))
            if isinstance(item_id, str)
            else None
        )
        if turn is not None and turn == self.player.turn_id:
            self.player.flush()

    def _on_item_added(self, event: Event) -> None:
        data = event.data or {}
        item = data.get("item")
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            previous = data.get("previous_item_id")
            self._previous[item["id"]] = previous if isinstance(previous, str) else None

    def _on_response_created(self, event: Event) -> None:
        response = (event.data or {}).get("response") or {}
        if isinstance(response.get("id"), str):
            self._active.add(response["id"])

    def _on_output_item(self, event: Event) -> None:
        data = event.data or {}
        item = data.get("item") or {}
        if isinstance(data.get("response_id"), str) and isinstance(item.get("id"), str):
            self._item_response[item["id"]] = data["response_id"]

    def _on_response_done(self, event: Event) -> None:
        response = (event.data or {}).get("response") or {}
        response_id = response.get("id")
        if isinstance(response_id, str):
            self._active.discard(response_id)
        self._apply_pending()

    # -- barge-in -----------------------------------------------------------------------------------

    def interrupt(self) -> HeardText | None:
        """Silence the player now and cut the interrupted item to what the caller heard."""
        heard = self.player.clear_buffer()
        if heard is None or not self.truncate:
            return heard
        key = self._turn_items.get(heard.turn_id)
        if key is None or not heard.interrupted:
            return heard
        item_id = key[0]
        self._pending.append(TextTruncation(item_id, self._previous.get(item_id), heard.heard, heard))
        self._apply_pending()
        return heard

    def _apply_pending(self) -> None:
        waiting = []
        for cut in self._pending:
            if self._item_response.get(cut.item_id) in self._active:
                waiting.append(cut)  # its response is still being written: after response.done
                continue
            self._cut(cut)
        self._pending = waiting

    def _cut(self, cut: TextTruncation) -> None:
        if self.client.closed:
            return
        previous = self._previous.get(cut.item_id, cut.previous_item_id)
        self.client.conversation_item_delete({"item_id": cut.item_id})
        if cut.text:
            self.client.conversation_item_create(
                {
                    "previous_item_id": previous if previous is not None else "root",
                    "item": {
                        "id": cut.item_id,
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": cut.text}],
                    },
                }
            )
        self.truncations.append(TextTruncation(cut.item_id, previous, cut.text, cut.heard))
        log.debug("item %s cut to the %d heard characters", cut.item_id, len(cut.text))


class ChatClient(Protocol):
    """What the full cascade needs of :class:`voxline.openai.chat.ChatCompletionsAPIClient`."""

    def add_event_listener(self, event: Any, callback: Callable[[Event], Any]) -> None: ...
    def create_chat_completions(self, parameters: dict[str, Any]) -> Any: ...
    def cancel(self) -> bool: ...


class FullCascade:
    """The classic cascade on the same units: a transcription Realtime client hears the caller
    (``call.send_media_to(transcriber)``), each completed transcript is a user message to the Chat
    Completions ``chat`` client (``model``; the history kept here), and the answer's deltas are
    spoken by ``player``.

    On barge-in (the transcriber's ``speech_started``, or :meth:`interrupt`) the request is
    cancelled, the player cleared, and the assistant message in the history holds only what the
    caller heard (removed when nothing was), as :class:`HalfCascade` does for the Realtime model.
    """

    def __init__(
        self,
        transcriber: Any,
        chat: ChatClient,
        player: TTSPlayer,
        *,
        model: str,
        instructions: str | None = None,
        truncate: bool = True,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"parameter 'model' must be a model name, got {model!r}")
        self.chat = chat
        self.player = player
        self.model = model
        self.truncate = truncate
        self.messages: list[dict[str, Any]] = []
        if instructions:
            self.messages.append({"role": "system", "content": instructions})
        self._answers: dict[str, dict[str, Any]] = {}  # player turn -> its assistant message
        self._answer: dict[str, Any] | None = None
        transcriber.add_event_listener(
            RealtimeAPIEvents.ConversationItemInputAudioTranscriptionCompleted, self._on_transcript
        )
        transcriber.add_event_listener(
            RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda _e: self.interrupt()
        )
        chat.add_event_listener(ChatCompletionsAPIEvents.ContentDelta, self._on_delta)
        chat.add_event_listener(ChatCompletionsAPIEvents.ContentDone, self._on_done)

    def _on_transcript(self, event: Event) -> None:
        text = (event.data or {}).get("transcript")
        if not isinstance(text, str) or not text.strip():
            return
        self.messages.append({"role": "user", "content": text})
        self._answer = None
        self.chat.create_chat_completions({"model": self.model, "messages": [dict(m) for m in self.messages]})

    def _on_delta(self, event: Event) -> None:
        delta = (event.data or {}).get("delta")
        if not isinstance(delta, str) or not delta:
            return
        turn_id = self.player.append(delta)
        if self._answer is None:
            self._answer = {"role": "assistant", "content": ""}
            self.messages.append(self._answer)
            self._answers[turn_id] = self._answer
        self._answer["content"] += delta

    def _on_done(self, _event: Event) -> None:
        self.player.flush()
        self._answer = None

    def interrupt(self) -> HeardText | None:
        """Cancel the answer being written, silence the player, keep only the heard text."""
        self.chat.cancel()
        self._answer = None
        heard = self.player.clear_buffer()
        if heard is None or not heard.interrupted or not self.truncate:
            return heard
        message = self._answers.pop(heard.turn_id, None)
        if message is not None:
            if heard.heard:
                message["content"] = heard.heard
            elif message in self.messages:
                self.messages.remove(message)
        return heard


_DELTAS = {
    ChatCompletionsAPIEvents.ContentDelta: ChatCompletionsAPIEvents.ContentDone,
    ResponsesAPIEvents.ResponseTextDelta: ResponsesAPIEvents.ResponseTextDone,
}


def feed_player(client: Any, player: TTSPlayer) -> None:
    """Speak a Chat Completions or Responses client's streamed text through ``player``: content
    deltas are appended, the content's done event flushes the turn."""
    for delta_event, done_event in _DELTAS.items():
        if not client.accepts_event(delta_event):
            continue  # the other client's events (an unknown name raises)
        client.add_event_listener(delta_event, lambda e: _append(player, (e.data or {}).get("delta")))
        client.add_event_listener(done_event, lambda _e: player.flush())


def _append(player: TTSPlayer, delta: Any) -> None:
    if isinstance(delta, str) and delta:
        player.append(delta)


async def speak_text_stream(player: TTSPlayer, deltas: AsyncIterable[str]) -> str:
    """Append every text piece of ``deltas`` to ``player``, flush at the end; returns the text."""
    text = []
    async for delta in deltas:
        if delta:
            player.append(delta)
            text.append(delta)
    player.flush()
    return "".join(text)
