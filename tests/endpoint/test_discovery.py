"""``issuer=``: the metadata document read once, checked, kept for a day, and every way
it can be broken ending as the package's own error before any credential is sent.

The emulators serve their metadata at both places (OpenID Connect's and RFC 8414's);
``metadata_at`` and ``metadata_answer`` are the knobs. The certified server's side is in
tests/endpoint/test_client_auth.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authplug import (
    BaseAuth,
    DiscoveryError,
    IssuerMismatchError,
    OAuth2ClientCredentialsAuth,
    SemansysAuth,
)
from authplug._call.discovery import well_known_urls
from authplug.testing import FakeClock, OAuth2Emulator, SemansysEmulator
from authplug.testing._server import Response

from ..conftest import password_auth


@pytest.fixture
def server() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator() as emulator:
        yield emulator


def _auth(server: OAuth2Emulator, **options: Any) -> BaseAuth:
    options.setdefault("retries", 0)
    return password_auth(server, issuer=server.issuer, **options)


def test_well_known_places() -> None:
    assert well_known_urls("https://as.example") == (
        "https://as.example/.well-known/openid-configuration",
        "https://as.example/.well-known/oauth-authorization-server",
    )
    assert well_known_urls("https://as.example/tenant/") == (
        "https://as.example/tenant/.well-known/openid-configuration",
        "https://as.example/.well-known/oauth-authorization-server/tenant",
    )


def test_read_once_and_kept_for_a_day(server: OAuth2Emulator, clock: FakeClock) -> None:
    auth = _auth(server, clock=clock)
    with httpx.Client(auth=auth) as http:
        assert http.get(server.api_url()).status_code == 200
        server.revoke_all()
        assert http.get(server.api_url()).status_code == 200  # a renewal: no new read
        assert server.metadata_calls == 1
        clock.advance(24 * 3600 + 1)  # the token has expired too: a renewal
        assert http.get(server.api_url()).status_code == 200
    assert server.metadata_calls == 2
    assert server.token_calls == {"password": 1, "refresh_token": 2}


def test_a_failed_refetch_keeps_the_old_copy(
    server: OAuth2Emulator, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    auth = _auth(server, clock=clock)
    auth.get_token()
    clock.advance(24 * 3600 + 1)
    server.metadata_answer = Response(503, b"<html>down</html>", {"Content-Type": "text/html"})
    assert auth.get_token() is not None  # renewed with the endpoint from the old copy
    assert server.token_calls == {"password": 1, "refresh_token": 1}
    assert "could not be read again" in authlog.text
    assert "HTTP 503" in authlog.text
    calls = server.metadata_calls
    clock.advance(200)  # within five minutes of the failure: the old copy, no new read
    assert auth.revoke() is True  # at the revocation endpoint of the old copy
    assert server.metadata_calls == calls
    assert server.revocations == [("refresh_token", True)]


def test_rfc8414_place_when_the_openid_one_is_404(server: OAuth2Emulator) -> None:
    server.metadata_at = ("oauth",)
    auth = _auth(server)
    assert auth.get_token().access_token
    assert server.metadata_calls == 2  # a 404 at the first place, then the second


def test_semansys_with_an_issuer() -> None:
    with SemansysEmulator() as emulator:
        kwargs = emulator.auth_kwargs()
        del kwargs["token_url"]
        auth = SemansysAuth(issuer=emulator.issuer, **kwargs)
        assert auth.get_token().access_token
        assert emulator.metadata_calls == 1


_HTML = {"Content-Type": "text/html"}
_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (Response(200, b"<html><body>Sign in</body></html>", _HTML), "expected a JSON metadata"),
        (Response(200, b"", _JSON), "expected a JSON metadata document, got an empty body"),
        (Response(200, b'{"issuer": "http://127.0', _JSON), "expected a JSON metadata"),
        (Response(200, b'["issuer"]', _JSON), "expected a JSON metadata"),
        (Response(404, b"Not Found", {"Content-Type": "text/plain"}), "HTTP 404"),
        (Response(500, b"<html>oops</html>", _HTML), "HTTP 500"),
    ],
)
def test_broken_documents(server: OAuth2Emulator, answer: Response, message: str) -> None:
    server.metadata_answer = answer
    with pytest.raises(DiscoveryError, match=message) as caught:
        _auth(server).get_token()
    assert server.password not in str(caught.value)
    assert server.token_calls.total() == 0


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"issuer": "https://evil.example"}, IssuerMismatchError, "names 'https://evil.example'"),
        ({"issuer": None}, IssuerMismatchError, "no issuer"),
        ({"issuer": 42}, IssuerMismatchError, r"no issuer \(int\)"),
        ({"token_endpoint": None}, DiscoveryError, "token_endpoint= must be a URL"),
        ({"token_endpoint": 7}, DiscoveryError, "token_endpoint= must be a URL"),
        ({"token_endpoint": "http://as.example/token"}, DiscoveryError, "plain http"),
    ],
)
def test_unusable_documents(
    server: OAuth2Emulator, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    document = {**server.metadata(), **change}
    server.metadata_answer = Response.json(200, document)
    with pytest.raises(error, match=message):
        _auth(server).get_token()
    assert server.token_calls.total() == 0


def test_an_unusable_revocation_endpoint_is_ignored(
    server: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    server.metadata_answer = Response.json(
        200, {**server.metadata(), "revocation_endpoint": "http://as.example/revoke"}
    )
    auth = _auth(server)
    auth.get_token()
    assert "ignoring the metadata's revocation_endpoint" in authlog.text
    with pytest.raises(ValueError, match="no revocation endpoint"):
        auth.revoke()


def test_unreachable_issuer() -> None:
    with OAuth2Emulator() as emulator:
        issuer = emulator.issuer
    auth = OAuth2ClientCredentialsAuth(
        issuer=issuer, client_id="c", client_secret="s", retries=0, timeout=2
    )
    with pytest.raises(DiscoveryError, match="no answer from"):
        auth.get_token()


def test_single_flight_from_threads_and_tasks(server: OAuth2Emulator) -> None:
    """Twenty threads and twenty tasks at first use: one read, one token call."""
    server.token_delay = 0.2
    auth = _auth(server)
    results: list[str] = []
    gate = threading.Barrier(21)

    def worker() -> None:
        gate.wait()
        results.append(auth.get_token().access_token)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()

    async def tasks() -> list[str]:
        gate.wait()
        got = await asyncio.gather(*(auth.aget_token() for _ in range(20)))
        return [token.access_token for token in got]

    results += asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert len(results) == 40
    assert len(set(results)) == 1
    assert server.metadata_calls == 1
    assert server.token_calls == {"password": 1}


def test_logged_once(server: OAuth2Emulator, authlog: pytest.LogCaptureFixture) -> None:
    authlog.set_level(logging.INFO, "authplug")
    _auth(server).get_token()
    assert authlog.text.count("discovered the token endpoint") == 1
