"""The ICE servers a WebRTC client is given: STUN URLs as configured, and TURN URLs with
time-limited credentials in coturn's shared-secret scheme (its "REST API": `use-auth-secret`
with `static-auth-secret`): the username is `<unix expiry>:<user id>`, the credential
base64(HMAC-SHA1(secret, username)). coturn checks them itself, so XFChat never talks
to it, and a leaked credential stops working at its expiry. Media never passes through
XFChat. With XFCHAT_VOICE_RELAY_ONLY the clients are told `ice_transport_policy:
"relay"` (RTCConfiguration.iceTransportPolicy): they gather only relayed candidates, so
peers see the TURN server's addresses, never each other's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Literal, NotRequired
from uuid import UUID

from typing_extensions import TypedDict

from xfchat.settings import Settings


class IceServerPayload(TypedDict):
    """One entry of RTCConfiguration.iceServers, as a browser takes it."""

    urls: list[str]
    username: NotRequired[str]  # TURN only
    credential: NotRequired[str]  # TURN only


class IceServersPayload(TypedDict):
    ice_servers: list[IceServerPayload]
    expires_at: str | None  # when the TURN credential stops working (None: no TURN)
    ice_transport_policy: Literal["all", "relay"]  # RTCConfiguration.iceTransportPolicy


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(settings: Settings, user_id: UUID, now: float | None = None) -> IceServersPayload:
    """The ICE servers for this user, TURN credentials valid for `XFCHAT_TURN_TTL`."""
    servers: list[IceServerPayload] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    expires_at = None
    if settings.turn_urls and settings.turn_secret is not None:
        expiry = int(now if now is not None else time.time()) + settings.turn_ttl_s
        username = f"{expiry}:{user_id}"
        secret = settings.turn_secret.get_secret_value()
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": username,
                "credential": turn_credential(secret, username),
            }
        )
        expires_at = datetime.fromtimestamp(expiry, UTC).isoformat()
    policy: Literal["all", "relay"] = "relay" if settings.voice_relay_only else "all"
    return {"ice_servers": servers, "expires_at": expires_at, "ice_transport_policy": policy}
