"""Two-factor sign-in of the current user: set up an authenticator, turn it on with a
code, turn it off, new recovery codes. (Logging in with it: api/auth.py.)"""

from __future__ import annotations

import asyncpg
from fastapi import Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import AppSettings, Conn, CurrentActor, Pool, password_limit, session_limit
from xfchat.api.models import Text
from xfchat.api.routing import api_router
from xfchat.domain import two_factor
from xfchat.domain.accounts import Actor

router = api_router(prefix="/api/users/@me/two-factor", tags=["two-factor"])


class PasswordIn(BaseModel):
    password: Text = Field(max_length=1024)


class CodeIn(BaseModel):
    code: Text = Field(max_length=64, description="a code of the authenticator")


class DisableIn(BaseModel):
    """The password and a code: to turn it off, and for new recovery codes."""

    password: Text = Field(max_length=1024)
    code: Text = Field(max_length=64, description="an authenticator code or a recovery code")


class StatusOut(BaseModel):
    enabled: bool
    recovery_codes_left: int


class SetupOut(BaseModel):
    secret: str  # base32, to type into an authenticator app
    otpauth_uri: str  # the same as an otpauth:// URI (show it as a QR code)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]  # shown this once: keep them somewhere safe


async def code_limit(
    request: Request, actor: Actor, conn: asyncpg.Connection | None = None
) -> None:
    """Codes are guessable: every one tried by a signed-in user counts in their
    session's `auth.two_factor.signed_in` bucket (the same rule as the login's second
    step, XFCHAT_RATE_TWO_FACTOR_ACCOUNT), then in the account's
    `auth.two_factor.signed_in.all` (XFCHAT_RATE_TWO_FACTOR_SIGNED_IN_ACCOUNT, wider),
    as `password_limit` counts the password: a stolen token (turning it on asks no
    password) cannot spend the owner's tries and keep them from changing the password.
    Not in `auth.two_factor`, which the login's codes from unfamiliar addresses spend:
    someone with the password alone (what two-factor sign-in is for) could then keep the
    owner from turning it off or deleting the account; this bucket they cannot reach."""
    settings = request.app.state.settings
    await session_limit(
        request,
        actor,
        "auth.two_factor.signed_in",
        settings.rate_two_factor_account,
        settings.rate_two_factor_signed_in_account,
        conn,
    )


@router.get("")
async def get_two_factor(actor: CurrentActor, conn: Conn) -> StatusOut:
    """Whether two-factor sign-in is on, and how many unused recovery codes are left."""
    found = await two_factor.status(conn, actor)
    return StatusOut(enabled=found.enabled, recovery_codes_left=found.recovery_codes_left)


@router.post("/setup")
async def post_two_factor_setup(
    body: PasswordIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> SetupOut:
    """A new authenticator secret (with your password); nothing changes until /enable
    proves a code of it. Asking again replaces a secret not yet enabled."""
    await password_limit(request, actor)
    setup = await two_factor.start_setup(pool, settings, actor, body.password)
    return SetupOut(secret=setup.secret, otpauth_uri=setup.uri)


@router.post("/enable")
async def post_two_factor_enable(
    body: CodeIn, actor: CurrentActor, conn: Conn, settings: AppSettings, request: Request
) -> RecoveryCodesOut:
    """Turn two-factor sign-in on with a current code of the authenticator just set up:
    from now on a login needs a code too, and every other session ends. Answers the ten
    recovery codes."""
    await code_limit(request, actor, conn)
    enabled = await two_factor.enable(conn, settings, actor, body.code)
    for session_id in enabled.ended:
        request.app.state.sessions.forget_session(session_id)
    return RecoveryCodesOut(recovery_codes=enabled.recovery_codes)


@router.post("/disable", status_code=204, response_class=Response)
async def post_two_factor_disable(
    body: DisableIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> Response:
    """Turn two-factor sign-in off, with your password and a code (or a recovery code)."""
    await password_limit(request, actor)
    await code_limit(request, actor)
    await two_factor.disable(pool, settings, actor, body.password, body.code)
    return Response(status_code=204)


@router.post("/recovery-codes")
async def post_recovery_codes(
    body: DisableIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> RecoveryCodesOut:
    """Ten new recovery codes (with your password and a code, or a recovery code); the
    earlier ones stop working."""
    await password_limit(request, actor)
    await code_limit(request, actor)
    codes = await two_factor.regenerate_recovery_codes(
        pool, settings, actor, body.password, body.code
    )
    return RecoveryCodesOut(recovery_codes=codes)
