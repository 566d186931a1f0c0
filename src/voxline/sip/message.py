"""SIP messages (RFC 3261 §7, §20, §25): parse and serialize, sans-I/O.

``parse_message(data)`` turns one datagram (or one framed TCP message) into a ``SipRequest`` or
``SipResponse``; ``bytes(message)`` serializes it with a correct Content-Length. Header names are
case-insensitive, compact forms are expanded, folded lines are unfolded and comma-joined values of
list headers (Via, Route, Record-Route, Contact) become one entry each, in order.

Limits (an attacker's message must cost little to refuse): at most ``MAX_HEADER_FIELDS`` header
lines and fields, ``MAX_LIST_ENTRIES`` entries of one list header, ``MAX_HEADER_LINE`` characters in
one (unfolded) header line and ``MAX_PARAMS`` parameters in one value. Beyond them the parser stops
where it is and raises ``SipParseError`` with status 400 (too many) or 513 (too long / too large)
carrying a small answerable request (start line, top Via, From, To, Call-ID, CSeq) when there is
one, so the answer is never bigger than what it answers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADER_FIELDS",
    "MAX_HEADER_LINE",
    "MAX_LIST_ENTRIES",
    "MAX_MESSAGE_BYTES",
    "MAX_PARAMS",
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
    "summary_request",
]

MAX_MESSAGE_BYTES = 65535
"""Largest message accepted on any transport (a UDP datagram cannot be larger)."""
MAX_HEADER_FIELDS = 256
"""Header lines (folded ones included) and header fields (list entries included) of one message."""
MAX_LIST_ENTRIES = 70
"""Entries of one list header (Via, Route, Record-Route, Contact): Max-Forwards 70 bounds real paths."""
MAX_HEADER_LINE = 8192
"""Characters of one unfolded header line (the Request-Line included)."""
MAX_PARAMS = 64
"""Parameters of one URI or header value."""

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
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
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
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~\-]+$")
_START_REQUEST = re.compile(r"^([A-Za-z0-9.!%*_+`'~\-]+) (\S+) SIP/([0-9]+\.[0-9]+)$")
# Exactly three digits, then a space or the end: "SIP/2.0 4294967301 ..." is no 429 (RFC 4475 bigcode).
_START_RESPONSE = re.compile(r"^SIP/([0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?$")
_DIGITS = re.compile(r"^[0-9]{1,10}$")  # str.isdigit() takes "²", which int() refuses
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*+)"', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SINGLE_VALUED = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"}
)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code (RFC 3261 §21), or a generic one by class."""
    if status in _REASONS:
        return _REASONS[status]
    return {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}.get(
        status // 100, "Global Failure"
    )


class SipParseError(ValueError):
    """A message that cannot be parsed. ``request`` holds what was parseable of a request (start line
    and headers) when enough is there to answer it, else None; ``status`` is the answer: 400, or 505
    (SIP version), 416 (Request-URI scheme), 513 (too large)."""

    def __init__(
        self, reason: str, request: SipRequest | None = None, status: int = 400, *, limit: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request
        self.status = status
        self.limit = limit  # refused for a size or count limit, before being parsed in full


def canonical_name(name: str) -> str:
    # Cached for the short names real messages repeat; a long (attacker's) name is not kept.
    return _canonical_cached(name) if len(name) <= 64 else _canonical(name)


def _canonical(name: str) -> str:
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT:
        return COMPACT[lower]
    if lower in _CANONICAL:
        return _CANONICAL[lower]
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


_canonical_cached = functools.lru_cache(maxsize=1024)(_canonical)


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


# Tokens of a list header value: a quoted string, an <...> URI, a run of other text, or a comma.
_LIST_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+"?|<[^>]*+>?|[^",<]++|,', re.DOTALL)


def _split_list(value: str, limit: int = MAX_LIST_ENTRIES) -> list[str]:
    """Split a header value on top-level commas (not inside quotes or <...>), empty entries dropped.

    Stops after ``limit`` + 1 entries, so a value with 29,000 commas costs no more than one with 71:
    a result longer than ``limit`` means "too many" (the last entry then holds the unsplit rest).
    """
    if '"' not in value and "<" not in value:
        parts = value.split(",", limit)  # C speed, and stops by itself
    else:
        parts = []
        start = 0
        for m in _LIST_TOKEN.finditer(value):
            if m.group() == ",":
                parts.append(value[start : m.start()])
                start = m.end()
                if len(parts) >= limit:
                    break
        parts.append(value[start:])
    out = [p.strip() for p in parts]
    if len(out) > limit:
        return out  # over the limit: the caller refuses the message, empties or not
    return [p for p in out if p]


def parse_message(
    data: bytes, *, stream: bool = False, max_bytes: int = MAX_MESSAGE_BYTES
) -> SipRequest | SipResponse:
    """Parse one SIP message. Raises ``SipParseError`` (never anything else) on bad input.

    On datagrams, a Content-Length shorter than the remaining bytes truncates the body (§18.3) and a
    missing one means "the rest". ``stream`` means the body was framed by Content-Length already.
    A message over ``max_bytes`` is refused (513) after looking only at its header section.
    """
    try:
        return _parse(data, stream, max_bytes)
    except SipParseError:
        raise
    except Exception as exc:  # defensive: any parser slip is a parse error, never a crash
        raise SipParseError(f"unparseable message ({type(exc).__name__}: {exc})") from None


def _parse(data: bytes, stream: bool, max_bytes: int) -> SipRequest | SipResponse:
    # Leading CRLFs are keep-alives or stray line ends (§7.5).
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head, body = _split_head(data)
    if len(data) > max_bytes:
        raise _refused(f"message of {len(data)} bytes exceeds {max_bytes}", head, 513)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8") from None
    if text.count("\n") >= MAX_HEADER_FIELDS:  # counted in C before any per-line work
        raise _refused(f"more than {MAX_HEADER_FIELDS} header lines", head, 400)
    raw_lines = text.replace("\r\n", "\n").split("\n")
    start = raw_lines[0].strip()
    if len(start) > MAX_HEADER_LINE:
        raise _refused(f"start line longer than {MAX_HEADER_LINE} characters", head, 513)
    # Unfold continuation lines (§7.3.1): a line starting with whitespace continues the previous one.
    folded: list[list[str]] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and folded:
            folded[-1].append(line.strip())
        elif line.strip():
            folded.append([line])
    headers = SipHeaders()
    counts: dict[str, int] = {}
    header_error: str | None = None
    for parts in folded:
        line = parts[0] if len(parts) == 1 else " ".join([parts[0].rstrip(), *parts[1:]])
        if len(line) > MAX_HEADER_LINE:
            raise _refused(f"header line longer than {MAX_HEADER_LINE} characters", head, 513)
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            header_error = f"malformed header line {line[:60]!r}"
            continue
        value = value.strip()
        canon = canonical_name(name)
        key = canon.lower()
        seen = counts.get(key, 0)
        if key in _LIST_HEADERS and value != "*":
            entries = _split_list(value, MAX_LIST_ENTRIES - seen)
            if seen + len(entries) > MAX_LIST_ENTRIES:
                raise _refused(f"more than {MAX_LIST_ENTRIES} {canon} entries", head, 400)
            for entry in entries:
                headers._items.append((canon, entry))  # canon is canonical already
            counts[key] = seen + len(entries)
        else:
            headers._items.append((canon, value))
            counts[key] = seen + 1
        if len(headers) > MAX_HEADER_FIELDS:
            raise _refused(f"more than {MAX_HEADER_FIELDS} header fields", head, 400)

    message: SipRequest | SipResponse
    m = _START_REQUEST.match(start)
    if m:
        # Methods are case-sensitive (§7.1): "invite" is an unknown method, not INVITE.
        message = SipRequest(headers=headers, method=m.group(1), uri=m.group(2))
        if m.group(3) != "2.0":
            raise SipParseError(f"unsupported SIP version {m.group(3)}", _answerable(message), 505)
    else:
        r = _START_RESPONSE.match(start)
        if not r:
            loose = _loose_request_line(start)
            if loose is not None:
                # Extra spaces or LWS inside the Request-URI (RFC 4475 lwsstart, lwsruri): answer 400.
                request = SipRequest(headers=headers, method=loose[0], uri=loose[1])
                raise SipParseError(f"malformed Request-Line {start[:80]!r}", _answerable(request))
            raise SipParseError(f"bad start line {start[:80]!r}")
        if r.group(1) != "2.0":
            raise SipParseError(f"response of SIP version {r.group(1)}")
        status = int(r.group(2))
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} out of range")
        message = SipResponse(headers=headers, status=status, reason=(r.group(3) or "").strip())
    answerable = _answerable(message) if isinstance(message, SipRequest) else None
    if header_error:
        raise SipParseError(header_error, answerable)
    for key, count in counts.items():
        if count > 1 and key in _SINGLE_VALUED:
            # Two From, To, Call-ID, CSeq... (RFC 4475 multi01), two Content-Lengths (mcl01).
            raise SipParseError(f"more than one {canonical_name(key)} header", answerable)

    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not _DIGITS.match(length_text):
            raise SipParseError(f"bad Content-Length {length_text[:20]!r}", answerable)
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
        try:
            uri = parse_uri(message.uri)
        except SipParseError as exc:
            raise SipParseError(f"bad Request-URI {message.uri[:80]!r}", answerable, exc.status) from None
        if uri.headers:
            # Headers belong in the message, not the Request-URI (RFC 4475 escruri): refused, never used.
            raise SipParseError(f"Request-URI with headers {message.uri[:80]!r}", answerable)
    return message


def _loose_request_line(start: str) -> tuple[str, str] | None:
    """(method, URI) of a start line that is a Request-Line but for its spacing, else None."""
    parts = start.split()  # C speed: no regex backtracking over a long line of spaces
    if len(parts) >= 3 and _TOKEN.match(parts[0]) and parts[-1].startswith("SIP/"):
        return parts[0], " ".join(parts[1:-1])
    return None


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


_SUMMARY_FIELDS = {
    "Via": re.compile(r"\n[ \t]*(?:via|v)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE),
    "From": re.compile(r"\n[ \t]*(?:from|f)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE),
    "To": re.compile(r"\n[ \t]*(?:to|t)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE),
    "Call-ID": re.compile(r"\n[ \t]*(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE),
    "CSeq": re.compile(r"\n[ \t]*cseq[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE),
}


def summary_request(head: bytes, *, need_via: bool = True) -> SipRequest | None:
    """A request made of what an error response needs from a header section that is not parsed in
    full (too large, too many fields, unframeable): the start line, the first entry of the first Via
    and the first From, To, Call-ID and CSeq, each cut to ``MAX_HEADER_LINE``. None when that is not
    a request with a usable top Via (or, without ``need_via``, not a request). The fields are found
    by regex searches (C speed), nothing is split or parsed per line, so the cost stays far below
    that of parsing the message."""
    text = head.decode("utf-8", errors="replace")
    first, _, rest = text.partition("\n")
    start = first.strip()
    m = _START_REQUEST.match(start)
    method_uri = (m.group(1), m.group(2)) if m else _loose_request_line(start[:MAX_HEADER_LINE])
    if method_uri is None:
        return None
    request = SipRequest(method=method_uri[0], uri=method_uri[1][:MAX_HEADER_LINE])
    rest = "\n" + rest
    for name, pattern in _SUMMARY_FIELDS.items():
        found = pattern.search(rest)
        if found is None:
            continue
        value = found.group(1)[:MAX_HEADER_LINE].strip()
        if name == "Via":
            entries = _split_list(value, 1)
            value = entries[0] if entries else ""
        request.headers.add(name, value)
    return _answerable(request) if need_via else request


def _refused(reason: str, head: bytes, status: int) -> SipParseError:
    return SipParseError(reason, summary_request(head), status, limit=True)


# ---------------------------------------------------------------------------------------------------
# Header value grammar


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    parts = _split_semicolons(text)
    if len(parts) > MAX_PARAMS:
        raise SipParseError(f"more than {MAX_PARAMS} parameters in {text[:60]!r}")
    for part in parts:
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        params[key] = value.strip().strip('"') if eq else None
    return params


def _split_semicolons(text: str) -> list[str]:
    if '"' not in text:
        return [p.strip() for p in text.split(";", MAX_PARAMS + 1)]  # C speed; bounded
    out: list[str] = []
    quoted = False
    buf: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(buf).strip())
            buf = []
            if len(out) > MAX_PARAMS:
                return out
        else:
            buf.append(ch)
    out.append("".join(buf).strip())
    return out


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass(slots=True)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (also sips:, tel: is accepted as opaque).

    In From, To and Contact any scheme is taken (RFC 4475 unksm2): its text is kept in ``opaque``.
    """

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
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
            raise SipParseError(f"bad IPv6 reference {text[:80]!r}")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host:port {text[:80]!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or not re.match(r"^[A-Za-z0-9.\-_:%]+$", host):
        raise SipParseError(f"bad host {text[:80]!r}")
    if port_text:
        if not _DIGITS.match(port_text) or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port in {text[:80]!r}")
        return host, int(port_text)
    return host, None


def parse_uri(text: str, *, any_scheme: bool = False) -> SipUri:
    """Parse a sip:, sips: or tel: URI; another scheme raises ``SipParseError`` with status 416, or
    with ``any_scheme`` becomes an opaque ``SipUri`` (for From, To, Contact)."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.match(scheme):
        raise SipParseError(f"bad URI {text[:80]!r}")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips", "tel"):
        if any_scheme and rest:
            return SipUri(scheme=scheme, opaque=rest)
        raise SipParseError(f"unsupported URI scheme {scheme[:20]!r} in {text[:80]!r}", status=416)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise SipParseError(f"empty tel URI {text[:80]!r}")
        return SipUri(scheme="tel", user=number, params=_parse_params(params))
    user: str | None = None
    password: str | None = None
    # The user part may hold ';', '?' and ':' (RFC 4475 intmeth, semiuri); the host part never '@'.
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, _, pw = userinfo.partition(":")
        password = pw or None
    rest, _, hdrs = rest.partition("?")
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
        display = ""
        if self.display:
            display = '"' + self.display.replace("\\", "\\\\").replace('"', '\\"') + '" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if not text:
        raise SipParseError("empty address header")
    if text.startswith('"'):
        quoted = _QUOTED.match(text)
        if quoted is None:
            # RFC 4475 quotbal: the '<' inside the open quote is part of the display name.
            raise SipParseError(f"unterminated quoted string in {text[:80]!r}")
        rest = text[quoted.end() :].lstrip()
        if not rest.startswith("<"):
            raise SipParseError(f"no <URI> after the display name in {text[:80]!r}")
        return _angle_addr(rest, _QUOTED_PAIR.sub(r"\1", quoted.group(1)) or None)
    lt = text.find("<")
    if lt >= 0:
        # An unquoted display name; non-token characters in it are taken as they are (RFC 4475 baddn).
        return _angle_addr(text[lt:], text[:lt].strip() or None)
    # addr-spec form: everything after the first ';' are header parameters (§20.10).
    spec, _, params = text.partition(";")
    return NameAddr(parse_uri(spec, any_scheme=True), None, _parse_params(params))


def _angle_addr(text: str, display: str | None) -> NameAddr:
    gt = text.find(">")
    if gt < 0:
        raise SipParseError(f"unterminated <...> in {text[:80]!r}")
    uri = parse_uri(text[1:gt], any_scheme=True)
    after = text[gt + 1 :].strip()
    if after and not after.startswith(";"):
        raise SipParseError(f"text after <URI> in {text[:80]!r}")
    return NameAddr(uri, display, _parse_params(after[1:]))


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        """host:port, the port defaulted (5061 for TLS, else 5060): what §17.2.3 matches on."""
        port = self.port or (5061 if self.transport == "TLS" else 5060)
        return f"{self.host.lower()}:{port}"

    def stamp_received(self, source: tuple[str, int]) -> bool:
        """§18.2.1: ``received`` when the sent-by host is not the request's source; RFC 3581: an
        empty ``rport`` gets the source port. True when the Via changed."""
        changed = False
        if self.host != source[0]:
            self.params["received"] = source[0]
            changed = True
        if "rport" in self.params and self.params["rport"] is None:
            self.params["rport"] = str(source[1])
            changed = True
        return changed

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {host}{port}{_format_params(self.params)}"


# sent-protocol = protocol-name SLASH protocol-version SLASH transport, each a token (§25.1): a
# "SIP/7.0" Via still routes the 505 that answers its request (RFC 4475 badvers).
_VIA = re.compile(
    r"^\s*[A-Za-z0-9.!%*_+`'~\-]+\s*/\s*[A-Za-z0-9.!%*_+`'~\-]+\s*/\s*([A-Za-z0-9.!%*_+`'~\-]+)\s+([^;]+)(.*)$",
    re.ASCII | re.DOTALL,
)


def parse_via(text: str) -> Via:
    m = _VIA.match(text)
    if not m:
        raise SipParseError(f"bad Via {text[:80]!r}")
    host, port = _parse_hostport(m.group(2))
    return Via(m.group(1).upper(), host, port, _parse_params(m.group(3).lstrip(";")))


def parse_cseq(text: str) -> tuple[int, str]:
    parts = text.split()
    if len(parts) != 2 or not _DIGITS.match(parts[0]) or not _TOKEN.match(parts[1]):
        raise SipParseError(f"bad CSeq {text[:40]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError(f"CSeq number {number} out of range")
    return number, parts[1]  # case-sensitive, as the method (§20.16)


class StreamFramer:
    """Frames SIP messages on a byte stream (TCP) by Content-Length (§18.3).

    ``feed(data)`` returns the complete messages' bytes. ``error`` is set (and the stream must be
    closed) when a header section is unbounded or a Content-Length is bad, missing a value, repeated
    or too large; then ``error_head`` holds that message's header section and ``error_status`` the
    answer it deserves (400, or 513 for a message over ``max_bytes``), for ``summary_request``.
    ``partial`` says bytes of an unfinished message are waiting; ``pings`` counts RFC 5626 keep-alive
    pings (CRLFCRLF between messages), each owed one CRLF pong; the caller resets it.
    The work per ``feed`` is linear in the bytes fed, however they are split into segments.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self._scan_from = 0  # the header terminator is not in _buf before this offset
        self._total: int | None = None  # size of the message whose header section is in _buf
        self._crlf_bytes = 0
        self.pings = 0
        self.error: str | None = None
        self.error_status = 400
        self.error_head: bytes | None = None

    @property
    def partial(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.error:
            return []
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while True:
            if self._total is None:
                if self._scan_from == 0:
                    # Keep-alive CRLFs between messages (RFC 5626 §3.5.1); stray ones are skipped too.
                    crlfs = _LEADING_CRLFS.match(buf, pos)
                    if crlfs is not None:
                        self._crlf_bytes += crlfs.end() - pos
                        pos = crlfs.end()
                        self.pings += self._crlf_bytes // 4
                        self._crlf_bytes %= 4
                    if pos == len(buf) or buf[pos:] == b"\r":  # a CRLF may be split over segments
                        break
                    self._crlf_bytes = 0
                end = buf.find(b"\r\n\r\n", max(pos, pos + self._scan_from - 3))
                if end < 0:
                    self._scan_from = len(buf) - pos
                    if self._scan_from > self._max:
                        self.error = "header section exceeds the message size limit"
                    break
                head = bytes(buf[pos:end])
                total = self._length(head)
                if total is None:
                    break
                self._total = total
            if len(buf) - pos < self._total:
                break
            out.append(bytes(buf[pos : pos + self._total]))
            pos += self._total
            self._total = None
            self._scan_from = 0
        del buf[:pos]  # once per feed: no quadratic shifting for many small messages
        return out

    def _length(self, head: bytes) -> int | None:
        """The size of the message with header section ``head``, or None after setting ``error``."""
        values = _CONTENT_LENGTH.findall(head)
        text = values[0].strip() if values else b"0"
        if len(values) > 1:
            self._fail(head, "more than one Content-Length header", 400)  # RFC 4475 mcl01
            return None
        if not re.match(rb"^[0-9]{1,10}$", text):
            self._fail(head, f"bad Content-Length {text[:20].decode('latin-1')!r}", 400)
            return None
        total = len(head) + 4 + int(text)
        if total > self._max:
            self._fail(head, f"message of {total} bytes exceeds {self._max}", 513)
            return None
        return total

    def _fail(self, head: bytes, reason: str, status: int) -> None:
        self.error = reason
        self.error_status = status
        self.error_head = head


_LEADING_CRLFS = re.compile(rb"(?:\r\n)+")
# After a line end, so never the start line; folded values are not expected in Content-Length.
_CONTENT_LENGTH = re.compile(rb"\n[ \t]*(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
