"""GA session features the schemas cannot check alone, and the MCP tool listing, sans-I/O.

The schemas (:mod:`.schema`) already refuse a malformed value of every GA setting with OpenAI's
codes and ``param``: ``semantic_vad`` ``eagerness`` outside low/medium/high/auto, ``idle_timeout_ms``
outside 5000-30000 or on ``semantic_vad`` (``unknown_parameter``), ``noise_reduction.type``,
``audio.output.speed`` outside 0.25-1.5, ``truncation`` (``retention_ratio`` 0-1, required),
``prompt`` without ``id``, MCP tools' fields. What is left is here:

- an MCP tool needs ``server_url`` or ``connector_id``, and ``server_label`` is unique;
- an ``input_image`` content part carries a PNG or JPEG data URI (what the Realtime API takes).

And when a ``session.update`` adds an MCP tool, OpenAI lists its tools, in this order after
``session.updated``: ``conversation.item.added`` (an ``mcp_list_tools`` item, no tools yet),
``mcp_list_tools.in_progress``, then ``mcp_list_tools.completed`` and ``conversation.item.done``
with the tools, or ``mcp_list_tools.failed`` when the server cannot be reached (here: a label the
fake's ``mcp_servers`` catalogue does not hold). :func:`needs_approval` and :func:`approval_for`
decide whether a scripted MCP call (:class:`~.engine.MCPCall`) runs or asks first (``.responses``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .events import new_id
from .validation import SchemaProblem, format_param

__all__ = ["approval_for", "item_problem", "mcp_listing", "mcp_tools", "needs_approval", "session_problem"]

_IMAGE_URI = re.compile(r"data:image/(png|jpeg|jpg);base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)


def mcp_tools(session: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The session's MCP tools by ``server_label``."""
    tools = session.get("tools") or []
    return {
        str(tool.get("server_label")): tool
        for tool in tools
        if isinstance(tool, Mapping) and tool.get("type") == "mcp"
    }


def session_problem(update: Mapping[str, Any], prefix: str = "session") -> SchemaProblem | None:
    """Why OpenAI refuses this schema-valid session configuration (``prefix``: where it sits)."""
    tools = update.get("tools")
    if not isinstance(tools, list):
        return None
    labels: set[str] = set()
    for index, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") != "mcp":
            continue
        where: list[str | int] = [prefix, "tools", index] if prefix else ["tools", index]
        if not tool.get("server_url") and not tool.get("connector_id"):
            param = format_param([*where, "server_url"])
            return SchemaProblem(
                "missing_required_parameter",
                f"Missing required parameter: '{param}' (or 'connector_id').",
                param,
            )
        label = str(tool.get("server_label"))
        if label in labels:
            param = format_param([*where, "server_label"])
            return SchemaProblem(
                "invalid_value", f"Duplicate MCP server_label '{label}': each must be unique.", param
            )
        labels.add(label)
    return None


def item_problem(item: Mapping[str, Any], prefix: str = "item") -> SchemaProblem | None:
    """Why OpenAI refuses this schema-valid conversation item: an image that is no PNG/JPEG data URI."""
    content = item.get("content")
    if not isinstance(content, list):
        return None
    for index, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "input_image":
            continue
        url = part.get("image_url")
        if not isinstance(url, str) or not _IMAGE_URI.fullmatch(url):
            param = format_param([prefix, "content", index, "image_url"])
            return SchemaProblem(
                "invalid_value",
                f"Invalid '{param}': expected a base64-encoded data URL with an image MIME type "
                "(data:image/png;base64,... or data:image/jpeg;base64,...).",
                param,
            )
    return None


def mcp_listing(
    label: str,
    catalog: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    previous_item_id: str | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``mcp_list_tools`` item of a newly added MCP server and its events, in OpenAI's order."""
    item_id = new_id("item")
    pending: dict[str, Any] = {"id": item_id, "type": "mcp_list_tools", "server_label": label, "tools": []}
    events: list[dict[str, Any]] = [
        {"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": dict(pending)},
        {"type": "mcp_list_tools.in_progress", "item_id": item_id},
    ]
    tools = None if catalog is None else catalog.get(label)
    if tools is None:
        events.append({"type": "mcp_list_tools.failed", "item_id": item_id})
        return pending, events
    listed = {**pending, "tools": [dict(tool) for tool in tools]}
    events.append({"type": "mcp_list_tools.completed", "item_id": item_id})
    events.append({"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": listed})
    return listed, events


def needs_approval(tool: Mapping[str, Any], name: str) -> bool:
    """Whether a call of ``name`` needs the client's approval (``require_approval``, default always)."""
    policy = tool.get("require_approval", "always")
    if policy is None or isinstance(policy, str):
        return policy != "never"
    # A filter object: the tools it lists under "never" go without; every other one asks.
    never = policy.get("never") or {}
    return name not in (never.get("tool_names") or [])


def approval_for(items: Sequence[Mapping[str, Any]], label: str, name: str) -> bool | None:
    """The client's answer to the latest approval request for this tool: True, False, or None (none)."""
    requests = {
        item["id"]
        for item in items
        if item.get("type") == "mcp_approval_request"
        and item.get("server_label") == label
        and item.get("name") == name
    }
    answer: bool | None = None
    for item in items:
        if item.get("type") == "mcp_approval_response" and item.get("approval_request_id") in requests:
            answer = bool(item.get("approve"))
    return answer
