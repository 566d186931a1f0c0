"""The Twilio voice webhook: answers with TwiML connecting the call to the stream endpoint (aiohttp).

The webhook reads only a form body (415 otherwise); a malformed or cut-off one gets 400. With a
Twilio auth token configured, a request without a valid ``X-Twilio-Signature`` gets 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import hdrs, web

from ._base import Stats
from .access import UpgradeRequest, public_url
from .config import CarrierConfig
from .twiml import SIGNATURE_HEADER, connect_stream_twiml, validate_signature

__all__ = ["TwilioVoiceWebhook"]

log = logging.getLogger("voxline.carriers")


class TwilioVoiceWebhook:
    """The aiohttp handler of ``CarrierConfig.voice_path`` (GET and POST)."""

    def __init__(self, config: CarrierConfig, stats: Stats, count_once: Callable[[str, str], None]) -> None:
        self.config = config
        self.stats = stats
        self._count_once = count_once

    async def __call__(self, request: web.Request) -> web.Response:
        """Answer Twilio's voice webhook with TwiML connecting the call to the stream endpoint."""
        cfg = self.config
        form = await self._webhook_form(request)
        if isinstance(form, web.Response):
            return form
        params = [(key, value) for key, value in form.items() if isinstance(value, str)]
        origin = UpgradeRequest(
            request.raw_path, request.headers, request.host, request.secure, request.remote
        )
        if cfg.twilio_auth_token is not None:
            url = public_url(cfg, origin, websocket=False)
            if not validate_signature(
                cfg.twilio_auth_token, request.headers.get(SIGNATURE_HEADER), url, params
            ):
                self.stats["webhook_refused"] += 1
                log.info("refused Twilio webhook from %s: invalid %s", request.remote, SIGNATURE_HEADER)
                return web.Response(status=403, text="invalid signature\n")
        fields = dict(params)
        if cfg.twiml_parameters is not None:
            custom = dict(cfg.twiml_parameters(fields))
        else:
            custom = {key: fields[key] for key in ("From", "To") if key in fields}
        stream_url = cfg.stream_url or public_url(cfg, origin, websocket=True, path=cfg.twilio_path)
        self.stats["webhooks"] += 1
        return web.Response(text=connect_stream_twiml(stream_url, custom), content_type="text/xml")

    async def _webhook_form(self, request: web.Request) -> Mapping[str, Any] | web.Response:
        """The webhook's form fields, or the answer to a body that is not a form.

        Twilio posts ``application/x-www-form-urlencoded``; other bodies (multipart, which aiohttp
        would spool to temporary files) are refused with 415 before they are read.
        """
        if request.method != "POST":
            return {}
        declared = hdrs.CONTENT_TYPE in request.headers
        if declared and request.content_type != "application/x-www-form-urlencoded":
            self._count_once("webhook_unsupported_type", f"Twilio webhook: 415 for {request.content_type!r}")
            return web.Response(status=415, text="expected application/x-www-form-urlencoded\n")
        try:
            return await request.post()
        except (ValueError, LookupError) as exc:  # undecodable bytes, an unknown charset
            kind = type(exc).__name__
            self._count_once("webhook_bad_body", f"Twilio webhook: 400, malformed form ({kind})")
            return web.Response(status=400, text="malformed form body\n")
        except (ConnectionError, web.RequestPayloadError) as exc:  # cut off, broken chunked framing
            kind = type(exc).__name__
            self._count_once("webhook_bad_body", f"Twilio webhook: 400, body cut off ({kind})")
            return web.Response(status=400, text="incomplete body\n")
