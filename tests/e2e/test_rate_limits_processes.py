"""Two real server processes on one database share their rate limits."""

from __future__ import annotations

import httpx

from tests.support import Servers

LIMIT = 5


def test_a_login_limit_of_n_is_n_in_total_across_two_processes(servers: Servers) -> None:
    # (The account registered from this address, so its per-address bucket is the one.)
    limits = {"XFCHAT_RATE_LOGIN_ACCOUNT_IP": f"{LIMIT}/300", "XFCHAT_RATE_LOGIN_IP": "1000/300"}
    _, url_a = servers.start(**limits)
    _, url_b = servers.start(**limits)
    registered = httpx.post(
        f"{url_a}/api/auth/register",
        json={
            "username": "target",
            "email": "target@example.com",
            "password": "correct horse battery staple",
        },
    )
    assert registered.status_code == 201, registered.text
    responses = []
    for i in range(2 * LIMIT + 2):
        base = url_a if i % 2 == 0 else url_b
        responses.append(
            httpx.post(
                f"{base}/api/auth/login", json={"login": "target", "password": "wrong-password"}
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses == [401] * LIMIT + [429] * (LIMIT + 2), statuses
    served_by = {i % 2 for i, r in enumerate(responses) if r.status_code == 429}
    assert served_by == {0, 1}  # both processes refuse once the shared count is reached
    for r in responses[LIMIT:]:
        assert r.json()["code"] == "RATE_LIMITED"
        assert r.headers["x-ratelimit-limit"] == str(LIMIT)
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-bucket"] == "auth.login.account_ip"
        assert int(r.headers["retry-after"]) >= 1
        assert float(r.headers["x-ratelimit-reset"]) > 0
        assert float(r.headers["x-ratelimit-reset-after"]) > 0
    for r in responses[:LIMIT]:
        assert r.headers["x-ratelimit-bucket"] in {"auth.login.account_ip", "auth.login"}
