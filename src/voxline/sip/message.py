"""SIP messages (RFC 3261 §7, §20, §25): parse and serialize, sans-I/O.

``parse_message(data)`` turns one datagram (or one framed TCP message) into a ``SipRequest`` or
``SipResponse``; ``bytes(message)`` serializes it with a correct Content-Length. Header names are
case-insensitive, compact forms are expanded, folded lines are unfolded and comma-joined values of
list headers (Via, Route, Record-Route, Contact) become one entry each, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_MESSAGE_BYTES",
    "NameAddr",
    "SipHeaders",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "Via",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "reason_phrase",
]

MAX_MESSAGE_BYTES = 65535
"""Largest message accepted on any transport (a UDP datagram cannot be larger)."""

COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Allow",
        "Accept",
        "Supported",
        "Require",
        "User-Agent",
        "Server",
        "Subject",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Retry-After",
        "Reason",
        "Expires",
        "Event",
        "Session-Expires",
        "Unsupported",
        "Warning",
    )
}
# Headers whose comma-separated values are separate header fields (RFC 3261 §7.3.1). Never split
# the authentication headers: their values contain commas.
_LIST_HEADERS = frozenset({"via", "route", "record-route", "contact"})

_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~\-]+$")
_START_REQUEST = re.compile(r"^([A-Za-z0-9.!%*_+`'~\-]+) (\S+) SIP/(\d+\.\d+)$")
_START_RESPONSE = re.compile(r"^SIP/(\d+\.\d+) (\d{3}) ?(.*)$")


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code (RFC 3261 §21), or a generic one by class."""
    if status in _REASONS:
        return _REASONS[status]
    return {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}.get(
        status // 100, "Global Failure"
    )


class SipParseError(ValueError):
    """A message that cannot be parsed. ``request`` holds what was parseable of a request (start line
    and headers) when enough is there to answer it with 400, else None."""

    def __init__(self, reason: str, request: SipRequest | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request


def canonical_name(name: str) -> str:
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT:
        return COMPACT[lower]
    if lower in _CANONICAL:
        return _CANONICAL[lower]
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


class SipHeaders:
    """Ordered header fields with case-insensitive, compact-form-aware lookup."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"SipHeaders({self._items!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [v for n, v in self._items if n.lower() == key]

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, at the position of the first (or at the end)."""
        canon = canonical_name(name)
        key = canon.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n.lower() == key:
                if not placed:
                    out.append((canon, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((canon, value))
        self._items = out

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def copy(self) -> SipHeaders:
        new = SipHeaders()
        new._items = list(self._items)
        return new

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass(slots=True)
class SipMessage:
    headers: SipHeaders = field(default_factory=SipHeaders)
    body: bytes = b""

    # Convenience accessors for the headers every message has.
    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri} call_id={self.call_id!r}>"


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason} call_id={self.call_id!r}>"


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = data.find(sep)
        if pos >= 0:
            return data[:pos], data[pos + len(sep) :]
    return data, b""


def _split_list(value: str) -> list[str]:
    """Split a header value on top-level commas (not inside quotes or <...>)."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse one SIP message. Raises ``SipParseError`` (never anything else) on bad input.

    On datagrams, a Content-Length shorter than the remaining bytes truncates the body (§18.3) and a
    missing one means "the rest". ``stream`` means the body was framed by Content-Length already.
    """
    try:
        return _parse(data, stream)
    except SipParseError:
        raise
    except Exception as exc:  # defensive: any parser slip is a parse error, never a crash
        raise SipParseError(f"unparseable message ({type(exc).__name__}: {exc})") from None


def _parse(data: bytes, stream: bool) -> SipRequest | SipResponse:
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    # Leading CRLFs are keep-alives or stray line ends (§7.5).
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8") from None
    raw_lines = text.replace("\r\n", "\n").split("\n")
    start = raw_lines[0].strip()
    # Unfold continuation lines (§7.3.1): a line starting with whitespace continues the previous one.
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        elif line.strip():
            lines.append(line)
    headers = SipHeaders()
    header_error: str | None = None
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            header_error = f"malformed header line {line[:60]!r}"
            continue
        value = value.strip()
        canon = canonical_name(name)
        if canon.lower() in _LIST_HEADERS and value != "*":
            for part in _split_list(value):
                headers.add(canon, part)
        else:
            headers.add(canon, value)

    message: SipRequest | SipResponse
    m = _START_REQUEST.match(start)
    if m:
        message = SipRequest(headers=headers, method=m.group(1).upper(), uri=m.group(2))
        if m.group(3) != "2.0":
            raise SipParseError(f"unsupported SIP version {m.group(3)}", _answerable(message))
    else:
        r = _START_RESPONSE.match(start)
        if not r:
            raise SipParseError(f"bad start line {start[:80]!r}")
        status = int(r.group(2))
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range")
        message = SipResponse(headers=headers, status=status, reason=r.group(3).strip())
    answerable = _answerable(message) if isinstance(message, SipRequest) else None
    if header_error:
        raise SipParseError(header_error, answerable)

    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            raise SipParseError(f"bad Content-Length {length_text!r}", answerable)
        length = int(length_text)
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes", answerable)
        body = body[:length]
    elif stream:
        body = b""
    message.body = bytes(body)

    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if headers.get(required) is None:
            raise SipParseError(f"missing {required} header", answerable)
    try:
        vias = message.vias
        _, method = message.cseq
        message.from_  # noqa: B018  (validates)
        message.to  # noqa: B018
    except SipParseError as exc:
        raise SipParseError(exc.reason, answerable) from None
    if not vias:
        raise SipParseError("missing Via header", answerable)
    if isinstance(message, SipRequest):
        if method != message.method:
            raise SipParseError(f"CSeq method {method} does not match {message.method}", answerable)
        if not _looks_like_uri(message.uri):
            raise SipParseError(f"bad Request-URI {message.uri[:80]!r}", answerable)
    return message


def _looks_like_uri(uri: str) -> bool:
    try:
        parse_uri(uri)
    except SipParseError:
        return False
    return True


def _answerable(request: SipRequest) -> SipRequest | None:
    """The request itself when a 400 can be routed back: it needs a parseable top Via."""
    vias = request.headers.get_all("Via")
    if not vias:
        return None
    try:
        parse_via(vias[0])
    except SipParseError:
        return None
    return request


# ---------------------------------------------------------------------------------------------------
# Header value grammar


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for part in _split_semicolons(text):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        params[key] = value.strip().strip('"') if eq else None
    return params


def _split_semicolons(text: str) -> list[str]:
    out: list[str] = []
    quoted = False
    buf: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return out


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (also sips:, tel: is accepted as opaque)."""

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        port = f":{self.port}" if self.port is not None else ""
        hdrs = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{host}{port}{_format_params(self.params)}{hdrs}"


def _parse_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference {text!r}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host:port {text!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or not re.match(r"^[A-Za-z0-9.\-_:%]+$", host):
        raise SipParseError(f"bad host {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port in {text!r}")
        return host, int(port_text)
    return host, None


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips", "tel"):
        raise SipParseError(f"unsupported URI {text[:80]!r}")
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise SipParseError(f"empty tel URI {text!r}")
        return SipUri(scheme="tel", user=number, params=_parse_params(params))
    rest, _, hdrs = rest.partition("?")
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, _, pw = userinfo.partition(":")
        password = pw or None
    hostport, _, params = rest.partition(";")
    host, port = _parse_hostport(hostport)
    return SipUri(scheme, user, host, port, _parse_params(params), hdrs, password)


@dataclass(slots=True)
class NameAddr:
    """From/To/Contact/Route value: optional display name, URI, header parameters (tag, ...)."""

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if not text:
        raise SipParseError("empty address header")
    if "<" in text:
        lt = text.find("<")
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated <...> in {text[:80]!r}")
        display = text[:lt].strip()
        if display.startswith('"') and display.endswith('"') and len(display) >= 2:
            display = display[1:-1].replace('\\"', '"')
        uri = parse_uri(text[lt + 1 : gt])
        return NameAddr(uri, display or None, _parse_params(text[gt + 1 :].lstrip(";")))
    # addr-spec form: everything after the first ';' are header parameters (§20.10).
    spec, _, params = text.partition(";")
    return NameAddr(parse_uri(spec), None, _parse_params(params))


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {host}{port}{_format_params(self.params)}"


def parse_via(text: str) -> Via:
    m = re.match(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;]+)(.*)$", text)
    if not m:
        raise SipParseError(f"bad Via {text[:80]!r}")
    host, port = _parse_hostport(m.group(2))
    return Via(m.group(1).upper(), host, port, _parse_params(m.group(3).lstrip(";")))


def parse_cseq(text: str) -> tuple[int, str]:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN.match(parts[1]):
        raise SipParseError(f"bad CSeq {text[:40]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError(f"CSeq number {number} out of range")
    return number, parts[1].upper()


class StreamFramer:
    """Frames SIP messages on a byte stream (TCP) by Content-Length (§18.3).

    ``feed(data)`` returns the complete messages' bytes; ``error`` is set (and the stream must be
    closed) when a header section is unbounded or a Content-Length is bad.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self.error: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self.error:
            return []
        self._buf += data
        out: list[bytes] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 §3.5.1).
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self._max:
                    self.error = "header section exceeds the message size limit"
                return out
            head = bytes(self._buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, sep, value = line.partition(b":")
                if sep and name.strip().lower() in (b"content-length", b"l"):
                    text = value.strip()
                    if not text.isdigit():
                        self.error = f"bad Content-Length {text[:20]!r}"
                        return out
                    length = int(text)
            total = end + 4 + length
            if total > self._max:
                self.error = f"message of {total} bytes exceeds {self._max}"
                return out
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
