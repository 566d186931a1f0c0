"""A session's conversation: its items in order, the audio they hold, and the client's item events
(``conversation.item.create``, ``retrieve``, ``delete``, ``truncate``).

User audio items come from the input buffer (:mod:`.input_audio`), assistant items from responses
(:mod:`.responses`); both add them here. Audio is kept as received or as sent, in its own format.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxline.audio import PCM16_24K, AudioFormat

from .events import SessionOutput, new_id
from .formats import decode_to_pcm, legacy_format_name, pcm_to_format
from .session import SessionConfig
from .validation import SchemaProblem

__all__ = ["Conversation", "Truncation"]


@dataclass(frozen=True, slots=True)
class Truncation:
    """One ``conversation.item.truncate`` the server handled and what became of it."""

    item_id: str
    content_index: int
    audio_end_ms: int
    audio_ms: int | None
    ok: bool
    error: str | None = None


class Conversation:
    """The items of one session (server shape) and the audio of each, with the item event handlers."""

    def __init__(
        self,
        config: SessionConfig,
        out: SessionOutput,
        on_truncation: Callable[[Truncation], None] | None = None,
    ) -> None:
        self._config = config
        self._out = out
        self._on_truncation = on_truncation
        self.items: list[dict[str, Any]] = []
        self.item_audio: dict[str, tuple[bytes, AudioFormat]] = {}
        self.truncations: list[Truncation] = []
        self._pcm24: dict[str, tuple[bytes, bytes]] = {}

    # -- reading --------------------------------------------------------------------------------------------

    def find(self, item_id: str) -> int | None:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        return None

    @property
    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before ``item_id`` (None: it is the first, or no longer there)."""
        index = self.find(item_id)
        return self.items[index - 1]["id"] if index else None

    def audio_as_pcm24(self) -> dict[str, bytes]:
        """Every item's audio as PCM16 at 24 kHz, converted once per stored audio (truncation stores anew)."""
        converted = {}
        for item_id, (audio, fmt) in self.item_audio.items():
            cached = self._pcm24.get(item_id)
            if cached is None or cached[0] is not audio:
                cached = self._pcm24[item_id] = (
                    audio,
                    pcm_to_format(decode_to_pcm(audio, fmt), fmt.rate, PCM16_24K),
                )
            converted[item_id] = cached[1]
        return converted

    # -- adding ----------------------------------------------------------------------------------------------

    def append(self, item: dict[str, Any], audio: tuple[bytes, AudioFormat] | None = None) -> str | None:
        """Add ``item`` at the end (with its audio); returns the id of the item before it."""
        previous = self.last_id
        self.items.append(item)
        if audio is not None:
            self.item_audio[item["id"]] = audio
        return previous

    def announce(self, item: dict[str, Any], previous: str | None) -> None:
        """``conversation.item.added`` then ``conversation.item.done`` for an item added whole."""
        self._out.emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )
        self._out.emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)}
        )

    def set_transcript(self, item_id: str, transcript: str) -> None:
        """The input transcription of a user audio item arrived."""
        for item in self.items:
            if item["id"] == item_id and item.get("content"):
                item["content"][0]["transcript"] = transcript

    # -- client events ---------------------------------------------------------------------------------------

    def _not_found(self, event: dict[str, Any], item_id: str, param: str = "item_id") -> None:
        self._out.reject(
            event,
            SchemaProblem(
                "item_not_found", f"Item with item_id '{item_id}' not found in the conversation.", param
            ),
        )

    def on_create(self, event: dict[str, Any]) -> None:
        given: dict[str, Any] = copy.deepcopy(event["item"])
        previous_id = event.get("previous_item_id")
        if previous_id is None or previous_id == "":
            position = len(self.items)
        elif previous_id == "root":
            position = 0
        else:
            found = self.find(previous_id)
            if found is None:
                self._not_found(event, previous_id, "previous_item_id")
                return
            position = found + 1
        item_id = given.pop("id", None) or new_id("item")
        if self.find(item_id) is not None:
            self._out.reject(
                event,
                SchemaProblem(
                    "item_id_already_exists", f"Item with id '{item_id}' already exists.", "item.id"
                ),
            )
            return
        given.pop("object", None)
        audio_parts: list[bytes] = []
        item: dict[str, Any] = {"id": item_id, "type": given.pop("type")}
        if item["type"] == "message":
            item["status"] = "completed"
            item["role"] = given.pop("role")
            content = []
            for index, part in enumerate(given.pop("content", [])):
                part = dict(part)
                if part.get("type") == "input_audio":
                    try:
                        audio_parts.append(base64.b64decode(part.pop("audio", ""), validate=True))
                    except (binascii.Error, ValueError):
                        param = f"item.content[{index}].audio"
                        problem = SchemaProblem(
                            "invalid_value", f"Invalid '{param}': expected base64-encoded audio.", param
                        )
                        self._out.reject(event, problem)
                        return
                    part.setdefault("transcript", None)
                content.append(part)
            item["content"] = content
        given.pop("status", None)
        item.update(given)
        previous = self.items[position - 1]["id"] if position > 0 else None
        self.items.insert(position, item)
        if audio_parts:
            self.item_audio[item_id] = (b"".join(audio_parts), self._config.input_format)
        self.announce(item, previous)

    def on_retrieve(self, event: dict[str, Any]) -> None:
        index = self.find(event["item_id"])
        if index is None:
            self._not_found(event, event["item_id"])
            return
        item = copy.deepcopy(self.items[index])
        stored = self.item_audio.get(item["id"])
        if stored is not None:
            audio, fmt = stored
            for part in item.get("content", []):
                if part.get("type") == "output_audio":
                    # The live server still answers with the legacy content shape here.
                    part["type"] = "audio"
                    part["audio"] = base64.b64encode(audio).decode("ascii")
                    part["format"] = legacy_format_name(fmt)
                elif part.get("type") == "input_audio":
                    part["audio"] = base64.b64encode(audio).decode("ascii")
        item["object"] = "realtime.item"
        ordered = {"id": item.pop("id"), "object": item.pop("object")}
        ordered.update(item)
        self._out.emit({"type": "conversation.item.retrieved", "item": ordered})

    def on_delete(self, event: dict[str, Any]) -> None:
        index = self.find(event["item_id"])
        if index is None:
            self._not_found(event, event["item_id"])
            return
        del self.items[index]
        self.item_audio.pop(event["item_id"], None)
        self._pcm24.pop(event["item_id"], None)
        self._out.emit({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    def on_truncate(self, event: dict[str, Any]) -> None:
        item_id: str = event["item_id"]
        content_index: int = event["content_index"]
        end_ms: int = event["audio_end_ms"]
        index = self.find(item_id)
        if index is None:
            self._record_truncation(Truncation(item_id, content_index, end_ms, None, False, "item_not_found"))
            self._not_found(event, item_id)
            return
        item = self.items[index]
        content = item.get("content") or []
        part = content[content_index] if 0 <= content_index < len(content) else None
        stored = self.item_audio.get(item_id)
        if (
            item.get("role") != "assistant"
            or part is None
            or part.get("type") != "output_audio"
            or stored is None
            or not stored[0]
        ):
            message = "Only model output audio messages can be truncated"
            self._record_truncation(Truncation(item_id, content_index, end_ms, None, False, message))
            self._out.reject(event, SchemaProblem("unsupported_content_type", message))
            return
        audio, fmt = stored
        audio_ms = fmt.duration_ms(len(audio))
        if end_ms > audio_ms:
            # Live: an error without the client's event_id, then the item is truncated at its real end.
            message = f"Audio content of {int(audio_ms)}ms is already shorter than {end_ms}ms"
            self._record_truncation(Truncation(item_id, content_index, end_ms, int(audio_ms), False, message))
            self._out.reject(
                event, SchemaProblem("invalid_value", message, "audio_end_ms"), echo_event_id=False
            )
            end_ms = int(audio_ms)
        else:
            self._record_truncation(Truncation(item_id, content_index, end_ms, int(audio_ms), True))
        keep = end_ms * fmt.bytes_per_ms
        self.item_audio[item_id] = (audio[:keep], fmt)
        # Truncating drops the transcript: nothing unheard stays in the model's context.
        part["transcript"] = ""
        self._out.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": end_ms,
            }
        )

    def _record_truncation(self, truncation: Truncation) -> None:
        self.truncations.append(truncation)
        if self._on_truncation is not None:
            self._on_truncation(truncation)
