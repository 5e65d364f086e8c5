"""Token calls: retries, timeouts, and every way an answer can be unusable."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from authplug import (
    AuthError,
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    TokenEndpointError,
    TokenResponseError,
)
from authplug.testing import FakeClock, LoopbackServer, OAuth2Emulator, Request, Response

from ..conftest import password_auth


def fetch(auth: Any, mode: str) -> Any:
    """Get a token the sync or the async way."""
    if mode == "sync":
        return auth.get_token()
    return asyncio.run(auth.aget_token())


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_5xx_is_retried_with_backoff(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """Two 503s then success: three calls, two growing waits with jitter."""
    emulator.fail_next(2, status=503)
    token = fetch(password_auth(emulator, clock=clock), mode)
    assert token.access_token
    assert emulator.token_calls.total() == 3
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5
    assert 0.5 <= clock.sleeps[1] <= 1.0


@pytest.mark.parametrize("mode", MODES)
def test_retry_after_is_honoured(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """A 429 with ``Retry-After: 7`` waits seven seconds before the next try."""
    emulator.fail_next(1, status=429, retry_after="7")
    fetch(password_auth(emulator, clock=clock), mode)
    assert clock.sleeps == [7.0]
    assert emulator.token_calls.total() == 2


@pytest.mark.parametrize("mode", MODES)
def test_retries_run_out(emulator: OAuth2Emulator, clock: FakeClock, mode: str) -> None:
    """After ``retries`` retries a 5xx becomes TokenEndpointError with the status."""
    emulator.fail_next(10, status=502)
    with pytest.raises(TokenEndpointError) as info:
        fetch(password_auth(emulator, clock=clock, retries=2), mode)
    assert emulator.token_calls.total() == 3
    assert info.value.status_code == 502
    assert "HTML page titled '502 Service Unavailable'" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_never_retried(clock: FakeClock, status: int) -> None:
    """4xx other than 429 is final: one call."""

    def app(request: Request) -> Response:
        return Response.json(status, {"error": "nope", "error_description": "said no"})

    with LoopbackServer(app) as server:
        auth = password_auth_for(server.url, clock=clock)
        expected = TokenEndpointError if status == 404 else CredentialsRejectedError
        with pytest.raises(expected) as info:
            auth.get_token()
    assert clock.sleeps == []
    assert info.value.status_code == status
    assert info.value.error == "nope"
    assert info.value.description == "said no"
    assert str(info.value) == f"oauth2: HTTP {status}: nope: said no"


def password_auth_for(url: str, **options: Any) -> Any:
    from authplug import OAuth2PasswordAuth

    return OAuth2PasswordAuth(
        token_url=url + "/token", username="u", password="p4ssw0rd-secret", **options
    )


@pytest.mark.parametrize("mode", MODES)
def test_unreachable_endpoint(clock: FakeClock, mode: str) -> None:
    """A closed port is retried, then reported as TokenEndpointError without a status."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = password_auth_for(f"http://127.0.0.1:{port}", clock=clock, retries=1)
    with pytest.raises(TokenEndpointError) as info:
        fetch(auth, mode)
    assert info.value.status_code is None
    assert "no answer from the token endpoint after 2 attempt(s): ConnectError" in str(info.value)
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("mode", MODES)
def test_token_calls_time_out(mode: str) -> None:
    """A token endpoint slower than ``timeout`` is abandoned and retried."""
    with OAuth2Emulator(token_delay=0.6) as emulator:
        auth = password_auth(emulator, timeout=0.2, retries=1, clock=FakeClock())
        with pytest.raises(TokenEndpointError, match="ReadTimeout"):
            fetch(auth, mode)
        # A loaded machine may parse the second request after the client gave up on it.
        for _ in range(500):
            if emulator.token_calls.total() >= 2:
                break
            time.sleep(0.01)
        assert emulator.token_calls.total() == 2


class TricklingServer:
    """A real server that answers 200 and then sends its body one byte at a time."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.recv(65536)  # the request (small, one packet on loopback)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                conn.sendall(head + b"Content-Length: 100000\r\n\r\n")
                try:
                    while not self._stop.wait(self._interval):
                        conn.sendall(b" ")
                except OSError:  # the client gave up: next connection
                    continue

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_trickling_answer_times_out_as_a_whole(clock: FakeClock, mode: str) -> None:
    """``timeout`` bounds the whole answer, not only each read: a byte every 50 ms ends."""
    with TricklingServer(interval=0.05) as server:
        auth = password_auth_for(server.url, timeout=0.3, retries=1, clock=clock)
        with pytest.raises(TokenEndpointError, match=r"took longer than 0\.3s") as info:
            fetch(auth, mode)
        assert server.connections == 2  # retried like any other timeout
    assert info.value.status_code is None


@pytest.mark.parametrize("mode", MODES)
def test_an_oversized_answer_is_not_read_whole(clock: FakeClock, mode: str) -> None:
    """A 2xx answer of several megabytes is cut at 1 MiB and reported, not swallowed."""
    served = []

    def app(request: Request) -> Response:
        body = b'{"access_token": "' + b"a" * (3 << 20) + b'"}'
        served.append(len(body))
        return Response(200, body, {"Content-Type": "application/json"})

    with LoopbackServer(app) as server, pytest.raises(TokenResponseError) as info:
        fetch(password_auth_for(server.url, clock=clock), mode)
    assert served == [(3 << 20) + 20]  # one call: an unusable 2xx is not retried
    assert "JSON that does not parse (truncated?), 1048576 bytes (HTTP 200)" in str(info.value)
    assert "aaaa" not in str(info.value)  # a piece of a token is never shown
    assert len(str(info.value)) < 400


BAD_BODIES = [
    pytest.param(b"<html><title>Login</title><body>sign in</body></html>", "text/html", id="html"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b'{"access_token": "abc', "application/json", id="truncated"),
    pytest.param(b'["access_token"]', "application/json", id="list"),
    pytest.param(b'{"token_type": "bearer"}', "application/json", id="no-access-token"),
    pytest.param(b'{"access_token": 12345}', "application/json", id="access-token-number"),
    pytest.param(
        b'{"access_token": "abcdef", "expires_in": "soon"}', "application/json", id="expires-text"
    ),
    pytest.param(
        b'{"access_token": "abcdef", "expires_in": [1]}', "application/json", id="expires-list"
    ),
    pytest.param(
        b'{"access_token": "abcdef", "refresh_token": 7}', "application/json", id="refresh-number"
    ),
    pytest.param(b"\xff\xfe\x00garbage", "application/json", id="binary"),
    pytest.param(
        b'{"error": "server_error", "error_description": "oops"}',
        "application/json",
        id="error-200",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES)
@pytest.mark.parametrize("mode", MODES)
def test_unusable_2xx_answers(
    emulator: OAuth2Emulator, clock: FakeClock, body: bytes, content_type: str, mode: str
) -> None:
    """A 2xx answer that is not a token raises TokenResponseError at once (not retried)."""
    emulator.malformed_next(1, body=body, content_type=content_type)
    auth = password_auth(emulator, clock=clock)
    with pytest.raises(TokenResponseError) as info:
        fetch(auth, mode)
    assert info.value.status_code == 200
    assert info.value.provider == "oauth2"
    assert emulator.token_calls.total() == 1
    assert clock.sleeps == []
    assert auth.token is None
    # Nothing lost: the next call works.
    clock.advance(2)
    assert fetch(auth, mode).access_token


JWT_PIECE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            b'{"access_token": "' + JWT_PIECE.encode(),
            "application/json",
            "JSON that does not parse (truncated?)",
        ),
        (JWT_PIECE.encode(), "text/plain", "a body that is not JSON"),
        (b'["' + JWT_PIECE.encode() + b'"]', "application/json", "JSON that is not an object"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_broken_2xx_answer_is_described_never_quoted(
    emulator: OAuth2Emulator,
    clock: FakeClock,
    body: bytes,
    content_type: str,
    expected: str,
    mode: str,
) -> None:
    """A 2xx answer may hold a token, even when cut short: its text is never shown."""
    emulator.malformed_next(1, body=body, content_type=content_type)
    with pytest.raises(TokenResponseError) as info:
        fetch(password_auth(emulator, clock=clock), mode)
    assert expected in str(info.value)
    for shown in (str(info.value), repr(info.value), info.value.description):
        assert "eyJhbGci" not in shown


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (400, b"<html><title>Bad Request</title></html>", "text/html", "an HTML page titled"),
        (401, b"", "", "an empty body (HTTP 401)"),
        (403, b'{"error": "access_deni', "application/json", "an unexpected body"),
        (400, b'{"error": 5}', "application/json", "5"),
        (422, b'{"detail": [{"loc": ["body"]}]}', "application/json", "loc"),
    ],
)
def test_unusable_error_answers(
    status: int, body: bytes, content_type: str, expected: str, clock: FakeClock
) -> None:
    """Error answers of any shape still become the package's exception, with a message."""

    def app(request: Request) -> Response:
        return Response(status, body, {"Content-Type": content_type} if content_type else {})

    with LoopbackServer(app) as server, pytest.raises(CredentialsRejectedError) as info:
        password_auth_for(server.url, clock=clock).get_token()
    assert info.value.status_code == status
    assert expected in str(info.value)


def test_huge_error_page_is_summarised(clock: FakeClock) -> None:
    """A megabyte of HTML is summarised, not pasted into the message."""

    def app(request: Request) -> Response:
        page = b"<html><head><title>Gateway</title></head>" + b"x" * 1_000_000 + b"</html>"
        return Response(404, page, {"Content-Type": "text/html"})

    with LoopbackServer(app) as server, pytest.raises(TokenEndpointError) as info:
        password_auth_for(server.url, clock=clock).get_token()
    assert len(str(info.value)) < 400
    assert "Gateway" in str(info.value)


def test_client_credentials_against_emulator(emulator: OAuth2Emulator) -> None:
    """The generic client-credentials class authenticates with post or basic."""
    for method in ("client_secret_post", "client_secret_basic"):
        auth = OAuth2ClientCredentialsAuth(
            token_url=emulator.token_url,
            client_id="demo-client",
            client_secret="demo-secret",
            client_auth=method,
            scope=["read", "write"],
        )
        token = auth.get_token()
        assert token.refresh_token is None
    form = emulator.token_requests[0].form()
    assert form == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    basic = emulator.token_requests[1]
    assert basic.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in basic.form()


def test_wrong_client_secret(emulator: OAuth2Emulator) -> None:
    """A 401 invalid_client is a CredentialsRejectedError carrying the code."""
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url, client_id="demo-client", client_secret="wrong-secret"
    )
    with pytest.raises(CredentialsRejectedError) as info:
        auth.get_token()
    assert (info.value.status_code, info.value.error) == (401, "invalid_client")
    assert isinstance(info.value, AuthError)


def test_missing_expiry_means_valid_until_refused(
    emulator: OAuth2Emulator, clock: FakeClock
) -> None:
    """A token without ``expires_in`` is used until the API answers 401."""
    emulator.token_lifetime = None
    auth = password_auth(emulator, clock=clock)
    token = auth.get_token()
    assert token.expires_at is None
    clock.advance(10**6)
    assert auth.get_token() is token
    assert emulator.token_calls.total() == 1
