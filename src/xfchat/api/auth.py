"""Register, log in, refresh, log out."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, model_validator

from xfchat.api.deps import AppSettings, Client, Conn, CurrentActor, Pool, check_limit, ip_limit
from xfchat.api.models import Text, UserPrivate
from xfchat.domain import accounts
from xfchat.errors import BadRequest

router = APIRouter(prefix="/api/auth", tags=["auth"])


class RegisterIn(BaseModel):
    username: Text = Field(max_length=256)
    email: Text = Field(max_length=1024)
    password: Text = Field(max_length=1024)
    display_name: Text | None = Field(default=None, max_length=1024)


class LoginIn(BaseModel):
    """Give `login` (a username or an email), or `username`, or `email`."""

    login: Text | None = Field(default=None, max_length=1024)
    username: Text | None = Field(default=None, max_length=1024)
    email: Text | None = Field(default=None, max_length=1024)
    password: Text = Field(max_length=1024)

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginIn:
        if not (self.login or self.username or self.email):
            raise ValueError("give login (a username or an email)")
        return self

    @property
    def identifier(self) -> str:
        return (self.login or self.username or self.email or "").strip()


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


@router.post(
    "/register", status_code=201, dependencies=[ip_limit("auth.register", "rate_register_ip")]
)
async def post_register(
    body: RegisterIn, pool: Pool, settings: AppSettings, client: Client
) -> TokensOut:
    """Create an account; answers with tokens for a new session."""
    issued = await accounts.register(
        pool,
        settings,
        username=body.username,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        client=client,
    )
    return TokensOut.of(issued)


@router.post("/login", dependencies=[ip_limit("auth.login", "rate_login_ip")])
async def post_login(
    body: LoginIn, request: Request, pool: Pool, settings: AppSettings, client: Client
) -> TokensOut:
    """Log in by username or email. Wrong password and unknown user get the same 401."""
    if not body.identifier:
        raise BadRequest(
            "give login (a username or an email)", code="VALIDATION_ERROR", field="login"
        )
    await check_limit(
        request, "auth.login.account", body.identifier.lower(), settings.rate_login_account
    )
    issued = await accounts.login(
        pool, settings, login=body.identifier, password=body.password, client=client
    )
    return TokensOut.of(issued)


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
