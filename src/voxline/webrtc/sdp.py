"""What the signaling endpoint checks of an SDP offer, and which of its ICE candidates it keeps.

No I/O library: text in, text (or a reason) out.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address, ip_network

__all__ = ["MAX_OFFER_BYTES", "check_offer", "keep_candidates"]

MAX_OFFER_BYTES = 64 * 1024  # a browser's offer is a few kB


def check_offer(sdp: str) -> str | None:
    """Why ``sdp`` is not an offer this endpoint can answer (for a 400), or None."""
    lines = sdp.splitlines()
    if not lines or lines[0].strip() != "v=0":
        return "the body is not an SDP offer (it must start with v=0)"
    if not any(line.startswith("m=audio ") for line in lines):
        return "the offer has no audio (m=audio) section"
    if not any(line.startswith("a=ice-ufrag:") for line in lines):
        return "the offer has no ICE credentials (a=ice-ufrag)"
    if not any(line.startswith("a=fingerprint:") for line in lines):
        return "the offer has no DTLS fingerprint (a=fingerprint)"
    if not any("opus/48000" in line.lower() for line in lines if line.startswith("a=rtpmap:")):
        return "the offer has no Opus codec (a=rtpmap:... opus/48000)"
    return None


def keep_candidates(sdp: str, networks: Iterable[str]) -> tuple[str, int]:
    """``sdp`` with only the UDP candidates whose address lies in ``networks`` (CIDRs), and how many
    were dropped. mDNS names (``*.local``) are dropped too: resolving them would be multicast
    traffic on the LAN. With every candidate dropped the peer cannot connect (it fails its ICE)."""
    nets = [ip_network(n, strict=False) for n in networks]
    out: list[str] = []
    dropped = 0
    for line in sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n"):
        if line.startswith("a=candidate:"):
            parts = line.split()
            ok = False
            if len(parts) >= 8 and parts[2].lower() == "udp":
                try:
                    address = ip_address(parts[4])
                except ValueError:
                    address = None
                ok = address is not None and any(address in net for net in nets)
            if not ok:
                dropped += 1
                continue
        out.append(line)
    return ("\r\n" if "\r\n" in sdp else "\n").join(out), dropped
