"""The WebRTC signalling relay: SDP offers and answers and ICE candidates between two
people in the same voice channel (or call), through the gateway (VOICE_SIGNAL, op 12).

A signal is accepted only when the sender's voice state is held by the connection that
sends it, the sender's session is live and the addressee's state is in the same channel; it reaches the addressee's
voice connection only (not their other tabs), on whichever process holds it, as
`voice.signal`, which is never stored (a NOTIFY, like typing). XFChat relays the
signalling and nothing else: the media flows between the peers (or through the TURN
servers of domain/ice.py).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import voice as q
from xfchat.domain.accounts import Actor, require_live_session
from xfchat.domain.event_payloads import VoiceSignalPayload
from xfchat.domain.events import VOICE_SIGNAL, signal_connection
from xfchat.domain.voice import not_in_voice
from xfchat.errors import BadRequest, NotFound

SIGNAL_KINDS = ("offer", "answer", "candidate")
MAX_SIGNAL_BYTES = 16_384  # a signal's `data` as JSON (an SDP with video is 3-10 KiB)


def _invalid(message: str, field: str) -> BadRequest:
    return BadRequest(message, code="INVALID_SIGNAL", field=field)


def parse_signal(d: Any) -> tuple[UUID, str, Any]:
    """`{to, kind, data}` of a VOICE_SIGNAL frame: the addressee's user id, the kind
    (offer, answer, candidate) and what to relay (a JSON object, or null for a candidate:
    the end of candidates), at most MAX_SIGNAL_BYTES as JSON.

    Raises: BadRequest (INVALID_SIGNAL)."""
    if not isinstance(d, dict):
        raise _invalid("a signal is {to, kind, data}", "d")
    # (only a string: str() of a list nested 1,000 deep, which a frame may carry, raised
    # RecursionError, answered as an internal error with a traceback logged)
    raw = d.get("to")
    try:
        to = UUID(raw if isinstance(raw, str) else "")
    except ValueError:
        raise _invalid("to is a user id", "to") from None
    kind = d.get("kind")
    if kind not in SIGNAL_KINDS:
        raise _invalid(f"kind is one of {', '.join(SIGNAL_KINDS)}", "kind")
    data = d.get("data")
    if not isinstance(data, dict) and not (kind == "candidate" and data is None):
        raise _invalid("data is a JSON object (a candidate's may be null)", "data")
    try:
        size = len(orjson.dumps(data))
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254), which it reads
        raise _invalid("data nests too deep", "data") from None
    if size > MAX_SIGNAL_BYTES:
        raise _invalid(f"data is at most {MAX_SIGNAL_BYTES} bytes of JSON", "data")
    return to, kind, data


async def relay_signal(
    conn: asyncpg.Connection,
    actor: Actor,
    connection_id: UUID,
    to: UUID,
    kind: str,
    data: Any,
) -> None:
    """Relay a signal to `to`'s voice connection.

    Raises: BadRequest (NOT_IN_VOICE: this connection holds no voice state; INVALID_SIGNAL:
    to yourself); NotFound (PEER_NOT_IN_CHANNEL: `to` is not in your channel, perhaps
    just left); Unauthorized (SESSION_REVOKED: the actor's session ended)."""
    if to == actor.user_id:
        raise _invalid("a signal goes to someone else", "to")
    # Both states stay as they are until the signal is sent (committed): it reaches the
    # addressee before any voice.state_updated that says either of them left.
    async with conn.transaction():
        # A gateway connection outlives its session's expiry by up to a minute (until
        # the hub's look at its sessions), as a join from it is refused, so is its
        # signal: a revocation that commits before this read is seen here; one that
        # commits after it lets this signal go (its notice may reach the others first,
        # in commit order), and ends the connection then.
        await require_live_session(conn, actor)
        states = {
            r.user_id: r
            for r in await q.list_voice_states_of_users(
                conn, user_ids=[actor.user_id, to], share=True
            )
        }
        mine, theirs = states.get(actor.user_id), states.get(to)
        if mine is None or mine.connection_id != connection_id:
            raise not_in_voice("this connection is")
        if theirs is None or theirs.channel_id != mine.channel_id:
            raise NotFound("they are not in your voice channel", code="PEER_NOT_IN_CHANNEL")
        payload: VoiceSignalPayload = {
            "channel_id": str(mine.channel_id),
            "from": str(actor.user_id),
            "kind": kind,
            "data": data,
        }
        await signal_connection(conn, VOICE_SIGNAL, theirs.connection_id, payload)
