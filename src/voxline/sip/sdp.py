"""SDP (RFC 4566) parse/build and the offer/answer rules of RFC 3264 for one audio stream.

Supported: PCMU (PT 0), PCMA (PT 8), telephone-event/8000 (dynamic PT), ``c=IN IP4`` and
``c=IN IP6``, ``a=ptime``, and the directions sendrecv / sendonly / recvonly / inactive (hold).
SRTP with SDES keys (RTP/SAVP, or RTP/AVP with ``a=crypto`` lines as best-effort offers do) by the
``srtp`` policy of ``voxline.sip.crypto``; DTLS-SRTP (UDP/TLS/RTP/SAVP) is not supported.

The address RTP goes to must be a unicast IP address (an answer refuses a host name: resolving a
stranger's name would block the event loop and send media wherever it points). A line we do not
use may be odd (``a=rtpmap:31 LPC`` without a clock rate on a video stream, RFC 4475) without
failing the whole description. At most ``MAX_SDP_BYTES`` and ``MAX_MEDIA`` m= lines are parsed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Literal

from ..audio import AudioFormat
from ..audio import codecs as audio_codecs
from .crypto import SUITES, CryptoAttribute, SrtpKeys, SrtpPolicy, format_crypto, new_key, usable_crypto

__all__ = [
    "CODECS",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "Codec",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "NoCommonCodec",
    "NotAcceptable",
    "SdpError",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "build_offer",
    "parse_sdp",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_DIRECTIONS: dict[str, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "sendonly",
    "recvonly": "recvonly",
    "inactive": "inactive",
}
_REVERSE: dict[Direction, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


MAX_SDP_BYTES = 16384
"""Largest session description parsed (real ones are well under 2 KB)."""
MAX_MEDIA = 16
"""Most m= lines in one session description."""


class SdpError(ValueError):
    """A session description that cannot be parsed or used."""


class NotAcceptable(SdpError):
    """A well-formed offer we cannot take (answered with 488 and a Warning of ``warn_code``)."""

    warn_code = 305  # Incompatible media format (RFC 3261 §20.43)


class NoCommonCodec(NotAcceptable):
    """The offer has no codec we support (answered with 488)."""


class BadMediaAddress(NotAcceptable):
    """The audio stream's address is a host name, multicast or broadcast: no RTP goes there."""

    warn_code = 301  # Incompatible network address formats


@dataclass(frozen=True, slots=True)
class Codec:
    """A negotiated codec: its SDP name and the payload type this session uses for it."""

    name: str  # "PCMU" / "PCMA"
    payload_type: int
    clock_rate: int = 8000

    @property
    def format(self) -> AudioFormat:
        entry = audio_codecs.by_sdp_name(self.name, self.clock_rate)
        if entry is None:
            raise ValueError(f"no audio format for codec {self.name}/{self.clock_rate}")
        return entry.format

    @property
    def encoding(self) -> Literal["pcmu", "pcma"]:
        return "pcmu" if self.format.encoding == "pcmu" else "pcma"


# What SIP calls carry: the codecs of the table with a static RTP payload type (G.711).
CODECS: dict[str, Codec] = {
    c.sdp_name: Codec(c.sdp_name, c.payload_type, c.clock_rate)
    for c in audio_codecs.CODECS
    if c.sdp_name is not None and c.payload_type is not None
}
_STATIC_NAMES = {c.payload_type: c.name for c in CODECS.values()}
DEFAULT_DTMF_PT = 101


@dataclass(slots=True)
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[str]
    connection: tuple[str, str] | None = None  # (addrtype "IP4"/"IP6", address)
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # pt -> (name, rate, channels)
    fmtp: dict[int, str] = field(default_factory=dict)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)  # all others, in order
    direction: Direction | None = None
    ptime: int | None = None

    def codec_name(self, pt: int) -> tuple[str, int] | None:
        if pt in self.rtpmap:
            name, rate, _ = self.rtpmap[pt]
            return name, rate
        if pt in _STATIC_NAMES:
            return _STATIC_NAMES[pt], 8000
        return None


@dataclass(slots=True)
class SessionDescription:
    origin: tuple[str, int, int, str, str, str] = ("-", 0, 0, "IN", "IP4", "127.0.0.1")
    session_name: str = "-"
    connection: tuple[str, str] | None = None
    media: list[MediaDescription] = field(default_factory=list)
    direction: Direction | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def audio(self) -> MediaDescription | None:
        for m in self.media:
            if m.media == "audio" and m.port != 0:
                return m
        return None

    def to_bytes(self) -> bytes:
        user, sid, ver, nettype, addrtype, addr = self.origin
        lines = ["v=0", f"o={user} {sid} {ver} {nettype} {addrtype} {addr}", f"s={self.session_name}"]
        if self.connection:
            lines.append(f"c=IN {self.connection[0]} {self.connection[1]}")
        lines.append("t=0 0")
        if self.direction:
            lines.append(f"a={self.direction}")
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}")
            if m.connection:
                lines.append(f"c=IN {m.connection[0]} {m.connection[1]}")
            for pt, (name, rate, channels) in m.rtpmap.items():
                lines.append(f"a=rtpmap:{pt} {name}/{rate}" + (f"/{channels}" if channels != 1 else ""))
            for pt, params in m.fmtp.items():
                lines.append(f"a=fmtp:{pt} {params}")
            if m.ptime:
                lines.append(f"a=ptime:{m.ptime}")
            if m.direction:
                lines.append(f"a={m.direction}")
            lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()


def _connection(value: str) -> tuple[str, str]:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value!r}")
    # A multicast TTL suffix (addr/ttl) is dropped; unicast is all we send to.
    return parts[1], parts[2].split("/")[0]


_UINT = re.compile(r"^[0-9]{1,10}$")  # str.isdigit() takes "²", and int() of 5,000 digits raises
_ORIGIN_NUMBER = re.compile(r"^[0-9]{1,20}$")


def _is_small_int(text: str) -> bool:
    return _UINT.match(text) is not None


def _is_pt(text: str) -> bool:
    return _is_small_int(text) and int(text) <= 127


def _rtpmap(value: str) -> tuple[int, tuple[str, int, int]] | None:
    """``<pt> <name>/<rate>[/<channels>]`` as (pt, (name, rate, channels)), or None when malformed."""
    pt_text, _, enc = value.partition(" ")
    enc_parts = enc.strip().split("/")
    if not _is_pt(pt_text) or len(enc_parts) < 2 or not enc_parts[0] or not _is_small_int(enc_parts[1]):
        return None
    channels = int(enc_parts[2]) if len(enc_parts) > 2 and _is_small_int(enc_parts[2]) else 1
    return int(pt_text), (enc_parts[0], int(enc_parts[1]), channels)


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse a session description. Raises ``SdpError`` naming the bad line."""
    if len(data) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(data)} bytes exceeds {MAX_SDP_BYTES}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    sd = SessionDescription()
    current: MediaDescription | None = None
    seen_v = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line[:60]!r}")
        kind, value = line[0], line[2:]
        if kind == "v":
            if value != "0":
                raise SdpError(f"unsupported SDP version {value!r}")
            seen_v = True
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6 or not _ORIGIN_NUMBER.match(parts[1]) or not _ORIGIN_NUMBER.match(parts[2]):
                raise SdpError(f"bad o= line {value!r}")
            sd.origin = (parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5])
        elif kind == "s":
            sd.session_name = value or "-"
        elif kind == "c":
            if current is None:
                sd.connection = _connection(value)
            else:
                current.connection = _connection(value)
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"bad m= line {value!r}")
            port_text = parts[1].split("/")[0]
            if not _is_small_int(port_text) or int(port_text) > 65535:
                raise SdpError(f"bad port in m= line {value!r}")
            if len(sd.media) == MAX_MEDIA:
                raise SdpError(f"more than {MAX_MEDIA} m= lines")
            current = MediaDescription(parts[0], int(port_text), parts[2], parts[3:])
            sd.media.append(current)
        elif kind == "a":
            name, colon, arg = value.partition(":")
            attr_value: str | None = arg if colon else None
            direction = _DIRECTIONS.get(name)
            if direction is not None and attr_value is None:
                if current is None:
                    sd.direction = direction
                else:
                    current.direction = direction
            elif current is None:
                sd.attributes.append((name, attr_value))
            elif name == "rtpmap":
                mapping = _rtpmap(attr_value or "")
                if mapping is not None:
                    current.rtpmap[mapping[0]] = mapping[1]
                else:
                    # Kept as an opaque attribute: a payload type without a valid rtpmap is never
                    # chosen (a static one keeps its RFC 3551 meaning); the rest of the offer works.
                    current.attributes.append((name, attr_value))
            elif name == "fmtp" and attr_value is not None:
                pt_text, _, params = attr_value.partition(" ")
                if _is_pt(pt_text):
                    current.fmtp[int(pt_text)] = params.strip()
            elif name == "ptime" and attr_value is not None and _is_small_int(attr_value.strip()):
                current.ptime = int(attr_value.strip())
            else:
                current.attributes.append((name, attr_value))
        # Other line types (i, u, e, p, b, t, r, z, k) carry nothing we act on.
    if not seen_v:
        raise SdpError("missing v= line")
    return sd


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What one side agreed for the audio stream."""

    codec: Codec
    remote_host: str
    remote_port: int
    dtmf_payload_type: int | None
    direction: Direction  # OUR direction (sendrecv, or sendonly/recvonly/inactive while held)
    ptime: int = 20
    srtp: SrtpKeys | None = None  # SRTP keys when the stream is protected, None for plain RTP

    @property
    def on_hold(self) -> bool:
        """The peer put the call on hold: it does not want to receive, or gave no address."""
        return self.direction in ("recvonly", "inactive") or self.remote_host in ("0.0.0.0", "::")

    @property
    def remote_addr(self) -> tuple[str, int]:
        return (self.remote_host, self.remote_port)


def _addr_of(sd: SessionDescription, m: MediaDescription) -> tuple[str, str]:
    """The (addrtype, address) RTP goes to: a unicast IP literal of that type (0.0.0.0 / :: = hold)."""
    conn = m.connection or sd.connection
    if conn is None:
        raise SdpError("no c= line for the audio stream")
    addrtype, host = conn
    try:
        ip = ip_address(host)
    except ValueError:
        raise BadMediaAddress(f"c= address {host[:60]!r} is not an IP address") from None
    if ip.version != (4 if addrtype == "IP4" else 6):
        raise BadMediaAddress(f"c= address {host!r} is not IN {addrtype}")
    if ip.is_multicast or host == "255.255.255.255":
        raise BadMediaAddress(f"c= address {host!r} is not unicast")
    return addrtype, str(ip)


def _telephone_event(m: MediaDescription) -> int | None:
    for fmt in m.formats:
        if _is_pt(fmt):
            name = m.codec_name(int(fmt))
            if name and name[0].lower() == "telephone-event" and name[1] == 8000:
                return int(fmt)
    return None


def _addrtype(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def answer_offer(
    offer: SessionDescription,
    local_host: str,
    local_port: int,
    *,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    session_id: int = 0,
    session_version: int = 0,
    hold: bool = False,
    srtp: SrtpPolicy = "off",
    local_key: bytes | None = None,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (RFC 3264 §6): the first codec in the OFFER's order that we support.

    Raises ``NoCommonCodec`` when there is none, ``SdpError`` when the offer has no usable audio.
    ``hold`` answers with us not sending (e.g. to put the peer on hold ourselves). ``srtp``: the
    policy (``voxline.sip.crypto``); ``local_key``: our SRTP key when the call has one already (the
    answer of the same call made again, a re-INVITE), else a new one is made.
    """
    audio_index = next((i for i, m in enumerate(offer.media) if m.media == "audio" and m.port != 0), None)
    if audio_index is None:
        raise NoCommonCodec("the offer has no active audio stream")
    m = offer.media[audio_index]
    proto = m.proto.upper()
    if proto not in ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"):
        raise NoCommonCodec(f"unsupported media transport {m.proto}")
    keys = _answer_crypto(m, proto in ("RTP/SAVP", "RTP/SAVPF"), srtp, local_key)
    chosen: Codec | None = None
    for fmt in m.formats:
        if not _is_pt(fmt):
            continue
        named = m.codec_name(int(fmt))
        if named and named[0].upper() in codecs and named[1] == 8000:
            chosen = Codec(named[0].upper(), int(fmt))
            break
    if chosen is None:
        raise NoCommonCodec(f"no common codec in offer formats {' '.join(m.formats)} (we support {codecs})")
    dtmf = _telephone_event(m)
    _, host = _addr_of(offer, m)
    offered_dir: Direction = m.direction or offer.direction or "sendrecv"
    ours = _REVERSE[offered_dir]
    if hold:
        ours = {"sendrecv": "sendonly", "recvonly": "recvonly"}.get(ours, "inactive")  # type: ignore[assignment]
    negotiated = NegotiatedMedia(chosen, host, m.port, dtmf, ours, m.ptime or 20, keys)

    answer = SessionDescription(
        origin=("voxline", session_id, session_version, "IN", _addrtype(local_host), local_host),
        session_name="voxline",
        connection=(_addrtype(local_host), local_host),
    )
    # One m= line per offered stream (RFC 3264 §6); the ones we do not take get port 0.
    for i, om in enumerate(offer.media):
        if i != audio_index:
            answer.media.append(MediaDescription(om.media, 0, om.proto, om.formats[:1]))
            continue
        formats = [str(chosen.payload_type)]
        rtpmap = {chosen.payload_type: (chosen.name, 8000, 1)}
        fmtp: dict[int, str] = {}
        if dtmf is not None:
            formats.append(str(dtmf))
            rtpmap[dtmf] = ("telephone-event", 8000, 1)
            fmtp[dtmf] = "0-16"
        attributes: list[tuple[str, str | None]] = []
        if keys is not None:
            attributes.append(
                ("crypto", format_crypto(CryptoAttribute(keys.tag, keys.suite, keys.local_key)))
            )
        answer.media.append(
            MediaDescription("audio", local_port, m.proto, formats, None, rtpmap, fmtp, attributes, ours, 20)
        )
    return answer, negotiated


def _answer_crypto(
    m: MediaDescription, secure: bool, policy: SrtpPolicy, local_key: bytes | None
) -> SrtpKeys | None:
    """The SRTP keys of our answer to ``m`` (None: plain RTP), or NotAcceptable (488) saying why."""
    lines = [v for k, v in m.attributes if k == "crypto" and v is not None]
    if policy == "off":
        if secure:
            raise NotAcceptable(f"{m.proto} offered, but SRTP is off here (srtp = off)")
        return None  # a best-effort offer's a=crypto lines are ignored: plain RTP
    good, reasons = usable_crypto(lines)
    if good:
        chosen = good[0]
        key = local_key if local_key is not None and len(local_key) == SUITES[chosen.suite] else None
        return SrtpKeys(chosen.suite, chosen.tag, key or new_key(chosen.suite), chosen.key)
    why = "; ".join(reasons) if reasons else "no a=crypto line"
    if secure:
        raise NotAcceptable(f"{m.proto} offered without a usable SDES key ({why})")
    if policy == "require":
        raise NotAcceptable(f"SRTP is required here and the offer has no usable SDES key ({why})")
    return None


def build_offer(
    local_host: str,
    local_port: int,
    *,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    dtmf_payload_type: int | None = DEFAULT_DTMF_PT,
    direction: Direction = "sendrecv",
    session_id: int = 0,
    session_version: int = 0,
    srtp: SrtpPolicy = "off",
    keys: Sequence[bytes] = (),
) -> SessionDescription:
    """Our offer. ``srtp``: ``offer`` adds ``a=crypto`` lines to an RTP/AVP stream (best effort: a
    plain peer answers plain RTP), ``require`` offers RTP/SAVP. ``keys``: our master key for each
    suite of ``SUITES`` in order (made anew when not given; kept by the caller for re-offers)."""
    formats: list[str] = []
    rtpmap: dict[int, tuple[str, int, int]] = {}
    for name in codecs:
        if name not in CODECS:
            raise ValueError(f"codecs: unsupported codec {name!r} (supported: {sorted(CODECS)})")
        pt = CODECS[name].payload_type
        formats.append(str(pt))
        rtpmap[pt] = (name, 8000, 1)
    fmtp: dict[int, str] = {}
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
        rtpmap[dtmf_payload_type] = ("telephone-event", 8000, 1)
        fmtp[dtmf_payload_type] = "0-16"
    addrtype = _addrtype(local_host)
    attributes: list[tuple[str, str | None]] = []
    if srtp != "off":
        suites = list(SUITES)
        if keys and len(keys) != len(suites):
            raise ValueError(f"keys: one per suite ({len(suites)}), got {len(keys)}")
        for tag, suite in enumerate(suites, 1):
            key = keys[tag - 1] if keys else new_key(suite)
            attributes.append(("crypto", format_crypto(CryptoAttribute(tag, suite, key))))
    proto = "RTP/SAVP" if srtp == "require" else "RTP/AVP"
    return SessionDescription(
        origin=("voxline", session_id, session_version, "IN", addrtype, local_host),
        session_name="voxline",
        connection=(addrtype, local_host),
        media=[
            MediaDescription(
                "audio", local_port, proto, formats, None, rtpmap, fmtp, attributes, direction, 20
            )
        ],
    )


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """What an answer to our offer means: the first codec it lists that we offered."""
    m = answer.audio()
    if m is None:
        raise NoCommonCodec("the answer rejected the audio stream")
    ours = offer.audio()
    offered = {int(f) for f in ours.formats if _is_pt(f)} if ours else set()
    acceptable = offered | set(_STATIC_NAMES)
    chosen: Codec | None = None
    for fmt in m.formats:
        if not _is_pt(fmt):
            continue
        named = m.codec_name(int(fmt))
        if named and named[0].upper() in CODECS and named[1] == 8000 and int(fmt) in acceptable:
            chosen = Codec(named[0].upper(), int(fmt))
            break
    if chosen is None:
        raise NoCommonCodec(f"the answer has no codec we offered ({' '.join(m.formats)})")
    _, host = _addr_of(answer, m)
    answered: Direction = m.direction or answer.direction or "sendrecv"
    keys = _accept_crypto(ours, m) if ours is not None else None
    return NegotiatedMedia(chosen, host, m.port, _telephone_event(m), _REVERSE[answered], m.ptime or 20, keys)


def _accept_crypto(ours: MediaDescription, m: MediaDescription) -> SrtpKeys | None:
    """The SRTP keys an answer picked from our offer's ``a=crypto`` lines (None: plain RTP)."""
    offered, _ = usable_crypto(v for k, v in ours.attributes if k == "crypto" and v is not None)
    if not offered:
        return None
    answered, reasons = usable_crypto(v for k, v in m.attributes if k == "crypto" and v is not None)
    by_tag = {a.tag: a for a in offered}
    for attr in answered:
        mine = by_tag.get(attr.tag)
        if mine is not None and mine.suite == attr.suite:
            return SrtpKeys(attr.suite, attr.tag, mine.key, attr.key)
    if ours.proto.upper() == "RTP/SAVP" or m.proto.upper() in ("RTP/SAVP", "RTP/SAVPF"):
        why = "; ".join(reasons) if reasons else "none of our tags and suites"
        raise NotAcceptable(f"the answer has no usable a=crypto line ({why})")
    return None  # our best-effort offer was answered with plain RTP
