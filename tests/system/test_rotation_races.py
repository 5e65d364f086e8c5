"""A token adopted from a shared cache that was rotated away again before the replay.

Servers that revoke the access token at each refresh (django-oauth-toolkit does) make a
request race a rotation by another process: refused, it is replayed with the token the
other process stored. When that token is itself rotated away before the replay lands,
the refusal says nothing about the permission (the token was not this process's own,
freshly fetched one), so refusals must not go unanswered for the quiet period: the next
refusal adopts the newest token again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import requests

from authplug import MemoryTokenCache
from authplug.testing import FakeClock, OAuth2Emulator, Request, Response

from ..conftest import password_auth


class _RotatesDuringReplay(OAuth2Emulator):
    """Before answering the first request that carries ``trap``, another process
    rotates: ``rotate()`` runs (it revokes every token and stores a new one)."""

    def __init__(self) -> None:
        super().__init__()
        self.trap: str | None = None
        self.rotate: Any = None
        self._sprung = threading.Event()

    def _api(self, request: Request, path: str) -> Response:
        header = request.headers.get("authorization") or ""
        if self.trap is not None and header == f"Bearer {self.trap}" and not self._sprung.is_set():
            self._sprung.set()
            self.rotate()
        return super()._api(request, path)


def test_a_replay_refused_after_a_second_rotation_does_not_silence_refusals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replay with a token adopted from the cache, refused because another process
    rotated again meanwhile, is not taken for a permission refusal: the next request's
    refusal adopts the newest token and is replayed (no token call of this process)."""
    caplog.set_level(logging.INFO, logger="authplug")
    with _RotatesDuringReplay() as emulator:
        cache = MemoryTokenCache()
        mine = password_auth(emulator, cache=cache)  # this process
        other_clock = FakeClock(start=time.time())
        other = password_auth(emulator, cache=cache, clock=other_clock)  # another one
        url = emulator.api_url()
        with requests.Session() as session:
            assert session.get(url, auth=mine, timeout=10).status_code == 200
            assert other.get_token().access_token == mine.token.access_token

            def rotate() -> None:
                emulator.revoke_all()
                other_clock.advance(emulator.token_lifetime + 5)  # expired: it refreshes
                other.get_token()

            # The other process rotates (T1 -> T2): my T1 is refused, and I adopt T2...
            rotate()
            second = other.token.access_token
            # ...but before my replay with T2 lands, it rotates again (T2 -> T3).
            emulator.trap = second
            emulator.rotate = rotate
            first = session.get(url, auth=mine, timeout=10)
            assert first.status_code == 401  # one replay only: this request is lost
            calls = dict(emulator.token_calls)
            # The next request carries T2, refused: it adopts T3 and is replayed.
            assert session.get(url, auth=mine, timeout=10).status_code == 200
            assert mine.token.access_token == other.token.access_token
            assert emulator.token_calls == calls  # adopted from the cache, no call
    assert "freshly renewed token too" not in caplog.text


class _NoClientCredentials(OAuth2Emulator):
    """A server whose client may refresh but not use the client_credentials grant."""

    def grants(self) -> tuple[str, ...]:
        return ("password", "refresh_token")


def test_a_refused_refresh_then_a_refused_grant_names_both() -> None:
    """With the refresh token refused and no other grant the credentials allow, the one
    error says both: the refresh token's refusal and the grant's, never a token; and so
    do later attempts, which have no refresh token left to try."""
    from authplug import CredentialsRejectedError, OAuth2ClientCredentialsAuth

    clock = FakeClock(start=time.time())
    with _NoClientCredentials() as emulator:
        first = password_auth(emulator).get_token()
        emulator.reject_refresh = True
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url,
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            clock=clock,
            token={
                "access_token": first.access_token,
                "refresh_token": first.refresh_token,
                "expires_in": 0,
            },
        )
        with pytest.raises(CredentialsRejectedError) as caught:
            auth.get_token()
        clock.advance(60)  # past the failure's memory: a new attempt, the grant only
        with pytest.raises(CredentialsRejectedError) as again:
            auth.get_token()
        assert emulator.token_calls["client_credentials"] == 2
    assert str(again.value) == str(caught.value)
    message = str(caught.value)
    assert "the refresh token was refused (invalid_grant)" in message
    assert "client_credentials grant too" in message
    assert caught.value.error == "unsupported_grant_type"
    assert first.refresh_token not in message
    assert first.access_token not in message
