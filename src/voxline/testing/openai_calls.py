"""Fakes of OpenAI-hosted SIP calls on 127.0.0.1: the webhook sender and the call-control REST API.

``FakeOpenAICalls`` plays OpenAI's side of a SIP call:

- :meth:`~FakeOpenAICalls.ring` posts a ``realtime.call.incoming`` webhook to the application,
  signed as OpenAI signs (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`` keyed with the ``whsec_``
  secret's decoded bytes); :meth:`~FakeOpenAICalls.deliver` re-sends a delivery as it is (a
  replay) or with changes (a bad signature, an old timestamp).
- It serves ``POST /v1/realtime/calls/{call_id}/accept|reject|refer|hangup`` as OpenAI does:
  ``Authorization: Bearer`` checked (401), bodies validated against OpenAI's schemas
  (``RealtimeSessionCreateRequestGA``, ``RealtimeCallRejectRequest``, ``RealtimeCallReferRequest``;
  400 with ``{"error": {message, type: "invalid_request_error", param, code}}``), an unknown
  ``call_id`` 404 ``call_not_found``, an action the call's state does not allow 400
  ``call_not_pending`` / ``call_not_active`` (the fake's codes: OpenAI documents none).
  Every request is recorded (``requests``, and ``accepted``, ``rejected``, ``referred``,
  ``hung_up``).
- Linked to a :class:`~voxline.testing.FakeRealtimeServer` (``realtime=``), an accepted call's
  sideband (``?call_id=``) starts with the accepted configuration; a hang-up (``/hangup``, or the
  caller's: :meth:`~FakeOpenAICalls.caller_hangs_up`) closes it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import ClientSession, web

from voxline.openai.calls import INCOMING_CALL_EVENT, sip_header_pairs
from voxline.openai.webhooks import sign
from voxline.realtime_server.ga import session_problem
from voxline.realtime_server.schema import ClientEventValidator, default_validator
from voxline.realtime_server.server import RealtimeServer
from voxline.testing.http_fake import LoopbackHTTPFake

__all__ = ["CallRequest", "FakeOpenAICalls", "FakeSipCall", "WebhookDelivery"]

CallState = Literal["pending", "accepted", "rejected", "ended"]

DEFAULT_SIP_HEADERS: tuple[tuple[str, str], ...] = (
    ("From", '"Alice" <sip:+14155550100@sip.example.com>;tag=1928301774'),
    ("To", "<sip:+14155550199@sip.api.openai.com>"),
    ("Call-ID", "a84b4c76e66710@pc33.example.com"),
    ("CSeq", "851287 INVITE"),
    ("Max-Forwards", "63"),
    ("Content-Type", "application/sdp"),
)


@dataclass
class WebhookDelivery:
    """One webhook POST: what was sent (``headers``, ``body``) and the application's answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int
    text: str


@dataclass
class CallRequest:
    """A call-control request as the fake received it (``body``: the parsed JSON, or None)."""

    call_id: str
    action: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class FakeSipCall:
    """The fake's view of one call: its state and what was asked of it."""

    call_id: str
    sip_headers: list[tuple[str, str]]
    state: CallState = "pending"
    session: dict[str, Any] | None = None
    reject_status: int | None = None
    referred_to: list[str] = field(default_factory=list)


class FakeOpenAICalls(LoopbackHTTPFake):
    """OpenAI's SIP call webhooks and REST endpoints (see the module docstring).

    ``secret``: the webhook signing secret (``whsec_...``; default a fixed test secret);
    ``api_key``: the key the REST calls must carry (default: any ``sk-`` key).
    """

    handler_cancellation = False  # a webhook delivery in flight finishes when its client leaves

    def __init__(
        self,
        *,
        secret: str = "whsec_dGVzdC13ZWJob29rLXNpZ25pbmcta2V5LTEyMzQ1Ng==",
        api_key: str | None = None,
        realtime: RealtimeServer | None = None,
        validator: ClientEventValidator | None = None,
    ) -> None:
        super().__init__()
        self.secret = secret
        self.api_key = api_key
        self.realtime = realtime
        self.validator = validator if validator is not None else default_validator()
        self.calls: dict[str, FakeSipCall] = {}
        self.requests: list[CallRequest] = []
        self.deliveries: list[WebhookDelivery] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/realtime/calls/{call_id}/{action}", self._handle)

    # -- records -------------------------------------------------------------------------------------------

    def _done(self, action: str) -> list[CallRequest]:
        return [r for r in self.requests if r.action == action and r.status == 200]

    @property
    def accepted(self) -> list[CallRequest]:
        return self._done("accept")

    @property
    def rejected(self) -> list[CallRequest]:
        return self._done("reject")

    @property
    def referred(self) -> list[CallRequest]:
        return self._done("refer")

    @property
    def hung_up(self) -> list[CallRequest]:
        return self._done("hangup")

    async def wait_for(self, action: str, count: int = 1, timeout: float = 5.0) -> list[CallRequest]:
        """Wait until ``count`` requests of ``action`` (any status) arrived; returns them."""

        def arrived() -> bool:
            return len([r for r in self.requests if r.action == action]) >= count

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(arrived), timeout)
        return [r for r in self.requests if r.action == action]

    # -- the webhook sender ------------------------------------------------------------------------------

    def incoming_call_event(
        self, call_id: str | None = None, sip_headers: Sequence[tuple[str, str]] = DEFAULT_SIP_HEADERS
    ) -> dict[str, Any]:
        """A new pending call and its ``realtime.call.incoming`` event (as OpenAI's example)."""
        call_id = call_id or f"rtc_{uuid.uuid4().hex}"
        self.calls[call_id] = FakeSipCall(call_id, list(sip_headers))
        return {
            "object": "event",
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "type": INCOMING_CALL_EVENT,
            "created_at": int(time.time()),
            "data": {"call_id": call_id, "sip_headers": sip_header_pairs(sip_headers)},
        }

    def signed(
        self, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
    ) -> dict[str, str]:
        """The headers OpenAI puts on ``body`` (``Content-Type`` included)."""
        headers = sign(
            self.secret,
            webhook_id or f"wh_{next(self._ids)}_{uuid.uuid4().hex[:12]}",
            int(time.time()) if timestamp is None else timestamp,
            body,
        )
        return {**headers, "Content-Type": "application/json", "User-Agent": "OpenAI/1.0 (+webhooks)"}

    async def ring(
        self,
        url: str,
        *,
        call_id: str | None = None,
        sip_headers: Sequence[tuple[str, str]] = DEFAULT_SIP_HEADERS,
        timestamp: int | None = None,
    ) -> WebhookDelivery:
        """Post a signed ``realtime.call.incoming`` for a new call to ``url``."""
        event = self.incoming_call_event(call_id, sip_headers)
        body = json.dumps(event, separators=(",", ":")).encode()
        return await self.deliver(url, body, self.signed(body, timestamp=timestamp))

    async def deliver(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookDelivery:
        """Post ``body`` with exactly these headers (a replay, a tampered signature ...)."""
        async with ClientSession() as session, session.post(url, data=body, headers=dict(headers)) as reply:
            text = await reply.text()
            delivery = WebhookDelivery(url, dict(headers), body, reply.status, text)
        self.deliveries.append(delivery)
        return delivery

    def caller_hangs_up(self, call_id: str) -> None:
        """The SIP caller hung up: the call ends and its sideband closes (1000), as OpenAI does."""
        call = self.calls[call_id]
        call.state = "ended"
        if self.realtime is not None:
            self.realtime.end_call(call_id)

    # -- the REST endpoints ------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str, code: str | None, param: str | None = None) -> web.Response:
        error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
        return web.json_response({"error": error}, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        action = request.match_info["action"]
        raw = await request.read()
        body: Any = None
        reply = self._check_auth(request)
        if reply is None and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                reply = self._error(400, "We could not parse the JSON body of your request.", None)
        if reply is None:
            reply = self._act(call_id, action, body)
        self.requests.append(CallRequest(call_id, action, dict(request.headers), body, reply.status))
        async with self._changed:
            self._changed.notify_all()
        return reply

    def _check_auth(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        accepted = key == self.api_key if self.api_key is not None else key.startswith("sk-")
        if accepted:
            return None
        if not key:
            message = "You didn't provide an API key."
        else:
            message = f"Incorrect API key provided: {key[:3]}***{key[-4:]}."
        return self._error(401, message, "invalid_api_key")

    def _act(self, call_id: str, action: str, body: Any) -> web.Response:
        schemas = {
            "accept": "RealtimeSessionCreateRequestGA",
            "reject": "RealtimeCallRejectRequest",
            "refer": "RealtimeCallReferRequest",
            "hangup": None,
        }
        if action not in schemas:
            return self._error(404, f"Invalid URL (POST /v1/realtime/calls/{call_id}/{action})", None)
        call = self.calls.get(call_id)
        if call is None:
            return self._error(404, f"No call found with id '{call_id}'.", "call_not_found", "call_id")
        schema = schemas[action]
        if schema is not None:
            if body is None and action in ("accept", "refer"):
                return self._error(400, "A JSON request body is required.", "missing_required_parameter")
            if body is not None:
                problems = self.validator.validate_as(body, schema)
                if problems:
                    p = problems[0]
                    return self._error(400, p.message, p.code, p.param)
        if action == "accept":
            problem = session_problem(body, prefix="")
            if problem is not None:
                return self._error(400, problem.message, problem.code, problem.param)
            if body.get("type") != "realtime":
                return self._error(
                    400,
                    f"Invalid value: '{body.get('type')}'. Supported values are: 'realtime'.",
                    "invalid_value",
                    "type",
                )
        return self._transition(call, action, body)

    def _transition(self, call: FakeSipCall, action: str, body: Any) -> web.Response:
        if action in ("accept", "reject"):
            if call.state != "pending":
                message = f"Call '{call.call_id}' is {call.state}, not pending."
                return self._error(400, message, "call_not_pending")
            if action == "accept":
                call.state, call.session = "accepted", dict(body)
                if self.realtime is not None:
                    self.realtime.accept_call(call.call_id, body)
            else:
                call.state = "rejected"
                call.reject_status = (body or {}).get("status_code", 603)
            return web.Response(status=200)
        if call.state != "accepted":
            return self._error(400, f"Call '{call.call_id}' is {call.state}, not active.", "call_not_active")
        if action == "refer":
            call.referred_to.append(body["target_uri"])
        else:
            call.state = "ended"
            if self.realtime is not None:
                self.realtime.end_call(call.call_id)
        return web.Response(status=200)
