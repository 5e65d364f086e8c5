"""The behaviour every auth object promises, run for requests, httpx and httpx async."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from authplug import CredentialsRejectedError, Token
from authplug.testing import FakeClock, OAuth2Emulator

from ..conftest import Driver, password_auth


class TokenTypeEmulator(OAuth2Emulator):
    """Answers with an odd token_type (or none)."""

    def __init__(self, token_type: str | None) -> None:
        super().__init__()
        self.token_type = token_type

    def token_body(
        self, access: str, refresh: str | None, lifetime: float | None
    ) -> dict[str, Any]:
        body = super().token_body(access, refresh, lifetime)
        if self.token_type is None:
            del body["token_type"]
        else:
            body["token_type"] = self.token_type
        return body


def test_nothing_goes_out_at_construction(driver: Driver, emulator: OAuth2Emulator) -> None:
    """Building the object makes no call; the first request fetches exactly one token."""
    auth = password_auth(emulator)
    assert emulator.token_calls.total() == 0
    assert auth.token is None
    result = driver.send(auth, "GET", emulator.api_url())
    assert result.status == 200
    assert emulator.token_calls == {"password": 1}
    driver.send(auth, "GET", emulator.api_url())
    assert emulator.token_calls.total() == 1


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer", None])
def test_header_is_capital_bearer(driver: Driver, token_type: str | None) -> None:
    """The header says ``Bearer`` whatever case the provider's token_type uses, or none."""
    with TokenTypeEmulator(token_type) as emulator:
        auth = password_auth(emulator)
        assert driver.send(auth, "GET", emulator.api_url()).status == 200
        header = emulator.api_log[-1].authorization
        assert auth.token is not None
        assert header == f"Bearer {auth.token.access_token}"


def test_proactive_renewal_within_leeway(
    driver: Driver, emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """A token in its renewal window goes out at once and is renewed behind the request.

    The window ends ``leeway`` before expiry and spans 10% of the lifetime, at most
    300 s. Before it nothing is renewed; in it the request carries the current token,
    one renewal runs, and the next request carries the new token.
    """
    auth = password_auth(emulator, clock=clock, leeway=60)
    driver.send(auth, "GET", emulator.api_url())
    first = auth.token
    assert first is not None
    clock.advance(3600 - 60 - 300 - 1)
    driver.send(auth, "GET", emulator.api_url())
    assert emulator.token_calls == {"password": 1}
    clock.advance(302)  # past the window's end, whatever moment was drawn in it
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert emulator.api_log[-1].authorization == f"Bearer {first.access_token}"
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert emulator.api_log[-1].authorization == f"Bearer {auth.token.access_token}"  # type: ignore[union-attr]
    assert auth.token != first


def test_short_token_is_used_for_half_its_life(driver: Driver, clock: FakeClock) -> None:
    """A 30-second token with a 60-second leeway is still used until half of it passed."""
    with OAuth2Emulator(token_lifetime=30) as emulator:
        auth = password_auth(emulator, clock=clock, leeway=60)
        driver.send(auth, "GET", emulator.api_url())
        clock.advance(14)
        driver.send(auth, "GET", emulator.api_url())
        assert emulator.token_calls.total() == 1
        clock.advance(2)
        driver.send(auth, "GET", emulator.api_url())
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}


def test_handed_in_token_uses_leeway_only(
    driver: Driver, emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """``token=`` has no known lifetime: it is renewed ``leeway`` seconds before expiry."""
    seed = password_auth(emulator).get_token()
    handed = {"access_token": seed.access_token, "expires_in": 100, "token_type": "bearer"}
    emulator.reset_counters()
    auth = password_auth(emulator, clock=clock, leeway=60, token=handed)
    assert auth.token is not None
    assert auth.token.access_token == seed.access_token
    driver.send(auth, "GET", emulator.api_url())
    clock.advance(39)
    driver.send(auth, "GET", emulator.api_url())
    assert emulator.token_calls.total() == 0
    clock.advance(2)
    driver.send(auth, "GET", emulator.api_url())
    assert emulator.token_calls == {"password": 1}  # no refresh token was handed in


def test_expired_token_is_not_sent(
    driver: Driver, emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """Past its deadline a token is renewed, never sent."""
    auth = password_auth(emulator, clock=clock)
    driver.send(auth, "GET", emulator.api_url())
    old = auth.token
    clock.advance(4000)
    driver.send(auth, "GET", emulator.api_url())
    assert old is not None
    assert all(hit.authorization != f"Bearer {old.access_token}" for hit in emulator.api_log[1:])


def test_revoked_token_is_renewed_and_replayed(driver: Driver, emulator: OAuth2Emulator) -> None:
    """A 401 renews the token and replays once; the caller sees only the second answer."""
    auth = password_auth(emulator)
    driver.send(auth, "GET", emulator.api_url())
    emulator.revoke_all()
    result = driver.send(auth, "POST", emulator.api_url(), content=b"payload")
    assert result.status == 200
    assert result.data["body_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert result.history == 1
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    assert [hit.status for hit in emulator.api_log] == [200, 401, 200]


def test_second_refusal_reaches_the_caller(driver: Driver, emulator: OAuth2Emulator) -> None:
    """If the replay is refused too, the caller gets that 401: no loop, no second renewal."""
    auth = password_auth(emulator)
    result = driver.send(auth, "GET", emulator.api_url("/deny"))
    assert result.status == 401
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    assert emulator.api_calls == 2


def test_refresh_status_codes_option(driver: Driver, emulator: OAuth2Emulator) -> None:
    """A status not in ``refresh_status_codes`` is handed back as is."""
    auth = password_auth(emulator, refresh_status_codes=(403,))
    result = driver.send(auth, "GET", emulator.api_url("/deny"))
    assert result.status == 401
    assert emulator.token_calls == {"password": 1}
    assert emulator.api_calls == 1


def test_refused_refresh_token_falls_back_to_full_grant(
    driver: Driver, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """A refused refresh token (400) makes the package use the password grant."""
    auth = password_auth(emulator)
    driver.send(auth, "GET", emulator.api_url())
    emulator.reject_refresh = True
    emulator.revoke_all()
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert emulator.token_calls == {"password": 2, "refresh_token": 1}
    assert "refresh token was refused (HTTP 400)" in authlog.text


def test_refresh_call_5xx_is_retried(
    driver: Driver, emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """A 503 on a refresh call is retried like any token call, not a refusal."""
    auth = password_auth(emulator, clock=clock)
    driver.send(auth, "GET", emulator.api_url())
    emulator.revoke_all()
    emulator.fail_next(1, status=503)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 2}
    assert len(clock.sleeps) == 1


def test_failed_replay_renewal_raises(driver: Driver, emulator: OAuth2Emulator) -> None:
    """When the token is refused and cannot be renewed, the caller gets the package's error."""
    auth = password_auth(emulator)
    driver.send(auth, "GET", emulator.api_url())
    emulator.reject_refresh = True
    emulator.password = "changed-on-the-server"
    emulator.revoke_all()
    with pytest.raises(CredentialsRejectedError) as info:
        driver.send(auth, "GET", emulator.api_url())
    assert info.value.status_code == 400
    assert info.value.error == "invalid_grant"


def test_token_outside_http(emulator: OAuth2Emulator) -> None:
    """``get_token()`` and ``token`` serve callers that need the token elsewhere."""
    auth = password_auth(emulator)
    token = auth.get_token()
    assert isinstance(token, Token)
    assert auth.token == token
    assert auth.get_token() is token
    assert emulator.token_calls.total() == 1


async def test_aget_token(emulator: OAuth2Emulator) -> None:
    """``await aget_token()`` fetches without blocking and shares the token with sync users."""
    auth = password_auth(emulator)
    token = await auth.aget_token()
    assert auth.get_token() is token
    assert emulator.token_calls.total() == 1


def test_one_object_serves_every_client(emulator: OAuth2Emulator) -> None:
    """The same instance works for requests, httpx and httpx async, sharing one token."""
    from ..conftest import make_driver

    auth = password_auth(emulator)
    for kind in ("requests", "httpx", "httpx_async"):
        made = make_driver(kind)
        try:
            assert made.send(auth, "GET", emulator.api_url()).status == 200
        finally:
            made.close()
    assert emulator.token_calls.total() == 1
    assert len({hit.authorization for hit in emulator.api_log}) == 1


def test_per_call_auth(emulator: OAuth2Emulator) -> None:
    """``requests.get(url, auth=auth)`` and httpx's per-call ``auth=`` both work."""
    import httpx
    import requests

    auth = password_auth(emulator)
    assert requests.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
    assert httpx.get(emulator.api_url(), auth=auth).status_code == 200
    assert emulator.token_calls.total() == 1


def test_on_token_sees_each_new_token(driver: Driver, emulator: OAuth2Emulator) -> None:
    """``on_token`` is called with every new token, for the caller to persist it."""
    seen: list[Token] = []
    auth = password_auth(emulator, on_token=seen.append)
    driver.send(auth, "GET", emulator.api_url())
    emulator.revoke_all()
    driver.send(auth, "GET", emulator.api_url())
    assert [t.access_token for t in seen] == [
        hit.authorization.split()[1] for hit in emulator.api_log if hit.status == 200
    ]
    restored = password_auth(emulator, token=seen[-1].to_dict())
    driver.send(restored, "GET", emulator.api_url())
    assert emulator.token_calls.total() == 2


def test_failing_on_token_does_not_break_requests(
    driver: Driver, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged; the request still goes out."""

    def broken(token: Token) -> None:
        raise RuntimeError("disk full")

    auth = password_auth(emulator, on_token=broken)
    assert driver.send(auth, "GET", emulator.api_url()).status == 200
    assert "on_token callback raised RuntimeError" in authlog.text


def test_reasons_are_logged(
    driver: Driver, emulator: OAuth2Emulator, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    """Each fetch and renewal is logged with its reason."""
    auth = password_auth(emulator, clock=clock)
    driver.send(auth, "GET", emulator.api_url())
    clock.advance(3590)
    driver.send(auth, "GET", emulator.api_url())
    emulator.revoke_all()
    driver.send(auth, "GET", emulator.api_url())
    messages = [r.getMessage() for r in authlog.records if r.name == "authplug"]
    assert any("password grant (reason: first use)" in m for m in messages)
    assert any("refresh_token grant (reason: token expires in 10s)" in m for m in messages)
    assert any("reason: the API refused the token" in m for m in messages)


def test_refusal_of_an_old_token_reuses_the_new_one(emulator: OAuth2Emulator) -> None:
    """A refusal of a token someone else already replaced costs no token call."""
    auth = password_auth(emulator)
    old = auth.get_token()
    emulator.revoke_all()
    renewed = auth._manager.renew_rejected(old)
    assert auth._manager.renew_rejected(old) is renewed
    assert asyncio.run(auth._manager.arenew_rejected(old)) is renewed
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
