"""The OpenAI webhook endpoint of ``voxline run``: incoming OpenAI-hosted SIP calls (aiohttp).

Off unless a webhook secret is configured (``openai_webhook_secret``, ``VOXLINE_OPENAI_WEBHOOK_SECRET``
or the config file; the ``whsec_...`` value of the OpenAI project's webhook). Then ``POST
openai_webhook_path`` (default ``/openai/webhook``) on the HTTP listener takes OpenAI's webhooks:

- 401 without a valid Standard Webhooks signature (``webhook-id``/``-timestamp``/``-signature``);
- 400 for a timestamp outside the tolerance (300 s either way) or a body that is not JSON;
- 200 ``{"status": "duplicate"}`` for a ``webhook-id`` already delivered within the window: a
  replay or OpenAI's retry of an event whose answer it lost is acknowledged (so the retries stop)
  and never delivered twice;
- 503 with ``Retry-After`` while the runtime drains or is at ``max_calls`` (checked before the
  signature, so the id is not spent and OpenAI's retry is taken later);
- 200 for a ``realtime.call.incoming`` (a new session gets ``AppEvents.OpenAICallIncoming``) and for
  any other event type (acknowledged, ignored).

The handler only verifies and hands over: the scenario accepts, rejects, refers or hangs up through
:class:`voxline.openai.calls.RealtimeCallsClient`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web

from ..openai.calls import INCOMING_CALL_EVENT, OpenAICall
from ..openai.webhooks import DEFAULT_TOLERANCE_S, WebhookVerificationError, WebhookVerifier

__all__ = ["DEFAULT_WEBHOOK_PATH", "OpenAIWebhookEndpoint"]

log = logging.getLogger("voxline.runtime.openai_sip")

DEFAULT_WEBHOOK_PATH = "/openai/webhook"
# OpenAI's webhook bodies are small JSON; a call's SIP headers fit many times over.
MAX_BODY = 256 * 1024
_STATUS = {"missing_header": 401, "bad_signature": 401}


class OpenAIWebhookEndpoint:
    """The aiohttp handler of the webhook path. ``admit()``: why no call is taken now, or None;
    ``on_call(call)``: start the call's session. ``clock``: Unix seconds (tests pass their own)."""

    def __init__(
        self,
        secret: str,
        *,
        admit: Callable[[], str | None],
        on_call: Callable[[OpenAICall], None],
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = WebhookVerifier(secret, tolerance_s=tolerance_s)
        self._admit = admit
        self._on_call = on_call
        self._clock = clock
        self.stats: Counter[str] = Counter()

    def add_to(self, app: web.Application, path: str = DEFAULT_WEBHOOK_PATH) -> None:
        app.router.add_post(path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        refused = self._admit()
        if refused is not None:
            self.stats["webhook_busy"] += 1
            return web.Response(status=503, text=f"{refused}\n", headers={"Retry-After": "5"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            self.stats["webhook_bad_body"] += 1
            return web.Response(status=413, text="body too large\n")
        try:
            body = await request.content.read(MAX_BODY + 1)
        except (ConnectionError, web.HTTPException):
            return web.Response(status=400, text="body cut off\n")
        if len(body) > MAX_BODY:
            self.stats["webhook_bad_body"] += 1
            return web.Response(status=413, text="body too large\n")
        try:
            event = self.verifier.verify(request.headers, body, self._clock())
        except WebhookVerificationError as exc:
            self.stats[f"webhook_{exc.reason}"] += 1
            if exc.reason == "replayed":
                # Signed and in the window, but taken before: acknowledge without a second call.
                log.info(
                    "OpenAI webhook %s from %s already delivered",
                    request.headers.get("webhook-id"),
                    request.remote,
                )
                return web.json_response({"status": "duplicate"})
            log.info("refused OpenAI webhook from %s: %s (%s)", request.remote, exc, exc.reason)
            return web.Response(status=_STATUS.get(exc.reason, 400), text=f"{exc.reason}\n")
        if event.get("type") != INCOMING_CALL_EVENT:
            self.stats["webhook_ignored"] += 1
            webhook_id = request.headers.get("webhook-id")
            log.debug("OpenAI webhook %s ignored (type %r)", webhook_id, event.get("type"))
            return web.json_response({"status": "ignored"})
        try:
            call = OpenAICall(event, webhook_id=request.headers.get("webhook-id"))
        except ValueError as exc:
            self.stats["webhook_bad_body"] += 1
            log.info("refused OpenAI webhook: %s", exc)
            return web.Response(status=400, text=f"{exc}\n")
        self.stats["webhook_calls"] += 1
        log.info("OpenAI SIP call %s incoming (from %r)", call.call_id, call.caller_id())
        self._on_call(call)
        return web.json_response({"status": "ok"})
