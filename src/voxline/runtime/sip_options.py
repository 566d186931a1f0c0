"""The ``voxline run`` settings of SIP registration and inbound access control, parsed and checked:
``register`` (accounts), ``sip_auth`` (users for digest), ``sip_rate_limit``. Each raises ValueError
naming the setting."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..sip.register import Account, parse_account

__all__ = ["parse_rate", "parse_register", "parse_sip_auth", "resolve_passwords"]

_ACCOUNT_KEYS = {"aor", "uri", "user", "username", "password", "expires", "transport", "registrar"}


def parse_register(value: Any) -> tuple[Account, ...]:
    """``register``: ``sip:user@host`` text (several: a list, or comma-separated), or TOML tables
    ``[[run.register]]`` with ``aor`` (or ``uri``, or ``user`` + ``registrar``), ``password``,
    ``username``, ``expires``, ``transport``, ``registrar``."""
    if value is None or value == "" or value == ():
        return ()
    items: list[Any] = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    accounts: list[Account] = []
    for item in items:
        if isinstance(item, Account):
            accounts.append(item)
        elif isinstance(item, str):
            accounts.append(parse_account(item))
        elif isinstance(item, Mapping):
            unknown = set(item) - _ACCOUNT_KEYS
            if unknown:
                raise ValueError(
                    f"register: unknown keys {', '.join(sorted(unknown))}"
                    f" (known: {', '.join(sorted(_ACCOUNT_KEYS))})"
                )
            aor = item.get("aor") or item.get("uri")
            if aor is None and item.get("user") and item.get("registrar"):
                aor = f"sip:{item['user']}@{item['registrar']}"
            if not isinstance(aor, str):
                raise ValueError("register: each account needs aor = 'sip:user@registrar'")
            options = {k: item[k] for k in ("username", "expires", "transport", "registrar") if k in item}
            password = item.get("password")
            if password is not None and not isinstance(password, str):
                raise ValueError(f"register: the password of {aor} must be text")
            accounts.append(parse_account(aor, password, **options))
        else:
            raise ValueError(f"register: {item!r} is not sip:user@registrar or a table")
    aors = [a.aor for a in accounts]
    if len(set(aors)) != len(aors):
        raise ValueError("register: an account is listed twice")
    return tuple(accounts)


def resolve_passwords(accounts: tuple[Account, ...], default: str | None) -> tuple[Account, ...]:
    """Accounts without a password of their own get ``default`` (VOXLINE_REGISTER_PASSWORD)."""
    out = []
    for account in accounts:
        if account.password is None and default:
            account = Account(
                account.aor, default, account.username, account.expires, account.transport, account.registrar
            )
        out.append(account)
    return tuple(out)


def parse_sip_auth(value: Any) -> dict[str, str] | None:
    """``sip_auth``: ``user:password`` entries (comma-separated, a list, or a TOML table user = password);
    None / ``off``: no digest authentication of INVITEs."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        if [str(i).strip().lower() for i in items] in (["off"], ["none"], [""]):
            return None
        pairs = []
        for item in items:
            user, sep, password = str(item).strip().partition(":")
            if not sep:
                raise ValueError("sip_auth entries must be user:password")
            pairs.append((user, password))
    users: dict[str, str] = {}
    for user, password in pairs:
        if not user or not isinstance(password, str) or not password:
            raise ValueError(f"sip_auth: {user!r} needs a user name and a password (user:password)")
        users[user] = password
    if not users:
        return None
    return users


def parse_rate(value: Any, name: str = "sip_rate_limit") -> float | str | None:
    """``N`` or ``N/s`` (new INVITEs a second per source), ``N/min``; ``off``: none; ``auto``
    (returned as is): decided by the allowlist."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be N/s, N/min, off or auto, not {value!r}")
    if isinstance(value, (int, float)):
        rate = float(value)
    else:
        text = str(value).strip().lower()
        if text in ("auto", ""):
            return "auto"
        if text in ("off", "none", "0"):
            return None
        number, _, unit = text.partition("/")
        divisor = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}.get(unit.strip())
        try:
            rate = float(number) / divisor if divisor else math.nan
        except ValueError:
            rate = math.nan
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"{name} must be N/s or N/min with N > 0, off or auto, not {value!r}")
    return rate
