"""Stored context of the Chat Completions client: instructions, a rolling summary, recent history.

Sans-I/O. :class:`ConversationContext` keeps what ``store_context=True`` sends before each request's
own messages and decides how many of the oldest messages to fold into the summary;
:func:`summary_messages` is the request that asks the summary model to fold them. The client
(:mod:`voxline.openai.chat`) sends that request; the rules are documented there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

DEFAULT_CONTEXT_BUDGET_CHARS = 24_000
SUMMARY_HEADER = "Summary of the conversation so far:\n"
_INSTRUCTION_ROLES = ("system", "developer")


def message_size(message: Any) -> int:
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")))


class ConversationContext:
    """Sans-I/O store of a conversation: instructions, a rolling summary and the recent history."""

    def __init__(self, budget_chars: int) -> None:
        self.budget_chars = budget_chars
        self.instructions: list[dict[str, Any]] = []
        self.summary: str | None = None
        self.history: list[dict[str, Any]] = []

    def split_request(
        self, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
        """(new instructions or None, conversation messages) of a request's ``messages``."""
        lead = 0
        while lead < len(messages) and messages[lead].get("role") in _INSTRUCTION_ROLES:
            lead += 1
        return (messages[:lead] if lead else None), messages[lead:]

    def messages_for(self, instructions: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[Any]:
        if instructions is not None:
            self.instructions = copy.deepcopy(instructions)
        out: list[Any] = copy.deepcopy(self.instructions)
        if self.summary:
            out.append({"role": "system", "content": SUMMARY_HEADER + self.summary})
        out.extend(copy.deepcopy(self.history))
        out.extend(copy.deepcopy(new))
        return out

    def commit(self, messages: list[dict[str, Any]]) -> None:
        self.history.extend(copy.deepcopy(messages))

    def size(self) -> int:
        return sum(message_size(m) for m in self.history)

    def over_budget(self) -> bool:
        return self.size() > self.budget_chars

    def fold_point(self) -> int:
        """How many of the oldest messages to fold: keep the newest turns within half the budget,
        starting at a user message. 0 when nothing can be folded."""
        keep_budget = self.budget_chars // 2
        user_starts = [i for i, m in enumerate(self.history) if m.get("role") == "user"]
        if not user_starts:
            return 0
        suffix = 0
        sizes = [message_size(m) for m in self.history]
        cut = user_starts[-1]
        for start in reversed(user_starts):
            suffix = sum(sizes[start:])
            if suffix > keep_budget:
                break
            cut = start
        return cut

    def apply_summary(self, folded: int, summary: str) -> None:
        self.history = self.history[folded:]
        self.summary = summary


def render_transcript(messages: list[dict[str, Any]]) -> str:
    """The folded messages as ``role: text`` lines for the summary model."""
    lines = []
    for m in messages:
        role = m.get("role", "?")
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
            )
        if content:
            lines.append(f"{role}: {content}")
        if m.get("refusal"):
            lines.append(f"{role} (refusal): {m['refusal']}")
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or {}
            lines.append(f"{role} called {fn.get('name')}({fn.get('arguments', '')})")
        if role == "tool" and not content:
            lines.append("tool: (empty result)")
    return "\n".join(lines)


def summary_messages(prompt: str, previous: str | None, folded: list[dict[str, Any]]) -> list[dict[str, str]]:
    previous_text = previous or "(none yet)"
    if "{previous_summary}" in prompt:
        system = prompt.replace("{previous_summary}", previous_text)
    else:
        system = f"{prompt}\n\n1. The previous summary:\n{previous_text}"
    user = "2. The messages between user and assistant to summarize:\n" + render_transcript(folded)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
