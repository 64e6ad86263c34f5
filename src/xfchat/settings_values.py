"""The kinds of values settings take, each parsed from one environment string: rate
limits ("10/60"), origins, ICE server URLs, listen addresses, secrets."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, NamedTuple

from pydantic import BeforeValidator, SecretStr
from pydantic_settings import NoDecode

# Secrets that appear in tutorials, .env.example files and our own history.
KNOWN_WEAK_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "your-secret-key",
        "your-secret-key-here",
        "supersecret",
        "xfchat",
        "xfchat-secret",
        "development",
        "dev",
        "test",
        "default",
        "password",
        "jwt-secret",
    }
)
MIN_SECRET_LENGTH = 32


class RateLimit(NamedTuple):
    """At most `limit` requests per `period_s` seconds (a fixed window)."""

    limit: int
    period_s: int

    @classmethod
    def parse(cls, value: object) -> RateLimit:
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, (tuple, list)) and len(value) == 2:
            limit, period = int(value[0]), int(value[1])
        else:
            match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*s?\s*", str(value))
            if not match:
                raise ValueError("must look like 10/60 (10 requests per 60 seconds)")
            limit, period = int(match.group(1)), int(match.group(2))
        if not (1 <= limit <= 1_000_000 and 1 <= period <= 86_400):
            raise ValueError("needs 1-1000000 requests per 1-86400 seconds")
        return cls(limit, period)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period_s}"


# NoDecode: the environment value is "10/60", not JSON.
RateLimitSetting = Annotated[RateLimit, NoDecode, BeforeValidator(RateLimit.parse)]

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def parse_origins(value: object) -> list[str]:
    """`https://chat.example.com,http://localhost:5173`: exact origins (scheme, host,
    optional port; no path), or `*` alone for any."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    origins = [str(item).strip().rstrip("/") for item in items if str(item).strip()]
    if "*" in origins:
        if len(origins) > 1:
            raise ValueError("* stands alone (any origin), not in a list")
        return origins
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin like https://chat.example.com")
    return origins


OriginsSetting = Annotated[list[str], NoDecode, BeforeValidator(parse_origins)]

_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?"
_STUN = re.compile(rf"stuns?:{_HOST}")
_TURN = re.compile(rf"turns?:{_HOST}(\?transport=(udp|tcp))?")


def _urls(value: object, pattern: re.Pattern[str], example: str) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    urls = [str(item).strip() for item in items if str(item).strip()]
    for url in urls:
        if not pattern.fullmatch(url):
            raise ValueError(f"{url!r} is not a URL like {example}")
    return urls


def parse_stun_urls(value: object) -> list[str]:
    """`stun:stun.example.com:3478,stuns:...` (RFC 7064)."""
    return _urls(value, _STUN, "stun:stun.example.com:3478")


def parse_turn_urls(value: object) -> list[str]:
    """`turn:turn.example.com:3478?transport=udp,turns:...` (RFC 7065)."""
    return _urls(value, _TURN, "turn:turn.example.com:3478?transport=udp")


StunUrlsSetting = Annotated[list[str], NoDecode, BeforeValidator(parse_stun_urls)]
TurnUrlsSetting = Annotated[list[str], NoDecode, BeforeValidator(parse_turn_urls)]
MIN_TURN_SECRET_LENGTH = 16


WHITESPACE_PROBLEM = (
    "starts or ends with whitespace (a secret file's final newline?): remove it, as every"
    " process must use the very same characters"
)


def secret_problem(raw: str, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """What makes `raw` unfit to be a secret (None if nothing)."""
    if raw != raw.strip():  # (was: taken as it was, never equal to what others compare)
        return WHITESPACE_PROBLEM
    if raw.strip().lower() in KNOWN_WEAK_SECRETS:
        return "is a well-known default; generate your own"
    if len(raw) < min_length:
        return f"must be at least {min_length} characters"
    if len(set(raw)) < 8:
        return "is too repetitive to be a secret"
    return None


def check_secret(value: SecretStr | None, min_length: int = MIN_SECRET_LENGTH) -> None:
    """Raises ValueError naming what makes a secret unfit."""
    problem = secret_problem(value.get_secret_value(), min_length) if value is not None else None
    if problem:
        raise ValueError(problem)


def parse_proxies(value: object) -> list[str]:
    """`10.0.0.1,10.1.0.0/16`: the addresses or networks whose X-Forwarded-For is
    believed; `*` for any (only behind a proxy that overwrites the header); empty for none."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    proxies = [str(item).strip() for item in items if str(item).strip()]
    if "*" in proxies:
        if len(proxies) > 1:
            raise ValueError("* stands alone (any proxy), not in a list")
        return proxies
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"{proxy!r} is not an IP address or network like 10.0.0.0/8") from None
    return proxies


ProxiesSetting = Annotated[list[str], NoDecode, BeforeValidator(parse_proxies)]

MAX_SEAL_KEYS = 8


def parse_secrets(value: object) -> list[SecretStr]:
    """`new-key,old-key`: secrets (each as XFCHAT_SECRET must be, no whitespace around
    it either), the first in use."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    raw = [i.get_secret_value() if isinstance(i, SecretStr) else str(i) for i in items]
    if not any(r.strip() for r in raw):
        return []
    keys = [SecretStr(r) for r in raw if r]
    if len(keys) > MAX_SEAL_KEYS:
        raise ValueError(f"at most {MAX_SEAL_KEYS} keys")
    for key in keys:
        check_secret(key)
    return keys


SecretsSetting = Annotated[list[SecretStr], NoDecode, BeforeValidator(parse_secrets)]


class ListenAddress(NamedTuple):
    host: str
    port: int

    @classmethod
    def parse(cls, value: object) -> ListenAddress | None:
        if value is None or isinstance(value, ListenAddress):
            return value
        text = str(value).strip()
        if not text:
            return None
        host, sep, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must look like 127.0.0.1:9100 (a host and a port)")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


ListenSetting = Annotated[ListenAddress | None, NoDecode, BeforeValidator(ListenAddress.parse)]
