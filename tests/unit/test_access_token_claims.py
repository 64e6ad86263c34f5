"""An access token whose claims are of the wrong type is INVALID_TOKEN (401), never a
500: `sid` is read with UUID(), which raises AttributeError for a list or an object."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from xfchat.domain.tokens import ALGORITHM, ISSUER, verify_access_token
from xfchat.errors import Unauthorized

SECRET = "s" * 64


@pytest.mark.parametrize("sid", [[str(uuid.uuid4())], {"id": "x"}, 5, None, "not a uuid"])
def test_a_session_claim_of_the_wrong_type_is_an_invalid_token(sid: object) -> None:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "typ": "access",
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
        "sid": sid,
    }
    token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)
    with pytest.raises(Unauthorized) as raised:
        verify_access_token(SECRET, token)
    assert raised.value.code == "INVALID_TOKEN"
