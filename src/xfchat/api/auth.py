"""Register, log in, refresh, log out."""

from __future__ import annotations

from uuid import UUID

from fastapi import Request, Response
from pydantic import BaseModel, Field, model_validator

from xfchat.api.deps import (
    AppSettings,
    Client,
    Conn,
    CurrentActor,
    Pool,
    check_address_limits,
    check_limits,
    counted_if_email_taken,
    give_back,
    ip_limit,
    record_decision,
)
from xfchat.api.models import USERNAME, Text, UserPrivate, enforced
from xfchat.api.routing import api_router
from xfchat.domain import accounts, login
from xfchat.domain.rate_limits import address_checks
from xfchat.domain.validation import MAX_DISPLAY_NAME, MAX_PASSWORD, MIN_PASSWORD
from xfchat.errors import BadRequest, RateLimited

router = api_router(prefix="/api/auth", tags=["auth"])


class RegisterIn(BaseModel):
    username: Text = Field(max_length=256, json_schema_extra=USERNAME)
    email: Text = Field(max_length=1024)
    password: Text = Field(max_length=1024, json_schema_extra=enforced(MAX_PASSWORD, MIN_PASSWORD))
    display_name: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(MAX_DISPLAY_NAME)
    )


class LoginIn(BaseModel):
    """Give one of `login` (a username or an email), `username` and `email`."""

    login: Text | None = Field(default=None, max_length=1024)
    username: Text | None = Field(default=None, max_length=1024)
    email: Text | None = Field(default=None, max_length=1024)
    password: Text = Field(max_length=1024)

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginIn:
        given = [v for v in (self.login, self.username, self.email) if v is not None]
        if not any(given):
            raise ValueError("give login (a username or an email)")
        if len(given) > 1:  # (which one was meant? none is taken over another)
            raise ValueError("give one of login, username and email")
        return self

    @property
    def identifier(self) -> str:
        return (self.login or self.username or self.email or "").strip()


class TwoFactorRequiredOut(BaseModel):
    """The password was right, and the account has two-factor sign-in: POST the ticket
    with a code to /api/auth/login/two-factor (within `expires_in` seconds)."""

    two_factor_required: bool = True
    ticket: str
    expires_in: int


class TwoFactorLoginIn(BaseModel):
    ticket: Text = Field(max_length=1024)
    code: Text = Field(max_length=64, description="an authenticator code or a recovery code")


class RefreshIn(BaseModel):
    refresh_token: Text = Field(max_length=512)


class TokensOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    refresh_token: str
    session_id: UUID
    user: UserPrivate

    @classmethod
    def of(cls, issued: accounts.IssuedTokens) -> TokensOut:
        return cls(
            access_token=issued.access_token,
            expires_in=issued.expires_in,
            refresh_token=issued.refresh_token,
            session_id=issued.session_id,
            user=UserPrivate.of_me(issued.user),
        )


def _started(request: Request, issued: accounts.IssuedTokens) -> TokensOut:
    """A new session's tokens; the sessions it ended (the account's limit of live
    sessions) leave this process's cache at once, as every other process's on their
    `session.revoked`."""
    for session_id in issued.ended:
        request.app.state.sessions.forget_session(session_id)
    return TokensOut.of(issued)


@router.post("/register", status_code=201)
async def post_register(
    body: RegisterIn, request: Request, pool: Pool, settings: AppSettings, client: Client
) -> TokensOut:
    """Create an account; answers with tokens for a new session.

    Counted per address (`auth.register`): each registration of a well-formed body, the
    one refused as invalid input (400: a short password, a username of the wrong form)
    given back, so that a sign-up form's typos do not use up the hour's few. An address
    that was told `EMAIL_TAKEN` its share of times waits (429) whatever it sends next,
    so emails cannot be tried one after another. Every registration counts in that
    bucket up front (registrations sent at once cannot all pass a check made before
    their answers) and gives its hit back unless it is answered `EMAIL_TAKEN` (refused
    ones too), so the bucket holds the address's `EMAIL_TAKEN` answers and the
    registrations in flight."""
    tried = address_checks("auth.register", client.ip, settings.rate_register_ip)
    counted = await check_address_limits(request, tried, record=False)
    untried = False
    try:
        async with counted_if_email_taken(request, client.ip, settings):
            issued = await accounts.register(
                pool,
                settings,
                username=body.username,
                email=body.email,
                password=body.password,
                display_name=body.display_name,
                client=client,
            )
    except (BadRequest, RateLimited):
        # (invalid input; or the EMAIL_TAKEN bucket's wait, before anything was tried)
        untried = True
        raise
    finally:
        if untried:
            await give_back(request, tried)
        else:
            for decision in counted:
                record_decision(request, decision)
    return _started(request, issued)


@router.post("/login", dependencies=[ip_limit("auth.login", "rate_login_ip")])
async def post_login(
    body: LoginIn, request: Request, pool: Pool, settings: AppSettings, client: Client
) -> TokensOut | TwoFactorRequiredOut:
    """Log in by username or email. Wrong password and unknown user get the same 401.
    An account with two-factor sign-in gets a ticket instead of tokens."""
    if not body.identifier:
        raise BadRequest(
            "give login (a username or an email)", code="VALIDATION_ERROR", field="login"
        )
    target = await login.find_account(pool, settings, login=body.identifier, ip=client.ip)
    # (not in the headers: a count shared by a username and an email would tie them)
    await check_limits(request, login.login_limits(settings, target, client.ip), record=False)
    result = await login.log_in(
        pool, settings, target=target, password=body.password, client=client
    )
    if isinstance(result, login.TwoFactorRequired):
        return TwoFactorRequiredOut(ticket=result.ticket, expires_in=result.expires_in)
    return _started(request, result)


@router.post("/login/two-factor", dependencies=[ip_limit("auth.login", "rate_login_ip")])
async def post_login_two_factor(
    body: TwoFactorLoginIn, request: Request, pool: Pool, settings: AppSettings, client: Client
) -> TokensOut:
    """Trade a login's ticket and a code (of the authenticator, or a recovery code) for
    tokens. Codes are counted per account and address, and per account
    (`auth.two_factor`) except from the account's familiar addresses."""
    claims = login.read_ticket(settings, body.ticket)
    limits = await login.two_factor_limits(pool, settings, claims.user_id, client.ip)
    await check_limits(request, limits)
    issued = await login.complete_two_factor(
        pool, settings, claims=claims, code=body.code, client=client
    )
    return _started(request, issued)


@router.post("/refresh", dependencies=[ip_limit("auth.refresh", "rate_refresh_ip")])
async def post_refresh(body: RefreshIn, pool: Pool, settings: AppSettings) -> TokensOut:
    """Trade a refresh token for new tokens. Each refresh token works once: presenting a
    used one again revokes its whole session."""
    return TokensOut.of(await accounts.refresh(pool, settings, refresh_token=body.refresh_token))


@router.post("/logout", status_code=204, response_class=Response)
async def post_logout(actor: CurrentActor, conn: Conn, request: Request) -> Response:
    """End the current session (its access and refresh tokens stop working at once)."""
    await accounts.logout(conn, actor)
    request.app.state.sessions.forget_session(actor.session_id)
    return Response(status_code=204)
