"""Who may start a call, beyond the source allowlist: digest authentication of new INVITEs (the
server side of RFC 3261 §22 / RFC 7616 / RFC 8760) and a per-source rate limit. Sans-I/O: the core
asks with the request and the time, and answers what the verdict says.

``DigestVerifier``: nonces are stateless (no table of issued nonces a stranger could fill): the
time they were made, a random part and an HMAC-SHA-256 of both under a key of this process's own.
A response is checked against the password before the nonce is (``hmac.compare_digest``): a right
answer on an expired or foreign nonce gets a new challenge with ``stale=true`` (the client answers
it without asking its user), a wrong answer gets 403. ``qop=auth`` is required (we only offer it),
and each nonce's ``nc`` must grow (a replayed Authorization gets 403): the last ``nc`` of the most
recent nonces is kept in a bounded table, and a nonce older than the oldest one forgotten is taken
as stale, so forgetting never lets a replay in. An Authorization that cannot be read is a 400.

``RateLimiter``: a token bucket per source IP (``rate`` new INVITEs a second, bursts of ``burst``);
over it, the core answers 503 with ``Retry-After`` (stateless: a flood gets no retransmissions).
At most ``max_sources`` buckets are kept, least recently used dropped first (a dropped source
starts again with a full bucket: memory stays bounded, the worst case is one extra burst).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .auth import ALGORITHMS, digest_response, parse_digest_params

__all__ = ["AuthVerdict", "DigestVerifier", "RateLimiter"]

_NONCE_TABLE = 4096  # nonces whose last nc is remembered


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """What to do with the request: ``status`` 0 = let it in (``username`` authenticated), else
    answer ``status`` (401 with ``challenges``, 403, 400) giving ``reason``."""

    status: int
    reason: str = ""
    challenges: tuple[str, ...] = ()
    username: str = ""


class DigestVerifier:
    """Checks the Authorization of requests against ``users`` (name -> password) in ``realm``.
    ``algorithms``: offered in this order, one WWW-Authenticate each (RFC 8760 §2.4: the preferred
    first). ``nonce_ttl``: seconds a nonce is good for."""

    def __init__(
        self,
        users: Mapping[str, str],
        realm: str = "voxline",
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        key: bytes | None = None,
    ) -> None:
        if not users:
            raise ValueError("sip_auth: at least one user:password is needed")
        for name, password in users.items():
            if not name or not password or any(c in name for c in '":\r\n'):
                raise ValueError(f"sip_auth: user {name!r} needs a name (no quotes or colons) and a password")
        if not realm or any(c in realm for c in '"\r\n'):
            raise ValueError(f"sip_auth_realm: {realm!r} is not a usable realm")
        algos = tuple(a.upper() for a in algorithms)
        if not algos or any(a not in ALGORITHMS for a in algos):
            raise ValueError(f"sip_auth_algorithms must be some of {ALGORITHMS}, got {tuple(algorithms)}")
        if not nonce_ttl > 0:
            raise ValueError(f"nonce_ttl must be > 0 seconds, got {nonce_ttl}")
        self.users = dict(users)
        self.realm = realm
        self.algorithms = algos
        self.nonce_ttl = nonce_ttl
        self._key = key or secrets.token_bytes(32)
        self._nc: OrderedDict[str, int] = OrderedDict()
        self._forgotten_before = -math.inf  # nonces made before this are no longer tracked

    # ------------------------------------------------------------------------------------ nonces

    def _mac(self, made: str, rand: str) -> str:
        return hmac.new(self._key, f"{made}.{rand}.{self.realm}".encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self, now: float) -> str:
        made = f"{int(now * 1000):x}"
        rand = secrets.token_hex(8)
        return f"{made}.{rand}.{self._mac(made, rand)}"

    def _nonce_time(self, nonce: str) -> float | None:
        """When we made ``nonce`` (seconds), or None when it is not one of ours."""
        made, _, rest = nonce.partition(".")
        rand, _, mac = rest.partition(".")
        if not made or not rand or not mac or len(made) > 16:
            return None
        try:
            when = int(made, 16) / 1000
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(made, rand)):
            return None
        return when

    def challenges(self, now: float, stale: bool = False) -> tuple[str, ...]:
        nonce = self.nonce(now)
        extra = ", stale=true" if stale else ""
        return tuple(
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={a}, qop="auth"{extra}'
            for a in self.algorithms
        )

    # ------------------------------------------------------------------------------------ check

    def check(self, method: str, authorizations: Sequence[str], now: float) -> AuthVerdict:
        """The verdict on a request with these Authorization header values."""
        ours: dict[str, str] | None = None
        for value in authorizations:
            params = parse_digest_params(value)
            if params is None:
                continue  # another scheme: not for us
            if params.get("realm") == self.realm:
                ours = params
                break
        if ours is None:
            return AuthVerdict(401, "Unauthorized", self.challenges(now))
        missing = [k for k in ("username", "nonce", "uri", "response") if not ours.get(k)]
        if missing:
            return AuthVerdict(400, f"Bad Request (Authorization without {', '.join(missing)})")
        algorithm = ours.get("algorithm", "MD5").upper()
        if algorithm not in self.algorithms:
            return AuthVerdict(400, f"Bad Request (digest algorithm {algorithm[:20]!r} not offered)")
        qop = ours.get("qop", "").lower()
        nc_text = ours.get("nc", "")
        cnonce = ours.get("cnonce", "")
        if qop != "auth" or not cnonce or len(nc_text) != 8:
            return AuthVerdict(400, "Bad Request (qop=auth with nc and cnonce is required)")
        try:
            nc = int(nc_text, 16)
        except ValueError:
            return AuthVerdict(400, "Bad Request (nc is not hexadecimal)")
        username = ours["username"]
        password = self.users.get(username)
        if password is None:
            return AuthVerdict(403, "Forbidden (unknown user or wrong password)")
        expected = digest_response(
            username=username,
            password=password,
            realm=self.realm,
            nonce=ours["nonce"],
            method=method,
            uri=ours["uri"],  # the client's; a proxy may have rewritten our Request-URI since
            algorithm=algorithm,
            qop="auth",
            nc=nc_text,
            cnonce=cnonce,
        )
        if not hmac.compare_digest(expected.encode(), ours["response"].lower().encode()):
            return AuthVerdict(403, "Forbidden (unknown user or wrong password)")
        nonce = ours["nonce"]
        made = self._nonce_time(nonce)
        if made is None or not made <= now < made + self.nonce_ttl or made <= self._forgotten_before:
            return AuthVerdict(401, "Unauthorized (stale nonce)", self.challenges(now, stale=True))
        last = self._nc.get(nonce)
        if last is not None and nc <= last:
            return AuthVerdict(403, "Forbidden (replayed credentials)")
        self._nc[nonce] = nc
        self._nc.move_to_end(nonce)
        while len(self._nc) > _NONCE_TABLE:
            old, _ = self._nc.popitem(last=False)
            old_made = self._nonce_time(old)
            if old_made is not None:
                self._forgotten_before = max(self._forgotten_before, old_made)
        return AuthVerdict(0, username=username)


class RateLimiter:
    """Token buckets per source (see the module docstring)."""

    def __init__(self, rate: float, burst: float | None = None, *, max_sources: int = 4096) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"sip_rate_limit must be a positive rate, got {rate}")
        burst = max(2.0, math.ceil(rate)) if burst is None else burst
        if not burst >= 1:
            raise ValueError(f"sip_rate_burst must be >= 1, got {burst}")
        if max_sources < 1:
            raise ValueError(f"max_sources must be >= 1, got {max_sources}")
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def allow(self, source: str, now: float) -> bool:
        tokens, when = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - when) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[source] = (tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self) -> int:
        """Whole seconds until a refused source has a token again."""
        return max(1, math.ceil(1 / self.rate))

    def __len__(self) -> int:
        return len(self._buckets)
