"""OpenAI-hosted SIP calls: the incoming call (``realtime.call.incoming``) and the REST calls that
control it, plus a Realtime client on the call's sideband WebSocket (voxline's addition; the
reference has no OpenAI SIP).

OpenAI answers SIP itself (``sip:$PROJECT_ID@sip.api.openai.com;transport=tls``) and keeps the
media; the application gets a signed webhook (:mod:`voxline.openai.webhooks`), then:

- ``POST /v1/realtime/calls/{call_id}/accept`` with a session configuration (the body of
  ``RealtimeSessionCreateRequestGA``: ``type: "realtime"``, ``model``, ``instructions``, ``audio``...);
- ``/reject`` (``status_code``, default 603), ``/refer`` (``target_uri``: ``tel:`` or ``sip:``),
  ``/hangup``;
- a Realtime WebSocket ``wss://api.openai.com/v1/realtime?call_id=...`` (the sideband) that carries
  every server event of the call's session and takes every client command, the audio excepted
  (``output_audio_buffer.clear`` stops what OpenAI plays).

:class:`RealtimeCallsClient` does the REST calls with ``httpx`` (the pool settings, error payloads and
URL rule of the Chat/Responses clients) and :meth:`RealtimeCallsClient.attach` opens the sideband
with :func:`~voxline.openai.realtime.create_realtime_api_client`. A refused request raises
:class:`RealtimeCallError` with OpenAI's ``{"error": {message, type, param, code}}`` fields.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from .._tasks import background
from .._version import __version__
from ..context import adopt
from ..logs import mask_secret
from ._http import DEFAULT_TIMEOUT, endpoint_url, http_error_payload, network_error_payload
from .params import DEFAULT_BASE_URL
from .realtime import RealtimeAPIClient, create_realtime_api_client

__all__ = [
    "INCOMING_CALL_EVENT",
    "OpenAICall",
    "RealtimeCallError",
    "RealtimeCallsClient",
    "create_realtime_calls_client",
    "sip_header_pairs",
]

log = logging.getLogger("voxline.openai.calls")

INCOMING_CALL_EVENT = "realtime.call.incoming"
_URI_USER = re.compile(r"<?\s*(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)


class RealtimeCallError(Exception):
    """OpenAI refused a call-control request (or it did not get there): ``status`` (None: network),
    ``code``, ``type``, ``param``, ``message`` and the whole ``payload``."""

    def __init__(self, action: str, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.status: int | None = payload.get("status")
        self.code: str | None = payload.get("code")
        self.type: str | None = payload.get("type")
        self.param: str | None = payload.get("param")
        self.message: str = str(payload.get("message"))
        super().__init__(f"{action}: {self.message}")


class OpenAICall:
    """An incoming OpenAI SIP call, from a verified ``realtime.call.incoming`` webhook event.

    ``call_id`` (``rtc_...``), ``sip_headers`` (the INVITE's headers as ``(name, value)`` in order),
    ``event`` (the whole webhook event), ``webhook_id``. ``accepted`` turns True once a
    :class:`RealtimeCallsClient` accepted it; ``ended`` turns True once the call was
    rejected or hung up through a :class:`RealtimeCallsClient`, or its sideband closed; callbacks
    added with :meth:`on_ended` run once then (the runtime winds its session down).
    """

    def __init__(self, event: Mapping[str, Any], webhook_id: str | None = None) -> None:
        if event.get("type") != INCOMING_CALL_EVENT:
            raise ValueError(f"not a {INCOMING_CALL_EVENT} event: type {event.get('type')!r}")
        data = event.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("realtime.call.incoming: 'data' must be an object")
        call_id = data.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError("realtime.call.incoming: 'data.call_id' must be a non-empty string")
        headers = data.get("sip_headers", [])
        if not isinstance(headers, list):
            raise ValueError("realtime.call.incoming: 'data.sip_headers' must be an array")
        pairs: list[tuple[str, str]] = []
        for index, header in enumerate(headers):
            if (
                not isinstance(header, Mapping)
                or not isinstance(header.get("name"), str)
                or not isinstance(header.get("value"), str)
            ):
                where = f"data.sip_headers[{index}]"
                raise ValueError(f"realtime.call.incoming: '{where}' must be {{name, value}}")
            pairs.append((header["name"], header["value"]))
        self.call_id: str = call_id
        self.sip_headers: list[tuple[str, str]] = pairs
        self.event: dict[str, Any] = dict(event)
        self.webhook_id = webhook_id
        self.accepted = False  # a RealtimeCallsClient accepted it
        self.ended = False
        self._ended_callbacks: list[Callable[[OpenAICall], None]] = []

    def __repr__(self) -> str:
        return f"<OpenAICall {self.call_id}{' ended' if self.ended else ''}>"

    def id(self) -> str:
        return self.call_id

    def header(self, name: str) -> str | None:
        """The first SIP header of that name (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.sip_headers if key.lower() == wanted), None)

    def headers(self) -> dict[str, str]:
        """The SIP headers as a dict (the first of each name), like ``Call.headers()``."""
        out: dict[str, str] = {}
        for key, value in self.sip_headers:
            out.setdefault(key, value)
        return out

    def caller_id(self) -> str:
        """The user part of the ``From`` URI (``+14155550100``), or ``""``."""
        return _uri_user(self.header("From"))

    def destination(self) -> str:
        """The user part of the ``To`` URI, or ``""``."""
        return _uri_user(self.header("To"))

    def on_ended(self, callback: Callable[[OpenAICall], None]) -> None:
        if self.ended:
            callback(self)
        else:
            self._ended_callbacks.append(callback)

    def mark_ended(self) -> None:
        """The call is over (rejected, hung up, its sideband closed): run the ``on_ended`` callbacks."""
        if self.ended:
            return
        self.ended = True
        callbacks, self._ended_callbacks = self._ended_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("OpenAI call %s: an on_ended callback failed", self.call_id)

    def close(self) -> None:
        """Nothing to release (the call lives at OpenAI); a session that ends marks it ended."""
        self.mark_ended()


def _uri_user(value: str | None) -> str:
    if not value:
        return ""
    match = _URI_USER.search(value)
    return match.group(1) if match else ""


def _call_id_of(call: OpenAICall | str) -> str:
    call_id = call.call_id if isinstance(call, OpenAICall) else call
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("parameter 'call' must be an OpenAICall or a non-empty call_id string")
    return call_id


class RealtimeCallsClient:
    """OpenAI's ``/v1/realtime/calls/{call_id}/...`` REST calls, and the sideband Realtime client.

    ``base_url``: where the REST calls go (default OpenAI, ``OPENAI_BASE_URL`` as the SDKs read it
    through :func:`create_realtime_calls_client`); ``realtime_base_url``: where :meth:`attach`
    connects (default the same). ``transport``: an ``httpx`` transport (tests).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        realtime_base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise TypeError("parameter 'api_key' must be a non-empty string")
        endpoint_url(base_url, "realtime/calls")  # raises ValueError naming base_url
        if realtime_base_url is not None and not isinstance(realtime_base_url, str):
            raise TypeError("parameter 'realtime_base_url' must be a URL string")
        mask_secret(api_key)
        self._api_key = api_key
        self.base_url = base_url
        self.realtime_base_url = realtime_base_url or base_url
        self._calls: dict[str, OpenAICall] = {}
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"voxline/{__version__}"},
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"<RealtimeCallsClient {self.base_url}{' closed' if self._closed else ''}>"

    async def accept(self, call: OpenAICall | str, session: Mapping[str, Any]) -> None:
        """Answer the call with this session configuration (``type: "realtime"`` and ``model``
        at least; OpenAI refuses a malformed one with 400 ``invalid_request_error`` and ``param``)."""
        if not isinstance(session, Mapping):
            raise TypeError(f"parameter 'session' must be a dict, not {type(session).__name__}")
        await self._post(call, "accept", dict(session))
        if isinstance(call, OpenAICall):
            call.accepted = True

    async def reject(self, call: OpenAICall | str, status_code: int | None = None) -> None:
        """Refuse the call with a SIP status (OpenAI's default: 603 Decline)."""
        body: dict[str, Any] | None = None
        if status_code is not None:
            valid = isinstance(status_code, int) and not isinstance(status_code, bool)
            if not valid or not 400 <= status_code <= 699:
                raise ValueError(f"parameter 'status_code' must be a SIP status 400-699, not {status_code!r}")
            body = {"status_code": status_code}
        await self._post(call, "reject", body)
        self._ended(call)

    async def refer(self, call: OpenAICall | str, target_uri: str) -> None:
        """Transfer the call with a SIP REFER to ``target_uri`` (``tel:+1...`` or ``sip:...``)."""
        if not isinstance(target_uri, str) or not target_uri.lower().startswith(("tel:", "sip:", "sips:")):
            raise ValueError(f"parameter 'target_uri' must be a tel: or sip: URI, not {target_uri!r}")
        await self._post(call, "refer", {"target_uri": target_uri})

    async def hangup(self, call: OpenAICall | str) -> None:
        """End the call."""
        await self._post(call, "hangup", None)
        self._ended(call)

    async def attach(self, call: OpenAICall | str, **parameters: Any) -> RealtimeAPIClient:
        """A Realtime client on the call's sideband WebSocket: every listener and command as for any
        client (``parameters`` as :func:`~voxline.openai.realtime.create_realtime_api_client` takes
        them; ``api_key`` and ``base_url`` default to this client's). The media stays at OpenAI.
        When its socket closes the call counts as ended."""
        call_id = _call_id_of(call)
        if isinstance(call, OpenAICall):
            self._calls[call_id] = call
        parameters.setdefault("api_key", self._api_key)
        parameters.setdefault("base_url", self.realtime_base_url)
        user_close = parameters.pop("on_web_socket_close", None)

        def closed(event: dict[str, Any]) -> Any:
            self._ended(call_id)
            return user_close(event) if callable(user_close) else None

        return await create_realtime_api_client(call_id=call_id, on_web_socket_close=closed, **parameters)

    def _ended(self, call: OpenAICall | str) -> None:
        known = call if isinstance(call, OpenAICall) else self._calls.get(call)
        if known is not None:
            known.mark_ended()

    async def _post(self, call: OpenAICall | str, action: str, body: dict[str, Any] | None) -> None:
        if self._closed:
            raise RealtimeCallError(action, {"status": None, "message": "the calls client is closed"})
        call_id = _call_id_of(call)
        if isinstance(call, OpenAICall):
            self._calls[call_id] = call
        url = endpoint_url(self.base_url, f"realtime/calls/{quote(call_id, safe='')}/{action}")
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {} if content is None else {"Content-Type": "application/json"}
        try:
            response = await self._http.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise RealtimeCallError(action, network_error_payload(exc)) from None
        if response.status_code // 100 != 2:
            payload = http_error_payload(
                response.status_code, response.reason_phrase, response.headers, response.content
            )
            log.warning("OpenAI call %s: %s refused: %s", call_id, action, payload["message"])
            raise RealtimeCallError(action, payload)
        log.info("OpenAI call %s: %s", call_id, action)

    def close(self) -> asyncio.Task[None] | None:
        """Close the HTTP pool (a session that ends does it); returns the closing task."""
        if self._closed:
            return None
        self._closed = True
        return background(self._http.aclose(), name="realtime-calls-close")

    async def aclose(self) -> None:
        task = self.close()
        if task is not None:
            await task


def create_realtime_calls_client(
    api_key: str,
    base_url: str | None = None,
    *,
    realtime_base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RealtimeCallsClient:
    """A :class:`RealtimeCallsClient` tied to the running session (closed when it terminates).
    Without ``base_url``: ``OPENAI_BASE_URL``, else OpenAI."""
    client = RealtimeCallsClient(
        api_key,
        base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        realtime_base_url=realtime_base_url,
        transport=transport,
    )
    adopt(client)
    return client


def sip_header_pairs(headers: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """``[(name, value)]`` -> the webhook's ``sip_headers`` array (fakes, tests)."""
    return [{"name": name, "value": value} for name, value in headers]
