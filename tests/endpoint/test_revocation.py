"""``revoke()``/``arevoke()`` (RFC 7009) against the emulator's revocation endpoint: what
is revoked, what is forgotten (here and in every cache), and a failure that forgets
nothing. The certified server's side (introspection says inactive) is in
tests/endpoint/test_client_auth.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authplug import (
    BaseAuth,
    CredentialsRejectedError,
    FileTokenCache,
    MemoryTokenCache,
    OAuth2ClientCredentialsAuth,
    TokenEndpointError,
)
from authplug.testing import OAuth2Emulator
from authplug.testing._server import Response

from ..conftest import password_auth
from ..system.test_caches import redis_cache


def _auth(emulator: OAuth2Emulator, **options: Any) -> BaseAuth:
    options.setdefault("revocation_url", emulator.revocation_url)
    return password_auth(emulator, **options)


def test_the_refresh_token_is_revoked_and_the_token_forgotten(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    auth = _auth(emulator)
    token = auth.get_token()
    assert auth.revoke() is True
    assert emulator.revocations == [("refresh_token", True)]
    assert auth.token is None
    assert "revoked the refresh_token" in authlog.text
    # Nothing of the token in the log or the repr.
    assert token.refresh_token is not None
    for text in (authlog.text, repr(auth)):
        assert token.refresh_token not in text
        assert token.access_token not in text
        assert emulator.client_secret is None or emulator.client_secret not in text
    # Still usable: the next use is a full grant (the refresh token is gone).
    assert auth.get_token().access_token != token.access_token
    assert emulator.token_calls == {"password": 2}


def test_without_a_refresh_token_the_access_token_is_revoked(emulator: OAuth2Emulator) -> None:
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        revocation_url=emulator.revocation_url,
        client_id=emulator.client_id or "",
        client_secret=emulator.client_secret,
        client_auth="client_secret_basic",
    )
    access = auth.get_token().access_token
    assert auth.revoke() is True
    assert emulator.revocations == [("access_token", True)]
    assert not emulator.token_valid(access)


def test_nothing_to_revoke(emulator: OAuth2Emulator) -> None:
    assert _auth(emulator).revoke() is False
    assert emulator.revocations == []


def test_no_endpoint_is_a_configuration_error(emulator: OAuth2Emulator) -> None:
    auth = _auth(emulator, revocation_url=None)
    auth.get_token()
    with pytest.raises(ValueError, match="give revocation_url="):
        auth.revoke()
    assert auth.token is not None


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (Response.json(401, {"error": "invalid_client"}), CredentialsRejectedError, "invalid"),
        (
            Response(503, b"<html>down</html>", {"Content-Type": "text/html"}),
            TokenEndpointError,
            "revocation refused",
        ),
        (
            Response.json(400, {"error": "unsupported_token_type"}),
            CredentialsRejectedError,
            "unsupported_token_type",
        ),
    ],
)
def test_a_refused_revocation_forgets_nothing(
    emulator: OAuth2Emulator, answer: Response, error: type[Exception], message: str
) -> None:
    cache = MemoryTokenCache()
    auth = _auth(emulator, cache=cache, retries=1)
    token = auth.get_token()
    emulator.revocation_answer = answer
    with pytest.raises(error, match=message) as caught:
        auth.revoke()
    assert auth.token == token
    assert cache.get(auth._manager._key) == token
    assert token.refresh_token is not None
    assert token.refresh_token not in str(caught.value)
    emulator.revocation_answer = None
    assert auth.revoke() is True  # and it can be tried again


def test_unreachable_revocation_endpoint(emulator: OAuth2Emulator) -> None:
    with OAuth2Emulator() as gone:
        url = gone.revocation_url
    auth = _auth(emulator, revocation_url=url, retries=0)
    auth.get_token()
    with pytest.raises(TokenEndpointError, match="no answer from the revocation endpoint"):
        auth.revoke()
    assert auth.token is not None


def test_the_shared_token_of_another_process_is_revoked(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    """An object that never fetched revokes what its cache holds."""
    cache_path = tmp_path / "tokens.json"
    first = _auth(emulator, cache=FileTokenCache(cache_path))
    first.get_token()
    other = _auth(emulator, cache=FileTokenCache(cache_path))
    assert other.revoke() is True
    assert emulator.revocations == [("refresh_token", True)]
    assert FileTokenCache(cache_path).get(other._manager._key) is None


@contextlib.contextmanager
def _cache(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    if kind == "memory":
        yield MemoryTokenCache()
    elif kind == "file":
        yield FileTokenCache(tmp_path / "tokens.json")
    else:
        server = request.getfixturevalue("redis_server")
        yield redis_cache(server, asynchronous=kind == "redis-async")


@pytest.mark.parametrize("kind", ["memory", "file", "redis", "redis-async"])
async def test_every_cache_drops_the_revoked_token(
    emulator: OAuth2Emulator, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    with _cache(kind, tmp_path, request) as cache:
        auth = _auth(emulator, cache=cache)
        await auth.aget_token()
        key = auth._manager._key
        assert await cache.aget(key) is not None
        assert await auth.arevoke() is True
        assert await cache.aget(key) is None
        if kind != "redis-async":
            auth.get_token()
            assert auth.revoke() is True
            assert cache.get(key) is None
        else:
            await cache._client.aclose()
    assert auth.token is None


class OldCache(MemoryTokenCache):
    """A user's cache written before delete() existed: get, set and the locks only."""

    delete = None
    adelete = None


def test_a_cache_without_delete_is_warned_about(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    cache = OldCache()
    auth = _auth(emulator, cache=cache)
    auth.get_token()
    assert auth.revoke() is True
    assert "has no delete()" in authlog.text
    assert auth.token is None
    # The stale entry is refused by the API and then renewed, as after any revocation.
    assert cache.get(auth._manager._key) is not None


def test_revoke_on_close_logs_a_failure(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    emulator.revocation_answer = Response.json(401, {"error": "invalid_client"})
    with _auth(emulator, revoke_on_close=True, retries=0) as auth:
        auth.get_token()
    assert "revoking the token on close failed" in authlog.text
    assert auth.token is not None
