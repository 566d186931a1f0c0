"""SRTP (RFC 3711) as a transform between the RTP core and its socket, with libsrtp (``pylibsrtp``).

``SrtpTransform(suite, local_key, remote_key)`` holds one libsrtp session per direction: ``protect``
what the ``RtpSession`` sends, ``unprotect`` what the socket receives before the session sees it. A
packet that fails authentication or the replay check is counted (``stats``) and dropped: a forged or
replayed packet costs the call nothing. RTCP (recognised by its payload type, which SRTCP leaves in
clear) is passed through as it is: the RTP core counts and drops it, as it does for plain RTCP.

The keys come from SDES (``voxline.sip.crypto``).
"""

from __future__ import annotations

import logging

import pylibsrtp

from .packet import is_rtcp

__all__ = ["SrtpTransform"]

log = logging.getLogger("voxline.rtp")

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


class SrtpTransform:
    """One SRTP stream pair: our key protects what we send, the peer's unprotects what we receive."""

    def __init__(self, suite: str, local_key: bytes, remote_key: bytes) -> None:
        profile = _PROFILES.get(suite)
        if profile is None:
            raise ValueError(f"suite must be one of {', '.join(_PROFILES)}, got {suite!r}")
        for name, key in (("local_key", local_key), ("remote_key", remote_key)):
            if len(key) != 30:
                raise ValueError(f"{name} must be 30 bytes (key and salt) for {suite}, got {len(key)}")
        self.suite = suite
        policy = pylibsrtp.Policy
        self._tx = pylibsrtp.Session(
            policy(key=local_key, ssrc_type=policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        )
        self._rx = pylibsrtp.Session(
            policy(key=remote_key, ssrc_type=policy.SSRC_ANY_INBOUND, srtp_profile=profile)
        )
        self.stats = {"protected": 0, "unprotected": 0, "auth_failed": 0, "replayed": 0, "protect_failed": 0}

    def protect(self, packet: bytes) -> bytes | None:
        """The SRTP packet for an RTP packet (None, counted, when libsrtp refuses it)."""
        try:
            data = self._tx.protect(packet)
        except pylibsrtp.Error as exc:
            self.stats["protect_failed"] += 1
            log.debug("SRTP protect failed: %s", exc)
            return None
        self.stats["protected"] += 1
        return data

    def unprotect(self, data: bytes) -> bytes | None:
        """The RTP packet inside ``data``, ``data`` itself for RTCP, or None (counted) when it fails
        authentication or is a replay."""
        if is_rtcp(data):
            return data
        try:
            packet = self._rx.unprotect(data)
        except pylibsrtp.Error as exc:
            key = "replayed" if "replay" in str(exc) else "auth_failed"
            if self.stats[key] == 0:
                log.info("SRTP packet dropped (%s); further ones are only counted", exc)
            self.stats[key] += 1
            return None
        self.stats["unprotected"] += 1
        return packet
